# include: _training.py
# include: _predict.py
# %% Strategy 2: the human part masked, trained; copy beside it for the contrast
first = tokenizer(add_special_tokens(EXAMPLES[0]))["input_ids"]
print_labels(first, create_special_mask(first), "mask labels of example 1")
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
