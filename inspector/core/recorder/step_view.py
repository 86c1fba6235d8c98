"""A recorded step as the batch view shows it: `recorded_step` turns the micro-batches a recording
holds (`record_files.Recording.micro_batches`) into the batch view's `StepView`, from the tensors alone.

A simulated step (`batches.steps.inspect_step`) knows where every token comes from: it built the
trainer, so it knows each prepared sequence's source rows, why each label is -100 (the prompt, the
collator, a pack boundary) and what truncation cut. A recording holds what the model received and
nothing of where it came from, so here:

- a segment is a sequence found in the tokens (`rank_stats.sequences`: where position_ids stop
  counting up, transformers' own rule), its data row unknown (`row` None);
- a -100 label's reason is PADDING where the 2D mask hides the token, FIRST where the loss shifts a
  row's first label away, else NOT_RECORDED: the prompt, the collator and a pack boundary look the same;
- what a token can attend to is judged from what the model got (`rank_stats.attention_window`);
- a trained token's weight under the Trainer's normalisation is read off the run, as the audit reads
  it (the loss the Trainer ran backward on ÷ the summed cross-entropy of the micro-batch's trained
  labels ÷ what accelerate's backward divides by ÷ the ranks); per micro-batch and per sequence as
  `batches.token_weights` defines them;
- the samples, the examples, the dropped rows and the epoch's sizes are left empty or None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspector.core.batches.step_types import FIRST, PADDING, MicroBatch, Segment, StepView
from inspector.core.errors import InspectorError
from inspector.core.recorder.capture import MicroRecord
from inspector.core.recorder.rank_stats import attention_window, sequences
from inspector.core.recorder.record_files import FLAT_COLUMNS, TOKEN_COLUMNS, Recording, _ranges, version_differences

NOT_RECORDED = "not recorded"  # a -100 whose cause (prompt, collator, pack boundary) a recording cannot tell
IGNORE = -100
WEIGHT_TOLERANCE = 0.01  # relative, as the audit's: a loss in low precision rounds
LACKS = (
    "a recording holds what the model received, not where it came from: the data rows, why a label is -100 "
    "(prompt, collator or pack boundary), what truncation cut and the epoch's size are not in it"
)


def tokenizer_name(rec: Recording, given: str | None) -> str:
    """The tokenizer to read the tokens with: `given` (--model), else the run's own (run.json)."""
    if given:
        return given
    name = rec.run.get("tokenizer")
    if not name:
        raise InspectorError(
            f"{rec.folder} names no tokenizer (its run's processing_class had no name_or_path), and the tokens need one",
            "pass --model with the model or tokenizer the run used",
        )
    if str(name).startswith(("/", ".", "~")) and not Path(name).expanduser().exists():
        raise InspectorError(
            f"the run's tokenizer {name} (in {rec.folder / 'run.json'}) is not on this machine",
            "pass --model with a copy of the model or tokenizer the run used",
        )
    return str(name)


def first_step(rec: Recording) -> int:
    """The first step every rank recorded whole."""
    if not rec.steps:
        cut = f" (steps {_ranges(sorted(rec.incomplete))} lack a rank's file)" if rec.incomplete else ""
        raise InspectorError(
            f"{rec.folder} holds no step that every rank recorded whole{cut}: its run stopped before it wrote one",
            "record the run again",
        )
    return rec.steps[0]


def _record(row: dict[str, Any], where: str) -> MicroRecord:
    import numpy as np

    rec = MicroRecord(
        row["step"], row["micro_step"], row["rank"], num_items_in_batch=row["num_items_in_batch"],
        num_items_source=row["num_items_source"], loss=row["loss"], ce_sum=row["ce_sum"],
        forward_calls=row["forward_calls"] or 0, other_inputs=row["other_inputs"],
    )
    for name in (*TOKEN_COLUMNS, *FLAT_COLUMNS):
        if row.get(name) is not None:
            rec.arrays[name] = np.asarray(row[name], dtype=np.int64)
    ids = rec.arrays.get("input_ids")
    if ids is None or ids.ndim != 2:
        raise InspectorError(f"{where} holds no input_ids of [batch row, position]", "record the run again")
    for name in ("labels", "shift_labels", "attention_mask", "attends_from"):
        if name in rec.arrays and rec.arrays[name].shape != ids.shape:
            raise InspectorError(f"{where}: its {name} has another shape than its input_ids", "record the run again")
    positions = rec.arrays.get("position_ids")
    if positions is not None and positions.shape != ids.shape:
        if positions.shape == (1, ids.shape[1]):
            rec.arrays["position_ids"] = np.repeat(positions, ids.shape[0], axis=0)  # one row of positions, sent for all
        else:
            del rec.arrays["position_ids"]
    return rec


def _labels(rec: MicroRecord, where: str) -> Any:
    """The labels as the batch view reads them (labels[t]: the target at t); from shift_labels where only
    those were sent (labels[t] = shift_labels[t-1])."""
    import numpy as np

    if "labels" in rec.arrays:
        return rec.arrays["labels"]
    shift = rec.arrays.get("shift_labels")
    if shift is None:
        raise InspectorError(f"{where}: the model was sent neither labels nor shift_labels", "show a step of a run that trains on labels")
    out = np.full(shift.shape, IGNORE, dtype=np.int64)
    out[:, 1:] = shift[:, :-1]
    return out


