# include: _old_collator.py
# include: _trl_labels.py
# %% Today's TRL beside the manual mask, and the removed collator on the same ids
text = add_special_tokens(EXAMPLE)
input_ids = tokenizer(text)["input_ids"]
mask = create_special_mask(input_ids)
((trl_ids, trl),) = trl_labels([text])
print_labels(trl_ids, trl, "trl labels")
print(f"create_special_mask  {compact(mask)}")
print(f"TRL SFTTrainer       {compact(trl)}")
print("TRL and the mask agree on every position" if (trl_ids, trl) == (input_ids, mask) else "TRL and the mask differ")
old = old_collator_labels(input_ids, [tokenizer.bos_token_id], [tokenizer.eos_token_id])
print(f"old collator         {compact(old)}   (instruction_template=eos, response_template=bos)")
print(
    f"the final {show(input_ids[-1])}: mask {'trains' if mask[-1] != -100 else 'masks'} it,"
    f" the old collator {'trains' if old[-1] != -100 else 'MASKS'} it"
)
