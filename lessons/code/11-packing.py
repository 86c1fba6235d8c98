# %% Packing: the held-out example alone, inside TRL's bfd pack, and through a plain call
import tempfile

import datasets
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

datasets.disable_progress_bars()
PREDICTED = HELD_OUT + " " + HELD_OUT_ANSWER  # the held-out question with its answer, teacher-forced
texts = [add_special_tokens(t) for t in EXAMPLES + [PREDICTED]]
cut = [t.rindex(tokenizer.bos_token) + len(tokenizer.bos_token) for t in texts]  # the prompt ends at the last bos
dataset = Dataset.from_dict({"prompt": [t[:c] for t, c in zip(texts, cut)], "completion": [t[c:] for t, c in zip(texts, cut)]})
held_out_ids = tokenizer(texts[-1])["input_ids"]
max_length = sum(len(tokenizer(t)["input_ids"]) + 1 for t in texts)  # room for every example in one row
own_use_cache = model.config.use_cache  # Trainer.__init__ sets it to False; a plain call uses the model's own


def sft_config(tmp, **settings):
    """SFTConfig for looking at batches on this machine: nothing reported, no bf16, no checkpointing."""
    return SFTConfig(
        output_dir=tmp, report_to="none", use_cpu=args.device == "cpu", activation_checkpointing=False, bf16=False,
        **settings,
    )


def p_next_fused(lm, inputs, ids):
    """p(next token) as SFTTrainer's compute_loss gets it: use_cache=False, TRL's fused head."""
    return lm(**inputs, labels=ids, use_cache=False, fused_lm_head=True).log_probs.float().exp()


def p_next_plain(lm, inputs, ids):
    """p(next token) from a plain model(**batch) call with the model's own use_cache."""
    lm.config.use_cache = own_use_cache
    try:
        logits = lm(**inputs).logits
    finally:
        lm.config.use_cache = False
    return logits.float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0].exp()


