# %% The example as written, formatted the article's way, and its tokens
text = add_special_tokens(EXAMPLE)
print(f"as written:  {EXAMPLE!r}")
print(f"formatted:   {text!r}")
for role in ("bos", "eos", "pad"):
    print(f"{role} token: {getattr(tokenizer, role + '_token')!r} = {getattr(tokenizer, role + '_token_id')}")
input_ids = tokenizer(text)["input_ids"]
print(f"{len(input_ids)} tokens:")
print("  " + " ".join(f"{i}:{show(t)}({t})" for i, t in enumerate(input_ids)))

# %% Padding: the example batched with a longer, two-turn one, padded right and left
from transformers import DataCollatorForSeq2Seq

TWO_TURNS = {{two_turns}}
short = input_ids
long = tokenizer(add_special_tokens(TWO_TURNS))["input_ids"]


def loss_of_first_row(batch):
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[0].float()
    labels = batch["labels"][0]
    scored = int((labels[1:] != -100).sum())
    return torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100).item(), scored


alone = {
    "input_ids": torch.tensor([short]),
    "attention_mask": torch.ones(1, len(short), dtype=torch.long),
    "labels": torch.tensor([short]),
}
loss, scored = loss_of_first_row(alone)
print(f"alone:        loss {loss:.4f}, {scored} positions scored")
for side in ("right", "left"):
    tokenizer.padding_side = side
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    batch = collator([{"input_ids": ids, "labels": list(ids)} for ids in (short, long)])
    loss, scored = loss_of_first_row({k: v.to(model.device) for k, v in batch.items()})
    print(f"{side}-padded: loss {loss:.4f}, {scored} positions scored")
    print(f"  ids    {batch['input_ids'][0].tolist()}")
    print(f"  labels {batch['labels'][0].tolist()}")
tokenizer.padding_side = "right"
