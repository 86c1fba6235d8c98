"""The micro-batches of one optimizer step, exactly as TRL's `SFTTrainer` makes them.

From the top down (the layers contract in pyproject.toml holds them so):

- `report` writes a step as text; `attention` measures whether a packed segment's predictions
  depend on the rows packed before it; `bench` times building steps.
- `steps`: `inspect_step` reads one optimizer step of a trainer, `build_step` makes the trainer
  for it from formatted examples.
- `trainer` builds the SFTTrainer (no training, nothing written) with its library patches, undone
  afterwards; `token_weights` gives each trained token its weight in the step.
- `layout` places a collated micro-batch's tokens: segment, source row, reason for -100, attention.
- `provenance` knows each prepared token's source row; `ranks` takes a step's micro-batches from
  the Trainer's own `get_train_dataloader()` as each simulated rank gets it.
- `setup` reads what `trl sft --config` reads (TRL's own `TrlParser` and `get_dataset`) or the
  command's flags; `step_types` holds what a step is made of (`StepView`, `MicroBatch`...).
"""
