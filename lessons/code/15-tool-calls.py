# %% One agent conversation through TRL's qwen3_training: the parts of a call and of its result
import json
import re
import tempfile

import datasets
import trl
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

datasets.disable_progress_bars()
TEMPLATE = (Path(trl.__file__).parent / "chat_templates" / "qwen3_training.jinja").read_text(encoding="utf-8")
AGENT = {{agent}}  # a question, a call to a dictionary, its result, the final answer
FLAG = {{flag}}  # axolotl's and LLaMA-Factory's "do not train this message"
PARTS = ("name", "arguments", "markers", "result", "think", "answer")
THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
CALLS = re.compile(r"<tool_call>.*?</tool_call>", re.DOTALL)


def render(messages, prompt=False):
    return tokenizer.apply_chat_template(messages, chat_template=TEMPLATE, tokenize=False, add_generation_prompt=prompt)


def parts_of(messages):
    """The rendering's ids, assistant mask, and each token's part: a call's name, arguments or
    markers, the tool's result, an assistant's think block or answer, or "" (the prompt). Each
    message's range is what rendering it adds (the template is prefix-preserving)."""
    out = tokenizer.apply_chat_template(
        messages, chat_template=TEMPLATE, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    text = render(messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == out["input_ids"]
    spans, start = [], 0  # (start, end, part) of every piece of the text
    for i, m in enumerate(messages):
        end = len(render(messages[: i + 1]))
        if m["role"] == "tool":
            spans.append((start, end, "result"))
        elif m["role"] == "assistant":
            inner = [(b.start(), b.end(), "think") for b in THINK.finditer(text, start, end)]
            for c in CALLS.finditer(text, start, end):
                call = m["tool_calls"][0]["function"]
                args = call["arguments"] if isinstance(call["arguments"], str) else json.dumps(call["arguments"], ensure_ascii=False)
                for piece, part in ((call["name"], "name"), (args, "arguments")):
                    at = text.find(piece, c.start(), c.end())
                    inner.append((at, at + len(piece), part))
                inner.append((c.start(), c.end(), "markers"))  # the rest of the call
            spans += inner + [(start, end, "answer")]  # the first span that holds a token wins
        start = end
    mids = [(a + b) / 2 if b > a else a for a, b in enc["offset_mapping"]]
    parts = [next((p for s, e, p in spans if s <= mid < e), "") for mid in mids]
    return out["input_ids"], out["assistant_masks"], parts


def runs(mask):
    """The [start, end) runs of 1s in an assistant mask: one per assistant message."""
    out, start = [], None
    for i, m in enumerate(list(mask) + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


def m_calls(message):
    return bool(message.get("tool_calls"))


def policy_labels(messages, policy, flags=True):
    """The mask's labels under a turn policy: all, last, or final (the last turn that calls no tool);
    with `flags`, a message whose own flag says "do not train" is left out."""
    ids, mask, _ = parts_of(messages)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    kept = {"all": turns, "last": turns[-1:], "final": [i for i in turns if not m_calls(messages[i])][-1:]}[policy]
    if flags:
        kept = [i for i in kept if messages[i].get(FLAG[0], 1) != FLAG[1]]
    labels = [-100] * len(ids)
    for i, (a, b) in zip(turns, runs(mask)):
        if i in kept:
            labels[a:b] = ids[a:b]
    return labels


def count(messages, labels):
    _, _, parts = parts_of(messages)
    trained = {p: sum(1 for q, x in zip(parts, labels) if q == p and x != -100) for p in PARTS}
    total = {p: parts.count(p) for p in PARTS}
    return trained, total


def show_counts(label, trained, total):
    print(f"{label:<14}" + "".join(f"{f'{trained[p]}/{total[p]}':>11}" for p in PARTS))


def trl_labels(rows, **settings):
    """TRL's own labels: a real SFTTrainer's prepared rows, through its collator."""
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = TEMPLATE
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            output_dir=tmp, report_to="none", use_cpu=args.device == "cpu", max_length=None, packing=False,
            activation_checkpointing=False, bf16=False, **settings,
        )
        trainer = SFTTrainer(model=copy.deepcopy(model), args=config, processing_class=tok, train_dataset=Dataset.from_dict(rows))
        return [trainer.data_collator([trainer.train_dataset[i]])["labels"][0].tolist() for i in range(len(trainer.train_dataset))]


flagged = [dict(m) for m in AGENT]
flagged[1][FLAG[0]] = FLAG[1]
print("rendered: " + render(AGENT).replace("\n", "↵"))
print(f"{'':<14}" + "".join(f"{p:>11}" for p in PARTS))
ids, _, _ = parts_of(AGENT)
show_counts("copy, all", *count(AGENT, ids))
for policy in ("all", "last", "final"):
    show_counts(f"mask, {policy}", *count(AGENT, policy_labels(AGENT, policy)))

# %% TRL: assistant_only_loss for every turn; one turn trained as the completion of a prompt/completion row
every = trl_labels({"messages": [AGENT, flagged]}, assistant_only_loss=True)
show_counts("trl, all", *count(AGENT, every[0]))
turns = [i for i, m in enumerate(AGENT) if m["role"] == "assistant"]
last, final = turns[-1], [i for i in turns if not m_calls(AGENT[i])][-1]
one = trl_labels({"prompt": [AGENT[:last], AGENT[:final]], "completion": [AGENT[last:last + 1], AGENT[final:final + 1]]},
                 completion_only_loss=True)
show_counts("trl, last", *count(AGENT, one[0]))
show_counts("trl, final", *count(AGENT, one[1]))

# %% The call marked "do not train": the mask honours the flag, TRL has no such field
call = ("name", "arguments", "markers")
masked = count(flagged, policy_labels(flagged, "all"))
trl_flagged = count(flagged, every[1])
print(f"the call marked {FLAG[0]}={FLAG[1]}: mask {sum(masked[0][p] for p in call)} of {sum(masked[1][p] for p in call)}, "
      f"TRL {sum(trl_flagged[0][p] for p in call)}")

# %% Cut after the call: last trains the call's turn, final nothing (there is no final answer)
cut = AGENT[:2]
print(f"cut after the call: last {sum(count(cut, policy_labels(cut, 'last'))[0].values())}, "
      f"final {sum(count(cut, policy_labels(cut, 'final'))[0].values())}")