def _laid_out(rec: MicroRecord, labels: Any, shifts: bool, implementation: str | None, use_cache: bool | None) -> dict[str, Any]:
    """The per-token fields of a MicroBatch, and the attention as judged."""
    ids = rec.arrays["input_ids"]
    rows, length = ids.shape
    real, trained = rec.real(), rec.trained(shifts)
    window, how = attention_window(rec, implementation, use_cache)
    segments: list[list[Segment]] = []
    token_segment: list[list[int | None]] = [[None] * length for _ in range(rows)]
    reasons: list[list[str | None]] = []
    attends: list[list[int | None]] = []
    for b, found in enumerate(sequences(rec)):
        mine = []
        for k, (s, e) in enumerate(found):
            kept = [t for t in range(s, e) if real[b, t]]
            allowed = [window[b][t] for t in kept if window[b][t] >= 0]
            mine.append(Segment(None, None, b, s, kept[-1] + 1, None, min(allowed, default=s), int(trained[b, s:e].sum())))
            for t in kept:
                token_segment[b][t] = k
        segments.append(mine)
        reasons.append([
            None if trained[b, t] else PADDING if not real[b, t]
            else FIRST if shifts and t == 0 and labels[b, 0] != IGNORE else NOT_RECORDED
            for t in range(length)
        ])
        attends.append([window[b][t] if real[b, t] else None for t in range(length)])
    return {"segments": segments, "token_segment": token_segment, "reasons": reasons, "attends_from": attends, "how": how,
            "trained": int(trained.sum())}


def _batch(rec: MicroRecord, labels: Any) -> dict[str, Any]:
    import torch

    batch = {"input_ids": torch.as_tensor(rec.arrays["input_ids"]), "labels": torch.as_tensor(labels)}
    for name in ("position_ids", "attention_mask"):
        if name in rec.arrays:
            batch[name] = torch.as_tensor(rec.arrays[name])
    return batch


def _trainer_weight(rec: MicroRecord, divisor: int, world: int, average: bool) -> float | None:
    """Each trained token's weight in the step under the loss the run computed (None: not readable)."""
    if rec.loss is not None and rec.ce_sum:
        return rec.loss / rec.ce_sum / divisor / world
    if rec.num_items_in_batch:  # no loss recorded: the Trainer's own rule for the count it passed
        return 1 / rec.num_items_in_batch / (1 if average or world == 1 else world)
    return None


