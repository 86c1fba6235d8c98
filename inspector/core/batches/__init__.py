"""The micro-batches of one optimizer step, exactly as TRL's `SFTTrainer` makes them.

`setup` reads what `trl sft --config` reads (TRL's own `TrlParser` and `get_dataset`) or
the command's flags; `steps` builds the SFTTrainer (no training, nothing written), takes
the micro-batches of a step from its own `get_train_dataloader()` (sharded per simulated
rank by accelerate's own `prepare_data_loader`) and finds each token's source row and
segment; `token_weights` gives each trained token its weight in the step; `attention` measures
whether a packed segment's predictions depend on the rows packed before it; `report`
writes it all as text.
"""
