"""The recorder: what a real fine-tuning run's model received on every rank, written as it trains,
and an audit of its first step before the optimizer takes it.

Users add `RecorderCallback(to=DIR)` to their own `Trainer` or `SFTTrainer`
(`from inspector.recorder import RecorderCallback`); `causallm-inspect record` runs `trl sft`'s own
path with it. Nothing here starts a process: under torchrun or accelerate launch each rank runs
its own callback and writes its own files.

The modules, from the top down: `callback` (the TrainerCallback, its hooks and wrappers), `audit`
(the verdict and its table), `rank_stats` (one rank's counts), `capture` (the forward hooks and
`MicroRecord`), `cross_rank` (gathering, the epoch's indices), `run_facts` (settings, versions,
stop tokens), `record_files` (writing and reading the files below). Reading a recording beside them:
`step_view` (a recorded step as the batch view's `StepView`, from the tensors alone) and `compare`
(whether the simulation of a config equals the record).

A recording folder DIR:

    DIR/run.json                          written once by rank 0 in on_train_begin
    DIR/audit.json                        rank 0, after the audit (before the first optimizer step)
    DIR/rank-00000/rank.json              each rank: rank, local_rank, host, pid, device, started
    DIR/rank-00000/step-000001.parquet    each rank, each recorded optimizer step (from 1)
    DIR/rank-00000/end.json               each rank, in on_train_end: the steps it wrote

run.json: `format` ("causallm-inspect recording"), `format_version` (1), `world_size`,
`gradient_accumulation_steps`, `per_device_train_batch_size`, `average_tokens_across_devices`,
`recorded_steps` ({first, every}), `trainer`, `model`, `model_class`, `attn_implementation`,
`model_use_cache`, `tokenizer` (its name_or_path), `model_accepts_loss_kwargs`,
`loss_shifts_labels`, `compute_loss_func`, `distributed_type`, `backward_divides_by`,
`stop_tokens` ({id: token}), `versions` ({library: version}), `command` (sys.argv), and `args`:
the TrainingArguments / SFTConfig as `to_dict()` gives them.

A step file holds one row per micro-batch of that step on that rank (pyarrow reads it, as do
`datasets.load_dataset("parquet", ...)`, pandas or duckdb). Token columns are lists of batch rows,
each a list of positions, exactly as the model received them; a column is null where the model
was not sent that input:

    step, micro_step, rank                     int32 (step from 1, micro_step from 0)
    input_ids, labels, shift_labels, position_ids   list<list<int64>>
    attention_mask                             list<list<int64>>: a 2D mask as sent (1: real token)
    attends_from                               list<list<int64>>: for a 4D mask, the first key each
                                               query position may attend to (head 0; -1: none)
    attention_mask_shape                       list<int64>: the mask's shape (null: none was sent)
    cu_seq_lens_q, cu_seq_lens_k               list<int64>: flash attention's sequence bounds, as sent
    num_items_in_batch                         float64: what the Trainer's loop passed to
                                               training_step (null: it passed none)
    num_items_source                           "trainer", or "forward" (seen only as the model's kwarg)
    loss                                       float64: the value the Trainer ran backward on
    ce_sum                                     float64: the summed cross-entropy of the trained labels,
                                               from the model's outputs (null: not readable)
    forward_calls                              int32: the model's top-level forward calls
    other_inputs                               JSON text: every other input, by name: its value, or
                                               {shape, dtype} for a tensor (use_cache, fused_lm_head...)

Each file is written whole under a temporary name and renamed into place, per step per rank, so
a run killed at any moment leaves whole steps and never a cut one: one Parquet file per step
rather than one Arrow stream per rank, because a reader then needs no care for a torn tail, and
each file is a plain table any Parquet reader opens. A step is whole when every rank has its
file (`record_files.open_recording` says which are not); end.json tells a run that ended from one
that was killed.
"""