def recorded_step(rec: Recording, step: int, tokenizer: Any, *, rank: int | None = None, tokenizer_label: str = "") -> StepView:
    """Step `step` of the recording as the batch view shows it: every rank's micro-batches are read (a
    step is shown whole or not at all), `rank` alone kept where given."""
    from inspector.core.batches.layout import token_texts

    if rank is not None and not 0 <= rank < rec.world_size:
        raise InspectorError(f"rank {rank} is not in {rec.folder} (its run had {rec.world_size})", f"pass --rank 0 to {rec.world_size - 1}")
    run = rec.run
    shifts = bool(run.get("loss_shifts_labels", True))
    world = rec.world_size
    notes = [LACKS]
    per_rank: list[list[tuple[MicroRecord, Any, dict[str, Any]]]] = []
    derived = False
    for r in range(world):
        mine = []
        for row in rec.micro_batches(step, r):
            where = f"step {step} of rank {r}, micro-batch {row['micro_step']}"
            record = _record(row, where)
            labels = _labels(record, where)
            derived = derived or "labels" not in record.arrays
            mine.append((record, labels, _laid_out(record, labels, shifts, run.get("attn_implementation"), run.get("model_use_cache"))))
        per_rank.append(mine)
    if derived:
        notes.append("the model was sent shift_labels, not labels: the labels shown are them shifted back (label t = shift_labels t-1)")
    divisor, average = int(run.get("backward_divides_by") or 1), bool(run.get("average_tokens_across_devices"))
    trained_per_rank = [sum(lay["trained"] for _, _, lay in mine) for mine in per_rank]
    total = sum(trained_per_rank)
    sequences_trained = sum(1 for mine in per_rank for _, _, lay in mine for row in lay["segments"] for s in row if s.trained)
    read_off: list[float] = []
    micro_batches: list[MicroBatch] = []
    for m in range(max((len(mine) for mine in per_rank), default=0)):  # micro-step by micro-step, rank by rank
        for r, mine in enumerate(per_rank):
            if m >= len(mine) or (rank is not None and r != rank):
                continue
            record, labels, lay = mine[m]
            in_mb = lay["trained"]
            w = _trainer_weight(record, divisor, world, average)
            if w is not None and in_mb:
                read_off.append(w * total)
            mb_w = 1 / (in_mb * len(mine) * world) if in_mb else 0.0
            trained = [[reason is None for reason in row] for row in lay["reasons"]]
            weights: dict[str, list[list[float]]] = {"trainer": [], "per_micro_batch": [], "per_sequence": []}
            for b, row in enumerate(trained):
                seg_w = [1 / (s.trained * sequences_trained) if s.trained else 0.0 for s in lay["segments"][b]]
                weights["trainer"].append([(w or 0.0) if t else 0.0 for t in row])
                weights["per_micro_batch"].append([mb_w if t else 0.0 for t in row])
                k_of = lay["token_segment"][b]
                weights["per_sequence"].append([seg_w[k_of[t]] if on and k_of[t] is not None else 0.0 for t, on in enumerate(row)])
            micro_batches.append(MicroBatch(
                step=step, micro_step=record.micro_step, rank=r, samples=[], batch=_batch(record, labels),
                texts=token_texts(tokenizer, record.arrays["input_ids"].tolist()), segments=lay["segments"],
                token_segment=lay["token_segment"], reasons=lay["reasons"], attends_from=lay["attends_from"], dropped=[],
                weights=weights,
                recorded={"num_items_in_batch": record.num_items_in_batch, "num_items_source": record.num_items_source,
                          "loss": record.loss, "ce_sum": record.ce_sum, "forward_calls": record.forward_calls,
                          "attention": lay["how"], "other_inputs": record.other_inputs,
                          **{k: record.arrays[k].tolist() for k in ("cu_seq_lens_q", "cu_seq_lens_k") if record.arrays.get(k) is not None}},
            ))
    counts = {rec_.num_items_in_batch for mine in per_rank for rec_, _, _ in mine}
    num_items = int(round(counts.pop())) if len(counts) == 1 and None not in counts else None
    differ = version_differences(run)
    if differ:
        notes.append(f"recorded with other library versions than these: {', '.join(differ)}; the record is shown as it was written")
    unended = [r for r in range(world) if r not in rec.ended]
    if unended:
        notes.append(
            f"rank{'s' if len(unended) > 1 else ''} {', '.join(map(str, unended))} wrote no end.json: the run was stopped "
            "or is still running (every step shown is whole on every rank)"
        )
    if rec.incomplete:
        notes.append(f"step{'s' if len(rec.incomplete) > 1 else ''} {_ranges(sorted(rec.incomplete))} lack a rank's file: never shown")
    args = run.get("args") or {}
    accelerate = args.get("accelerator_config") if isinstance(args.get("accelerator_config"), dict) else {}
    return StepView(
        step=step,
        steps_per_epoch=None,
        micro_batches_per_epoch=None,
        world_size=world,
        micro_batches=micro_batches,
        settings={
            **{k: args.get(k) for k in ("packing", "packing_strategy", "padding_free", "max_length", "truncation_mode",
                                        "completion_only_loss", "assistant_only_loss", "seed", "data_seed",
                                        "train_sampling_strategy", "shuffle_dataset", "dataloader_drop_last")},
            "per_device_train_batch_size": run.get("per_device_train_batch_size"),
            "gradient_accumulation_steps": run.get("gradient_accumulation_steps"),
            "average_tokens_across_devices": average,
            "even_batches": accelerate.get("even_batches"),
            "split_batches": accelerate.get("split_batches"),
            "world_size": world,
        },
        source=f"the recording {rec.folder}",
        dataset_rows=None,
        prepared_rows=None,
        mask_reason=NOT_RECORDED,
        items_per_rank=trained_per_rank,
        num_items_in_batch=num_items,
        normalisation=_normalisation(read_off, total, num_items, len(micro_batches)),
        examples=[],
        dropped_rows=[],
        dropped_summary={},
        notes=notes,
        recording={
            "folder": str(rec.folder),
            "trainer": run.get("trainer"),
            "model": run.get("model"),
            "tokenizer": tokenizer_label or run.get("tokenizer"),
            "rank": rank,
            "recorded_steps": rec.steps,
            "incomplete_steps": {str(k): v for k, v in rec.incomplete.items()},
            "ended_ranks": rec.ended,
            "versions": run.get("versions"),
            "versions_differ": differ,
            "audit_problems": (rec.audit or {}).get("problems"),
        },
    )


def _normalisation(read_off: list[float], total: int, num_items: int | None, shown: int) -> str:
    """The loss's normalisation in words, from the weights read off the run (each weight × N)."""
    counted = f"; num_items_in_batch {num_items}" if num_items is not None else ""
    if total == 0:
        return "this step trains no token: every label is -100 (or a first position) on every rank"
    if not read_off:
        return f"the weights could not be read off the run: no loss or count was recorded ({total} trained tokens){counted}"
    low, high = min(read_off), max(read_off)
    if abs(low - 1) <= WEIGHT_TOLERANCE and abs(high - 1) <= WEIGHT_TOLERANCE:
        return f"each trained token weighs 1/{total} (all ranks' trained tokens), read off the run's loss{counted}"
    return (
        f"the run's loss does not weigh every trained token 1/{total}: weight × {total} is {low:.3g} to {high:.3g} across "
        f"the micro-batches (a mean per micro-batch shows so){counted}"
    )
