# %% Strategy 1, labels = input_ids, on the lesson's example
import torch.nn.functional as F

input_ids = tokenizer(add_special_tokens(EXAMPLE))["input_ids"]
labels = list(input_ids)  # a plain copy: the model shifts them itself
print("position i reads its token and is scored on the next one:")
print(f"{'pos':>4}  {'reads':<16} {'scored on':<16} {'label':>8}")
for i in range(len(input_ids) - 1):
    print(f"{i:>4}  {show(input_ids[i])[:16]:<16} {show(labels[i + 1])[:16]:<16} {labels[i + 1]:>8}")

# %% The loss the model returns, and the same loss by hand
ids = torch.tensor([input_ids], device=model.device)
target = torch.tensor([labels], device=model.device)
model.eval()
with torch.no_grad():
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=target)
logits = out.logits[0].float()
by_hand = F.cross_entropy(logits[:-1], target[0, 1:], ignore_index=-100)  # position i against label i+1
shifted_by_you = torch.tensor([labels[1:] + [-100]], device=model.device)  # the mistake: the model shifts again
with torch.no_grad():
    twice = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=shifted_by_you).loss
print(f"{'model(input_ids, labels=labels).loss':<46}{out.loss.item():.4f}")
print(f"{'logits[:-1] vs labels[1:], computed by hand':<46}{by_hand.item():.4f}")
print(f"{'labels shifted by hand too (i scored on i+2)':<46}{twice.item():.4f}")
