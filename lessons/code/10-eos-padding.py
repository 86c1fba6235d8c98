# include: _training.py
# %% pad == eos: what a language-modeling collator does to the eos
from transformers import DataCollatorForLanguageModeling

input_ids = tokenizer(add_special_tokens(EXAMPLE))["input_ids"]
same = copy.deepcopy(tokenizer)
same.pad_token = same.eos_token  # the common shortcut
labels = DataCollatorForLanguageModeling(same, mlm=False)([{"input_ids": input_ids}])["labels"][0].tolist()
print(
    f"pad {'is' if tokenizer.pad_token_id == tokenizer.eos_token_id else 'differs from'} eos here; with pad = eos"
    f" the collator labels the example {compact(labels)}"
)


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
