# include: _training.py
# %% pad == eos: the two collators named DataCollatorForLanguageModeling, on the example padded in a batch
from transformers import DataCollatorForLanguageModeling
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling as TRLDataCollatorForLanguageModeling

TWO_TURNS = {{two_turns}}  # two more exchanges: a longer example, so the lesson's one is padded
input_ids = tokenizer(add_special_tokens(EXAMPLE))["input_ids"]
longer = tokenizer(add_special_tokens(EXAMPLE + TWO_TURNS))["input_ids"]
same = copy.deepcopy(tokenizer)
same.pad_token = same.eos_token  # the common shortcut
batch = [{"input_ids": input_ids}, {"input_ids": longer}]
print(
    f"this tokenizer's pad {'IS' if tokenizer.pad_token_id == tokenizer.eos_token_id else 'differs from'} its eos; "
    f"with tokenizer.pad_token = tokenizer.eos_token and the example padded beside a longer one "
    f"({len(longer) - len(input_ids)} pads), its labels from the last answer token on:"
)
for name, collator in (
    ("transformers' DataCollatorForLanguageModeling", DataCollatorForLanguageModeling(same, mlm=False)),  # masks every pad id
    ("TRL's DataCollatorForLanguageModeling", TRLDataCollatorForLanguageModeling(pad_token_id=same.pad_token_id)),  # -100 by length
):
    padded = collator(batch)
    eos_at = int(padded["attention_mask"][0].nonzero().max())  # its last real token: the closing eos
    labels = padded["labels"][0].tolist()
    print(f"  {name}: {compact(labels[eos_at - 1:])} → {'eos trained ✓' if labels[eos_at] != -100 else 'eos masked ✗'}")


# %% Training the mask strategy with and without the eos labels, then generating
def eos_masked(ids):
    return [-100 if t == tokenizer.eos_token_id else label for t, label in zip(ids, create_special_mask(ids))]


for name, labels_of in (("mask", create_special_mask), ("mask, eos masked", eos_masked)):
    print(f"{name} trains {compact(labels_of(input_ids))}")
    lm, answers = train(labels_of, name, max_new_tokens=16)
    for epoch, answer in enumerate(answers, start=1):
        stops = answer.endswith(tokenizer.eos_token)
        print(f"  {name:<18} epoch {epoch:>2}  {answer!r}  {'stops ✓' if stops else 'runs on ✗'}")
    del lm
