# %% Truncation: three examples under a max_length chosen from their lengths, prepared by TRL
import dataclasses
import tempfile

import datasets
import trl
from datasets import Dataset
from trl import SFTConfig, SFTTrainer
from trl.data_utils import pack_dataset

datasets.disable_progress_bars()
WORD, ANSWER = {{truncation_pair}}


def article(word, answer):
    return f'{HUMAN} How do you say "{word}" in Spanish?{ASSISTANT} {answer}'


def n_tokens(text):
    return len(tokenizer(text)["input_ids"])


def prompt_of(text):
    return text[: text.rindex(tokenizer.bos_token) + len(tokenizer.bos_token)]


def prepared(texts, **settings):
    """TRL's SFTTrainer on the texts as prompt/completion rows (nothing trained): its SFTConfig,
    its prepared dataset and its collator."""
    rows = {"prompt": [prompt_of(t) for t in texts], "completion": [t[len(prompt_of(t)) :] for t in texts]}
    rows["row"] = list(range(1, len(texts) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            output_dir=tmp, report_to="none", use_cpu=args.device == "cpu", activation_checkpointing=False, bf16=False,
            per_device_train_batch_size=1, **settings,
        )
        trainer = SFTTrainer(model=copy.deepcopy(model), args=config, train_dataset=Dataset.from_dict(rows),
                             processing_class=tokenizer)
    return config, trainer.train_dataset, trainer.data_collator


def trained(labels):
    return sum(1 for x in labels[1:] if x != -100)  # the first label is never a target


short = add_special_tokens(article(WORD, ANSWER))
longer = add_special_tokens(article(WORD, " ".join([ANSWER] * 3)))
max_length = n_tokens(longer) - 1  # one token short: the longer answer loses only its eos
k = 2
while n_tokens(prompt_of(add_special_tokens(article(" ".join([WORD] * k), ANSWER)))) < max_length:
    k += 1  # the question grows until its prompt alone fills max_length
texts = [short, longer, add_special_tokens(article(" ".join([WORD] * k), ANSWER))]
config, cut, _ = prepared(texts, max_length=max_length, packing=False)
_, whole, _ = prepared(texts, max_length=None, packing=False)  # every row whole, as TRL tokenizes it
kept = {r["row"]: r for r in cut}
print(f"max_length {max_length}, truncation_mode {config.truncation_mode}, no packing:")
lost_eos = None
for r in whole:
    n, had = len(r["input_ids"]), trained(r["labels"])
    if r["row"] not in kept:
        print(f"   row {r['row']}: {n} tokens → DROPPED by TRL: no trained token left (it had {had})")
        continue
    ids, labels = kept[r["row"]]["input_ids"], kept[r["row"]]["labels"]
    eos = ids[-1] == tokenizer.eos_token_id and labels[-1] != -100
    lost_eos = lost_eos or (None if eos or trained(labels) == had else r["row"])
    print(f"   row {r['row']}: {n} tokens → kept, {trained(labels)} of {had} trained tokens, "
          f"{'its eos trained' if eos else 'its eos is gone'}")
print(f"rows dropped: {len(texts) - len(kept)} of {len(texts)}")


# %% With packing nothing is dropped: the pieces that train nothing, labels from TRL's own collator
tagged = whole.map(lambda r: {"rows": [r["row"]] * len(r["input_ids"]), "pos": list(range(len(r["input_ids"])))})
tagged = tagged.select_columns(["input_ids", "labels", "rows", "pos"])
for strategy in ("bfd_split", "wrapped"):
    _, packed, collate = prepared(texts, max_length=max_length, packing=True, packing_strategy=strategy)
    again = pack_dataset(tagged, max_length, strategy)  # TRL's packing once more, each token's row and offset with it
    assert again["input_ids"] == packed["input_ids"], "packing the rows again did not give the trainer's sequences"
    pieces = untrained = untrained_tokens = tokens = 0
    eos_fate = "drops it"
    for seq, tags in zip(packed, again):
        labels = collate([seq])["labels"][0].tolist()  # bfd_split: position_ids restart per piece, its first label -100
        rows, pos = tags["rows"], tags["pos"]
        starts = [t for t in range(len(rows)) if t == 0 or rows[t] != rows[t - 1] or pos[t] != pos[t - 1] + 1]
        if "seq_lengths" in seq:  # bfd_split: TRL's own piece lengths
            starts = [sum(seq["seq_lengths"][:i]) for i in range(len(seq["seq_lengths"]))]
        for a, b in zip(starts, starts[1:] + [len(rows)]):
            pieces, tokens = pieces + 1, tokens + b - a
            scored = [t for t in range(max(a, 1), b) if labels[t] != -100]
            if not scored:
                untrained, untrained_tokens = untrained + 1, untrained_tokens + b - a
            for t in range(a, b):  # the eos max_length cut from a row, packed
                if rows[t] == lost_eos and pos[t] == len(whole[lost_eos - 1]["input_ids"]) - 1:
                    eos_fate = ("trains it" if t in scored else "keeps it untrained" if t > a
                                else "keeps it as the first token of a piece, whose label is not trained")
    total = sum(len(ids) for ids in whole["input_ids"])
    every = "every token kept" if tokens == total else f"{total - tokens} of {total} tokens dropped"
    print(f"packing {strategy}: {len(packed)} sequences, {pieces} pieces, {every}; {untrained} train nothing "
          f"({untrained_tokens} tokens run through the model for no loss)")
    if lost_eos:
        print(f"   row {lost_eos}'s cut eos under {strategy}: {eos_fate}")

# %% SFTConfig's default max_length, and the training rows longer than it
default = next(f.default for f in dataclasses.fields(SFTConfig) if f.name == "max_length")
_, rows, _ = prepared([add_special_tokens(t) for t in EXAMPLES], max_length=None, packing=False)
lengths = [len(ids) for ids in rows["input_ids"]]
longer_rows = sum(1 for n in lengths if default is not None and n > default)
print(f"SFTConfig's default max_length on TRL {trl.__version__}: {default}; {longer_rows} of the {len(lengths)} "
      f"training rows are longer (the longest has {max(lengths)} tokens)")
