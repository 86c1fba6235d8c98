# %% Whose tokens weigh: one optimizer step of TRL's micro-batches, its gradient three ways
import tempfile

import accelerate.accelerator
import datasets
from datasets import Dataset
from transformers import set_seed
from trl import SFTConfig, SFTTrainer

datasets.disable_progress_bars()
STEP_EXAMPLES = {{step_examples}}  # answers of different lengths: the article's, said 1 to 6 times
WORLD, ACCUMULATION, BATCH = {{world_size}}, {{accumulation}}, {{batch_size}}
texts = [add_special_tokens(t) for t in STEP_EXAMPLES]
cut = [t.rindex(tokenizer.bos_token) + len(tokenizer.bos_token) for t in texts]
dataset = Dataset.from_dict({"prompt": [t[:c] for t, c in zip(texts, cut)], "completion": [t[c:] for t, c in zip(texts, cut)]})


def step_one(completion_only):
    """Step 1's micro-batches on every simulated rank, from SFTTrainer's own data loader."""
    lm = copy.deepcopy(model)
    tmp = tempfile.mkdtemp()
    config = SFTConfig(
        output_dir=tmp, report_to="none", use_cpu=args.device == "cpu", activation_checkpointing=False, bf16=False,
        per_device_train_batch_size=BATCH, gradient_accumulation_steps=ACCUMULATION, completion_only_loss=completion_only,
    )
    trainer = SFTTrainer(model=lm, args=config, train_dataset=dataset, processing_class=tokenizer)
    real = accelerate.accelerator.prepare_data_loader
    batches = []
    for rank in range(WORLD):  # each rank's loader, as accelerate shards it for process `rank` of WORLD
        accelerate.accelerator.prepare_data_loader = lambda *a, r=rank, **k: real(*a, **{**k, "num_processes": WORLD, "process_index": r})
        set_seed(config.seed)
        loader = iter(trainer.get_train_dataloader())
        batches.append([next(loader) for _ in range(ACCUMULATION)])
    accelerate.accelerator.prepare_data_loader = real
    return trainer, [b for m in range(ACCUMULATION) for b in (batches[r][m] for r in range(WORLD))]


def grad_of(lm):
    """The gradient, one tensor per parameter (a flat copy of the embedded model's is a gigabyte)."""
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in lm.parameters()]


def compare(xs, ys, chunk=1 << 22):
    """cosine and norm ratio of two gradients, summed in float64 a few million numbers at a time."""
    dot = xx = yy = 0.0
    for x, y in zip(xs, ys):
        x, y = x.reshape(-1), y.reshape(-1)
        for i in range(0, x.numel(), chunk):
            a, b = x[i : i + chunk].double(), y[i : i + chunk].double()
            dot, xx, yy = dot + float(a @ b), xx + float(a @ a), yy + float(b @ b)
    return dot / (xx * yy) ** 0.5, (xx / yy) ** 0.5


def on(batch):
    return {k: (v.to(args.device) if hasattr(v, "to") else v) for k, v in batch.items()}


trainer, micro = step_one(True)
lm = trainer.model
lm.eval()
n = sum(int((b["labels"][..., 1:] != -100).sum()) for b in micro)  # what get_batch_samples counts, all ranks
print(f"one optimizer step: {len(micro)} micro-batches; each trained token weighs 1/{n}")
# transformers' Trainer counts num_items_in_batch only for a model whose forward accepts loss kwargs, or a compute_loss_func
kind = type(model).__name__
if trainer.model_accepts_loss_kwargs:
    print(f"num_items_in_batch: used ({kind}'s forward accepts loss kwargs)")
elif trainer.compute_loss_func is not None:
    print("num_items_in_batch: used (a compute_loss_func is given)")
else:
    print(f"num_items_in_batch: not used ({kind}'s forward takes no loss kwargs and no compute_loss_func is given): "
          "each micro-batch's mean loss, divided by the accumulation steps")
grads = {}
for name in ("trainer", "per_micro_batch", "full_batch"):
    lm.zero_grad(set_to_none=True)
    if name == "full_batch":
        ids = [[t for t, m in zip(b["input_ids"][i].tolist(), b["attention_mask"][i].tolist()) if m] for b in micro for i in range(len(b["input_ids"]))]
        labels = [[lab for lab, m in zip(b["labels"][i].tolist(), b["attention_mask"][i].tolist()) if m] for b in micro for i in range(len(b["input_ids"]))]
        longest = max(map(len, ids))
        full = {
            "input_ids": torch.tensor([x + [tokenizer.pad_token_id] * (longest - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (longest - len(x)) for x in ids]),
            "labels": torch.tensor([x + [-100] * (longest - len(x)) for x in labels]),
        }
        trainer.compute_loss(lm, on(full)).backward()  # every sequence in one micro-batch, its mean loss
    for b in micro if name != "full_batch" else ():
        if name == "trainer":
            trainer.compute_loss(lm, on(b), num_items_in_batch=n).backward()
        else:
            (trainer.compute_loss(lm, on(b)) / len(micro)).backward()
    grads[name] = grad_of(lm)
for a, b in (("trainer", "full_batch"), ("per_micro_batch", "full_batch")):
    cosine, ratio = compare(grads[a], grads[b])
    print(f"{a} vs {b.replace('_', ' ')}: cosine {cosine:.6f}  norm ratio {ratio:.6f}")
_, copied = step_one(False)
print(f"copy labels (completion_only_loss=False): num_items_in_batch {sum(int((b['labels'][..., 1:] != -100).sum()) for b in copied)}")
