# include: _training.py
# %% Truncation: three examples under a max_length chosen from their lengths, prepared by TRL
from trl import SFTConfig, SFTTrainer

WORD, ANSWER = {{truncation_pair}}


def article(word, answer):
    return f'{HUMAN} How do you say "{word}" in Spanish?{ASSISTANT} {answer}'


def n_tokens(text):
    return len(tokenizer(text)["input_ids"])


def prompt_of(text):
    return text[: text.rindex(tokenizer.bos_token) + len(tokenizer.bos_token)]


short = add_special_tokens(article(WORD, ANSWER))
longer = add_special_tokens(article(WORD, " ".join([ANSWER] * 3)))
max_length = n_tokens(longer) - 1  # one token short: the longer answer loses only its eos
k = 2
while n_tokens(prompt_of(add_special_tokens(article(" ".join([WORD] * k), ANSWER)))) < max_length:
    k += 1  # the question grows until its prompt alone fills max_length
texts = [short, longer, add_special_tokens(article(" ".join([WORD] * k), ANSWER))]
dataset = Dataset.from_dict(
    {"prompt": [prompt_of(t) for t in texts], "completion": [t[len(prompt_of(t)) :] for t in texts], "row": [1, 2, 3]}
)
with tempfile.TemporaryDirectory() as tmp:
    config = SFTConfig(
        output_dir=tmp, report_to="none", use_cpu=args.device == "cpu", activation_checkpointing=False, bf16=False,
        max_length=max_length, packing=False, per_device_train_batch_size=1,
    )
    trainer = SFTTrainer(model=copy.deepcopy(model), args=config, train_dataset=dataset, processing_class=tokenizer)
    kept = {r["row"]: r for r in trainer.train_dataset}
print(f"max_length {max_length}, truncation_mode {config.truncation_mode}, no packing:")
for row, text in enumerate(texts, start=1):
    if row not in kept:
        print(f"   row {row}: {n_tokens(text)} tokens → DROPPED by TRL: no trained token left")
        continue
    ids, labels = kept[row]["input_ids"], kept[row]["labels"]
    trained = sum(1 for x in labels[1:] if x != -100)
    eos = ids[-1] == tokenizer.eos_token_id and labels[-1] != -100
    print(f"   row {row}: {n_tokens(text)} tokens → kept, {trained} trained tokens, "
          f"{'its eos trained' if eos else 'its eos is gone'}")
print(f"rows dropped: {len(texts) - len(kept)} of {len(texts)}")


# %% Training the mask strategy on the full examples and on the examples cut before their eos
def cut_rows(rows):
    return [{k: v[:-1] for k, v in r.items()} if r["input_ids"][-1] == tokenizer.eos_token_id else r for r in rows]


for name, cut in (("full", False), ("truncated (no eos)", True)):
    lm = copy.deepcopy(model)
    held_out = HeldOut(16)
    rows = rows_for(create_special_mask)
    with tempfile.TemporaryDirectory() as tmp:
        make_trainer(lm, cut_rows(rows) if cut else rows, tmp, [held_out]).train()
    for epoch, answer in enumerate(held_out.answers, start=1):
        stops = answer.endswith(tokenizer.eos_token)
        print(f"   {name:<18} epoch {epoch:>2}  {answer!r}  {'stops ✓' if stops else 'runs on ✗'}")
    del lm
