# %% One conversation with reasoning, through the reasoning templates TRL ships, turn by turn
import difflib
import re

import trl
from trl.chat_template_utils import get_training_chat_template

TEMPLATES = Path(trl.__file__).parent / "chat_templates"
REASONED = {{reasoned}}  # two exchanges, each answer with its reasoning
THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def template(name):
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def inline(messages):
    """The reasoning written in the content: DeepSeek-R1-Distill's templates read no reasoning field."""
    out = []
    for m in messages:
        m = dict(m)
        if "reasoning_content" in m:
            m["content"] = f"<think>\n{m.pop('reasoning_content')}\n</think>\n\n{m['content']}"
        out.append(m)
    return out


def render(messages, chat_template, prompt=False):
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, add_generation_prompt=prompt
    )


def encode(text):
    """ids and character offsets of a rendered conversation (the template wrote its own special tokens)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], enc["offset_mapping"]


def in_block(text, offsets):
    """Per token: whether it lies in a think block, markers included (by its middle character)."""
    blocks = [m.span() for m in THINK.finditer(text)]
    mids = [(a + b) / 2 if b > a else a for a, b in offsets]
    return [any(s <= mid < e for s, e in blocks) for mid in mids]


def runs(mask):
    """The [start, end) runs of 1s in an assistant mask: one per assistant turn."""
    out, start = [], None
    for i, m in enumerate(list(mask) + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


def compare(context, prompt_ids):
    """'same context as at inference', or how many tokens each side has that the other lacks."""
    if list(context) == list(prompt_ids):
        return "same context as at inference"
    only_t = only_i = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, list(context), list(prompt_ids), autojunk=False).get_opcodes():
        only_t += (i2 - i1) if op in ("replace", "delete") else 0
        only_i += (j2 - j1) if op in ("replace", "insert") else 0
    return f"context differs: {only_t} tokens only in training, {only_i} only at inference"


for marker in ("<think>", "</think>"):
    ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
    print(f"think marker {marker!r}: {len(ids)} tokens ({' · '.join(show(i) for i in ids)})")
for original in ("qwen3", "deepseek_r1_distill"):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template(original)
    same = get_training_chat_template(tok) == template(original + "_training")
    print(f"get_training_chat_template, {original}: {original}_training {'yes' if same else 'no'}")
assistant = [i for i, m in enumerate(REASONED) if m["role"] == "assistant"]

# %% Qwen 3's own template: every think block before the last user message is dropped
text = render(REASONED, template("qwen3"))
ids, offsets = encode(text)
think = in_block(text, offsets)
for n, i in enumerate(assistant, start=1):
    reasoning = REASONED[i]["reasoning_content"]
    block = next((m.span() for m in THINK.finditer(text) if reasoning in m.group(0)), None)
    prompt = render(REASONED[:i], template("qwen3"), prompt=True)
    prompt_ids = encode(prompt)[0]
    context = ids[: len(prompt_ids)] if text.startswith(prompt) else ids
    if block is None:
        said = "its reasoning dropped by the template"
    else:
        inside = sum(1 for (a, b) in offsets if block[0] <= ((a + b) / 2 if b > a else a) < block[1])
        said = f"its reasoning in the text, {inside} tokens"
    print(f"qwen3 turn {n}: {said} · {compare(context, prompt_ids)}")

# %% The training variants: generation markers; the model answers with the original
PAIRS = (("qwen3_training", "qwen3", REASONED), ("deepseek_r1_distill_training", "deepseek_r1_distill", inline(REASONED)))
for train, original, messages in PAIRS:
    out = tokenizer.apply_chat_template(
        messages, chat_template=template(train), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    text = render(messages, template(train))
    offsets = encode(text)[1]
    think = in_block(text, offsets)
    read, trained, thought, matching = len(ids), sum(mask), sum(1 for m, t in zip(mask, think) if m and t), 0
    for n, i in enumerate(assistant, start=1):
        # the turn's tokens: those whose middle character is in what rendering message i adds
        lo, hi = len(render(messages[:i], template(train))), len(render(messages[: i + 1], template(train)))
        turn = [p for p, (a, b) in enumerate(offsets) if mask[p] and lo <= ((a + b) / 2 if b > a else a) < hi]
        prompt_ids = encode(render(messages[:i], template(original), prompt=True))[0]
        said = compare(ids[: turn[0]], prompt_ids)
        matching += said.startswith("same")
        print(f"{train} turn {n}: {len(turn)} trained, {sum(think[p] for p in turn)} of them reasoning · {said}")
    print(f"{train}, all: 1 row, {read} tokens read, {trained} trained ({thought} reasoning), "
          f"{matching} of {len(assistant)} trained turns in inference's context")
    # split: one row per turn, the prompt inference gives it, then the turn as the training template writes it
    rows = read = trained = thought = matching = 0
    for i in assistant:
        prompt = render(messages[:i], template(original), prompt=True)
        head = render(messages[:i], template(train), prompt=True)
        turn = render(messages[: i + 1], template(train))[len(head):]
        overlap = next((j for j in range(min(len(prompt), len(turn)), 0, -1) if prompt.endswith(turn[:j])), 0)
        row = prompt + turn[overlap:]
        row_ids, row_offsets = encode(row)
        think = in_block(row, row_offsets)
        kept = [p for p, (s, e) in enumerate(row_offsets) if s >= len(prompt) and e <= len(row)]
        rows, read, trained = rows + 1, read + len(row_ids), trained + len(kept)
        thought += sum(1 for p in kept if think[p])
        matching += row_ids[: kept[0]] == encode(prompt)[0]
    print(f"{train}, split: {rows} rows, {read} tokens read, {trained} trained ({thought} reasoning), "
          f"{matching} of {len(assistant)} trained turns in inference's context")

# %% A turn without reasoning: the training variant renders its think block empty, inside the markers
bare = [dict(m) for m in REASONED]
bare[assistant[0]].pop("reasoning_content")
out = tokenizer.apply_chat_template(
    bare, chat_template=template("qwen3_training"), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
)
text = render(bare, template("qwen3_training"))
think = in_block(text, encode(text)[1])
first = runs(out["assistant_masks"])[0]
block = [p for p in range(first[1]) if think[p]]  # turn 1's block, trained or not
print(f"empty think block: {len(block)} tokens ({' · '.join(show(out['input_ids'][p]) for p in block)}), "
      f"{sum(out['assistant_masks'][p] for p in block)} of them trained")
