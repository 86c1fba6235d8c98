# include: _trl_labels.py
# %% Two exchanges: the mask trains every answer, TRL's completion only the last
text = add_special_tokens(EXAMPLE)
input_ids = tokenizer(text)["input_ids"]
mask = create_special_mask(input_ids)
((trl_ids, trl),) = trl_labels([text])
print_labels(input_ids, mask, "mask labels")
print_labels(trl_ids, trl, "trl labels")
differ = [
    i
    for i in range(max(len(mask), len(trl)))
    if i >= len(mask) or i >= len(trl) or (input_ids[i], mask[i]) != (trl_ids[i], trl[i])
]
print(f"positions where mask and trl differ: {differ}")
print("trained by the mask only: " + " ".join(show(input_ids[i]) for i in differ if i < len(mask) and mask[i] != -100))
