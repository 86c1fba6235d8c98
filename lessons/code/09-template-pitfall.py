# include: _old_collator.py
# %% A response template as text: are its tokens, alone, among the text's tokens?
texts = [add_special_tokens(EXAMPLE)] + [add_special_tokens(e) for e in EXAMPLES if e != EXAMPLE]
encoded = [tokenizer(t, return_offsets_mapping=True) for t in texts]


def find(haystack, needle):
    return next((i for i in range(len(haystack) - len(needle) + 1) if haystack[i : i + len(needle)] == needle), None)


stripped = ASSISTANT.strip()
candidates = []
for c in (ASSISTANT, "\n" + ASSISTANT.lstrip("\n"), stripped, stripped.split()[-1]):
    if c in ASSISTANT and c not in candidates:
        candidates.append(c)
failing = None
for template in candidates:
    alone = tokenizer(template, add_special_tokens=False)["input_ids"]
    at = find(encoded[0]["input_ids"], alone)
    found_in = sum(find(e["input_ids"], alone) is not None for e in encoded)
    where = f"✓ found at position {at}" if at is not None else "✗ not found"
    print(f"  {template!r:<22} alone {alone}  {where}  ({found_in} of {len(texts)} examples)")
    if at is None and failing is None:
        failing = template

# %% The first that fails, the old collator's result, and the fix
if failing is None:
    print("Every way of writing it is found on this tokenizer: this pitfall does not bite here.")
else:
    ids, offsets = encoded[0]["input_ids"], encoded[0]["offset_mapping"]
    alone = tokenizer(failing, add_special_tokens=False)["input_ids"]
    start = texts[0].rindex(failing)
    span = [p for p, (s, e) in enumerate(offsets) if e > s and s < start + len(failing) and e > start]
    print(f"The first that fails: {failing!r}")
    print("  alone:      " + " ".join(f"{show(t)}({t})" for t in alone))
    around = range(max(0, span[0] - 2), min(len(ids), span[-1] + 3))
    print("  in context: … " + " ".join(f"{show(ids[p])}({ids[p]})" for p in around) + " …")
    labels = old_collator_labels(ids, alone)
    print(f"  old collator with the template as text: {sum(1 for x in labels[1:] if x != -100)} labels trained")
    fixed = [ids[p] for p in span]  # the template's ids as the text tokenizes it
    labels = old_collator_labels(ids, fixed)
    found_in = sum(find(e["input_ids"], fixed) is not None for e in encoded)
    print(
        f"  fix: take the ids from the context, {fixed}: found in {found_in} of {len(texts)} examples,"
        f" {sum(1 for x in labels[1:] if x != -100)} labels trained"
    )

# %% Today: TRL tokenizes prompt and prompt+completion apart, and starts the completion where they first differ
from trl.data_utils import common_prefix_length


def visible(text):
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def tokens(ids):
    return " ".join(show(t) for t in ids) or "nothing"


formatted = add_special_tokens(EXAMPLE)
cut = formatted.rindex(tokenizer.bos_token) + len(tokenizer.bos_token)  # lesson 5's split: after the bos
splits = [("after the bos that follows the marker (lesson 5)", formatted[:cut], formatted[cut:])]
k = EXAMPLE.rindex(ASSISTANT)
end = k + len(ASSISTANT)
cuts = [("after the marker", end)]
if EXAMPLE[end : end + 1] == " ":
    cuts.append(("after the marker and its space", end + 1))
cuts.append(("before the marker (it goes in the completion)", k))
if len(ASSISTANT) - len(ASSISTANT.lstrip("\n")) >= 2:
    cuts.append(("between the marker's newlines", k + 1))
seen = set()
for name, at in cuts:
    if 0 < at < len(EXAMPLE) and at not in seen:
        seen.add(at)
        splits.append((name, EXAMPLE[:at], EXAMPLE[at:] + tokenizer.eos_token))  # TRL appends the eos
merging = 0
for name, prompt, completion in splits:
    prompt_ids = tokenizer(text=prompt)["input_ids"]  # as SFTTrainer tokenizes a prompt/completion row
    ids = tokenizer(text=prompt + completion)["input_ids"]
    start = common_prefix_length(prompt_ids, ids)
    print(f"  {name}: …{visible(prompt[-13:])} | {visible(completion)}")
    if start == len(prompt_ids):
        print(f"    ✓ a prefix: the completion starts at token {start}; TRL trains {tokens(ids[start:])}")
    else:
        merging += 1
        print(f"    ✗ not a prefix: at token {start} the prompt alone has {tokens(prompt_ids[start:])}, the whole"
              f" {show(ids[start])}; TRL warns \"The tokenized prompt is not a prefix of the tokenized"
              f" prompt+completion\", leaves {tokens(prompt_ids[start:])} out and trains {tokens(ids[start:])}")
print(f"{merging} of {len(splits)} splits {'merges' if merging == 1 else 'merge'} tokens across the boundary on this tokenizer" if merging
      else f"Nothing merges across any of the {len(splits)} splits on this tokenizer: TRL would not warn.")
