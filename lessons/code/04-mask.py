# include: _training.py
# include: _predict.py
# %% The mask labels, and the loss as the mean over the labels scored: what one weighs under copy and under mask
first = tokenizer(add_special_tokens(EXAMPLES[0]))["input_ids"]
print_labels(first, create_special_mask(first), "mask labels of example 1")
labellings = {"copy": list(first), "mask": create_special_mask(first)}
scored = {name: sum(1 for x in labels[1:] if x != -100) for name, labels in labellings.items()}
print("The loss is the mean over the labels scored (positions 1.. whose label is not -100), example 1:")
for name, n in scored.items():
    print(f"  under {name}: {n:>2} of {len(first)} tokens scored, each weighs 1/{n} = {1 / n:.4f} of the loss")
ratio = scored["copy"] / scored["mask"]
print(f"  an answer token weighs {ratio:.1f}× more under mask than under copy: at the same learning rate"
      f" its gradient is {ratio:.1f}× larger")
with torch.no_grad():
    logits = model(input_ids=torch.tensor([first], device=model.device)).logits[0].float()
rows = [i - 1 for i, x in enumerate(labellings["mask"]) if i > 0 and x != -100]  # the logits that predict the answer
grads = {}
for name, labels in labellings.items():
    leaf = logits.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(leaf[:-1], torch.tensor(labels[1:], device=leaf.device), ignore_index=-100)
    grads[name] = float(torch.autograd.grad(loss, leaf)[0][rows].norm())
print(f"  measured on the model in use, the gradient of the loss at the logits that predict the answer (norm):"
      f" copy {grads['copy']:.4g}, mask {grads['mask']:.4g} ({grads['mask'] / grads['copy']:.1f}×)")

# %% Strategy 2: the human part masked, trained; copy beside it for the contrast
print_predictions(model, "untrained")
copy_epochs, mask_epochs = EveryEpoch(), EveryEpoch()
copy_model, _ = train(lambda ids: list(ids), "copy", callbacks=[copy_epochs])
print_predictions(copy_model, "copy")
del copy_model
mask_model, _ = train(create_special_mask, "mask", callbacks=[mask_epochs])
print_predictions(mask_model, "mask")
del mask_model
print_learning("copy", copy_epochs)
print_learning("mask", mask_epochs)

# %% Seconds per step: does masking make a step cheaper?
import statistics
import time


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)


class TrainedPositionsTrainer(Trainer):
    """The LM head only where the next label is trained (logits_to_keep); the same loss."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = inputs["labels"][:, 1:]
        keep = (targets != -100).any(dim=0).nonzero().squeeze(-1)
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        logits = model(**forward, logits_to_keep=keep).logits.float()
        picked = targets[:, keep]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), picked.reshape(-1), ignore_index=-100, reduction="sum"
        )
        return loss / (num_items_in_batch if num_items_in_batch is not None else (picked != -100).sum())


variants = [
    ("copy", lambda ids: list(ids), Trainer, False),
    ("mask", create_special_mask, Trainer, False),
    ("mask, LM head at trained positions only", create_special_mask, TrainedPositionsTrainer, False),
    ("mask, embedding frozen", create_special_mask, Trainer, True),
]
# "LM head at trained positions only" is what TRL 1.16's SFTTrainer does with its fused LM head
# (add_fused_lm_head, loss_type="nll"): log-probabilities only where the next label is not -100,
# on CUDA or XPU with Triton. Here a Trainer runs the LM head at those positions (logits_to_keep).
print(f"seconds per training step on {args.device} ({torch.get_num_threads()} torch threads), warm-up step left out:")
for name, labels_of, trainer_class, frozen in variants:
    lm = copy.deepcopy(model)
    lm.get_input_embeddings().weight.requires_grad_(not frozen)  # tied: the LM head is frozen with it
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        make_trainer(lm, rows_for(labels_of), tmp, [timer], trainer_class, epochs=2).train()
    timed = timer.times[1:] or timer.times
    print(f"  {name:<42} {statistics.median(timed):6.3f} s  ({len(timed)} steps)")
    del lm
