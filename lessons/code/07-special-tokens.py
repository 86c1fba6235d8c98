# %% The markers as special tokens: one token each, and new embedding rows
text = add_special_tokens(EXAMPLE)
before = tokenizer(text)["input_ids"]
vocab_before = len(tokenizer)
tokenizer.add_special_tokens({"additional_special_tokens": [HUMAN, ASSISTANT]})
old = model.get_input_embeddings().weight.detach().float().clone()
mean = old.mean(dim=0)  # the average token
torch.manual_seed(args.seed)  # mean_resizing adds a tiny random part around the mean
model.resize_token_embeddings(len(tokenizer))  # mean_resizing=True, the default
after = tokenizer(text)["input_ids"]
print(
    f"new ids: {HUMAN!r} → {tokenizer.convert_tokens_to_ids(HUMAN)}, {ASSISTANT!r} → {tokenizer.convert_tokens_to_ids(ASSISTANT)};"
    f" vocabulary {vocab_before} → {len(tokenizer)}"
)
print(f"embedding matrix now {tuple(model.get_input_embeddings().weight.shape)}")
head = model.get_output_embeddings()
tied = head is not None and head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
print(f"the LM head is {'tied to the embedding: the same new rows' if tied else 'not tied to the embedding'}")


def from_mean(rows):
    """Largest distance of these rows from the old rows' mean, and their cosines with it (smallest, largest)."""
    cos = torch.nn.functional.cosine_similarity(rows, mean[None], dim=1)
    return float((rows - mean).norm(dim=1).max()), float(cos.min()), float(cos.max())


if len(tokenizer) > len(old):
    distance, cosine, _ = from_mean(model.get_input_embeddings().weight.detach().float()[len(old):])
    spread = float((old - mean).norm(dim=1).mean())
    print(f"its {len(tokenizer) - len(old)} new rows vs the mean of the {len(old)} old rows: at most {distance:.1e} apart,"
          f" cosine {cosine:.6f} (an old row lies {spread:.3g} from that mean on average)")
    torch.manual_seed(args.seed)  # as many rows again, with transformers' random init, for comparison
    model.resize_token_embeddings(2 * len(tokenizer) - len(old), mean_resizing=False)
    distance, _, cosine = from_mean(model.get_input_embeddings().weight.detach().float()[len(tokenizer):])
    print(f"with mean_resizing=False they would start at random: {distance:.3g} from the mean, cosine {cosine:.2f} with it")
else:
    print(f"the embedding had {len(old)} rows, more than the tokenizer's vocabulary: resizing added none")
model.resize_token_embeddings(len(tokenizer))  # back to the notebook's size
print(f"before: {len(before)} tokens, mask labels {compact(create_special_mask(before))}")
print(f"after:  {len(after)} tokens, mask labels {compact(create_special_mask(after))}")
print("tokens after: " + " ".join(show(t) for t in after))
