# %% The markers as special tokens: one token each, and new embedding rows
text = add_special_tokens(EXAMPLE)
before = tokenizer(text)["input_ids"]
vocab_before = len(tokenizer)
tokenizer.add_special_tokens({"additional_special_tokens": [HUMAN, ASSISTANT]})
model.resize_token_embeddings(len(tokenizer))  # the new rows start untrained
after = tokenizer(text)["input_ids"]
print(
    f"new ids: {HUMAN!r} → {tokenizer.convert_tokens_to_ids(HUMAN)}, {ASSISTANT!r} → {tokenizer.convert_tokens_to_ids(ASSISTANT)};"
    f" vocabulary {vocab_before} → {len(tokenizer)}"
)
print(f"embedding matrix now {tuple(model.get_input_embeddings().weight.shape)}")
print(f"before: {len(before)} tokens, mask labels {compact(create_special_mask(before))}")
print(f"after:  {len(after)} tokens, mask labels {compact(create_special_mask(after))}")
print("tokens after: " + " ".join(show(t) for t in after))