lm = copy.deepcopy(model)
with tempfile.TemporaryDirectory() as tmp:
    config = sft_config(tmp, packing=True, packing_strategy="bfd", max_length=max_length, per_device_train_batch_size=1,
                        seed=args.seed)
    trainer = SFTTrainer(model=lm, args=config, train_dataset=dataset, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
row, positions = batch["input_ids"][0].tolist(), batch["position_ids"][0].tolist()
starts = [i for i, p in enumerate(positions) if p == 0] + [len(row)]
segments = list(zip(starts, starts[1:]))
start, end = next((s, e) for s, e in segments if row[s:e] == held_out_ids)
print(f"bfd packs {len(segments)} examples in one row of {len(row)} tokens; the held-out one is at [{start},{end})"
      f"{' (first: nothing before it)' if start == 0 else ''}; attention_mask sent: {'attention_mask' in batch}")
print(f"the keys the collator sent: {', '.join(batch)}")
labels = batch["labels"][0].tolist()
print(f"labels at the segment boundaries: {[labels[s] for s, _ in segments[1:]]}")
lm.eval()
with torch.no_grad():
    inputs = {k: (v.to(args.device) if hasattr(v, "to") else v) for k, v in batch.items() if k != "labels"}
    ids = inputs["input_ids"]
    own = ids[:, start:end]
    alone = p_next_fused(lm, {"input_ids": own}, own)[0]
    fused = p_next_fused(lm, inputs, ids)[0, start : end - 1]
    plain = p_next_plain(lm, inputs, ids)[0, start : end - 1]
    print(f"max |dp| vs alone: {(fused - alone).abs().max():.2e} as SFTTrainer's forward runs it (use_cache=False), "
          f"{(plain - alone).abs().max():.2e} through a plain model(**batch) call")
    full = {k: (v.to(args.device) if hasattr(v, "to") else v) for k, v in batch.items()}
    for mode in ("eval", "train"):
        lm.train(mode == "train")
        a = float(trainer.compute_loss(lm, dict(full)))
        lm.config.use_cache = own_use_cache
        b = float(lm(**full).loss)
        lm.config.use_cache = False
        print(f"packed micro-batch loss ({mode} mode): {a:.4f} through the trainer's forward, {b:.4f} through the plain call")
# %% wrapped: everything concatenated and cut into blocks of half that; an attention mask of ones
lengths = [len(tokenizer(t)["input_ids"]) for t in texts]  # TRL's tokens of each example, as the bfd row shows
wrapped_length = max(2, max_length // 2)
with tempfile.TemporaryDirectory() as tmp:
    config = sft_config(tmp, packing=True, packing_strategy="wrapped", max_length=wrapped_length,
                        per_device_train_batch_size=1, seed=args.seed)
    wrapped = SFTTrainer(model=lm, args=config, train_dataset=dataset, processing_class=tokenizer)
    block = wrapped.data_collator([wrapped.train_dataset[len(wrapped.train_dataset) - 1]])  # it holds the held-out end
row = block["input_ids"][0].tolist()
piece = min(len(row), len(held_out_ids))  # the held-out example is the last one concatenated
start = len(row) - piece
begin = sum(lengths) - len(row)  # where the last block starts in the concatenation
ends = [sum(lengths[: i + 1]) for i in range(len(lengths))]
before = [i + 1 for i in range(len(lengths) - 1) if ends[i] > begin]  # rows with tokens earlier in the block
lm.eval()
with torch.no_grad():
    inputs = {k: (v.to(args.device) if hasattr(v, "to") else v) for k, v in block.items() if k != "labels"}
    ids = inputs["input_ids"]
    own = ids[:, start:]
    alone = p_next_fused(lm, {"input_ids": own}, own)[0]
    fused = p_next_fused(lm, inputs, ids)[0, start : len(row) - 1]
    plain = p_next_plain(lm, inputs, ids)[0, start : len(row) - 1]
print(f"wrapped (max_length {wrapped_length}): the held-out piece is at [{start},{len(row)}) of its block; "
      f"attention_mask sent: {'attention_mask' in block}")
print(f"wrapped max |dp| vs alone: {(fused - alone).abs().max():.2e} as SFTTrainer's forward runs it, "
      f"{(plain - alone).abs().max():.2e} through a plain call; rows before it in the block: "
      f"{', '.join(map(str, before)) or 'none'}")

# %% padding: the step examples (answers of different lengths), packed (bfd) vs unpacked batches of 2
from transformers import set_seed

STEP_EXAMPLES = {{step_examples}}
varied = [add_special_tokens(t) for t in STEP_EXAMPLES]
vcut = [t.rindex(tokenizer.bos_token) + len(tokenizer.bos_token) for t in varied]
vdata = Dataset.from_dict({"prompt": [t[:c] for t, c in zip(varied, vcut)], "completion": [t[c:] for t, c in zip(varied, vcut)]})
longest = sorted((len(tokenizer(t)["input_ids"]) + 1 for t in varied), reverse=True)
cap = sum(longest[:2])
for name, packing, size in (("packed (bfd)", True, 1), ("unpacked (batch size 2)", False, 2)):
    with tempfile.TemporaryDirectory() as tmp:
        config = sft_config(  # SFTConfig's own seed: the shuffle `trl sft` makes
            tmp, packing=packing, packing_strategy="bfd", max_length=cap if packing else None,
            per_device_train_batch_size=size,
        )
        counting = SFTTrainer(model=lm, args=config, train_dataset=vdata, processing_class=tokenizer)
        set_seed(config.seed)
        sent = real = mbs = 0
        for b in counting.get_train_dataloader():
            mbs += 1
            sent += int(b["input_ids"].numel())
            real += int(b["attention_mask"].sum()) if "attention_mask" in b else int(b["input_ids"].numel())
    print(f"padding, {name}: {mbs} micro-batches, {sent} tokens sent, {sent - real} of them padding")
