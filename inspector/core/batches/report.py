"""The batch view as plain text: a header, then per micro-batch and rank a line per token."""

from __future__ import annotations

from inspector.core.batches.step_types import AttentionReport, MicroBatch, StepView
from inspector.core.batches.token_weights import SCHEMES, step_sums


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _w(value: float) -> str:
    return f"{value:.4f}" if value else "·"


def _recorded_header(view: StepView) -> list[str]:
    """A recorded step's header: the run's settings as it wrote them, nothing of its data."""
    r, s = view.recording or {}, view.settings
    shown = f", rank {r['rank']} shown" if r.get("rank") is not None else ""
    processes = f"{view.world_size} process{'es' if view.world_size != 1 else ''}"
    packing = f"packing {s['packing_strategy']}" if s.get("packing") else "no packing"
    return [
        f"recorded step {view.step} (recorded: {', '.join(map(str, r.get('recorded_steps') or []))}) of a run of "
        f"{r.get('trainer') or 'a Trainer'} on {processes}{shown}: {len(view.micro_batches)} micro-batch"
        f"{'es' if len(view.micro_batches) != 1 else ''}",
        f"recording: {r.get('folder')} · model {r.get('model')} · tokens read with {r.get('tokenizer')}",
        f"per_device_train_batch_size {s['per_device_train_batch_size']}, gradient_accumulation_steps "
        f"{s['gradient_accumulation_steps']}, {packing}, max_length {s.get('max_length')} (the run's arguments)",
        f"normalisation: {view.normalisation}",
        *(f"note: {n}" for n in view.notes),
    ]


def header(view: StepView) -> list[str]:
    if view.recording is not None:
        return _recorded_header(view)
    s = view.settings
    packing = f"packing {s['packing_strategy']}, max_length {s['max_length']}" if s["packing"] else (
        f"no packing, max_length {s['max_length']}" if s["max_length"] else "no packing, no truncation"
    )
    free = ", padding-free" if s["padding_free"] else ""
    order = "sequential" if s["train_sampling_strategy"] == "sequential" else f"shuffled (seed {s['data_seed'] or s['seed']})"
    lines = [
        f"step {view.step} of {view.steps_per_epoch} in the epoch: {len(view.micro_batches)} micro-batch"
        f"{'es' if len(view.micro_batches) != 1 else ''}"
        + (f" over {view.world_size} simulated ranks" if view.world_size > 1 else ""),
        f"data: {view.source} → TRL prepared {view.prepared_rows} sequence{'s' if view.prepared_rows != 1 else ''} "
        f"({packing}{free})",
        f"per_device_train_batch_size {s['per_device_train_batch_size']}, gradient_accumulation_steps "
        f"{s['gradient_accumulation_steps']}, order {order}, "
        f"{view.micro_batches_per_epoch} micro-batch{'es' if view.micro_batches_per_epoch != 1 else ''} per rank per epoch",
        f"loss on: {'completion only' if s['completion_only_loss'] else 'assistant turns' if s['assistant_only_loss'] else 'every token'}"
        f"; -100 from the dataset's masks reads '{view.mask_reason}'",
        f"normalisation: {view.normalisation}",
    ]
    lines += [f"note: {n}" for n in view.notes]
    return lines


def _attention_line(mb: MicroBatch) -> str:
    if mb.recorded is not None:
        return f"attention as the model got it: {mb.recorded['attention']}"
    if "attention_mask" in mb.batch:
        across = ", across segments" if any(len(row) > 1 for row in mb.segments) else ""
        return f"an attention_mask is sent: each token attends to every earlier token of its row{across}"
    if "position_ids" in mb.batch:
        return (
            "no attention_mask, position_ids restart at each segment: the trainer's forward (use_cache=False) is "
            "block-causal, each segment attends only to itself"
        )
    return "neither attention_mask nor position_ids: plain causal attention over the row"


def micro_batch_lines(mb: MicroBatch) -> list[str]:
    ids = mb.batch["input_ids"].tolist()
    labels = mb.batch["labels"].tolist()
    positions = mb.rows_of("position_ids")
    shape = " × ".join(str(n) for n in mb.batch["input_ids"].shape)
    if mb.recorded is not None:
        got = mb.recorded
        count = "none" if got["num_items_in_batch"] is None else f"{got['num_items_in_batch']:g} ({got['num_items_source']})"
        loss = "not recorded" if got["loss"] is None else f"{got['loss']:.6g}"
        what = f"num_items_in_batch {count}, loss {loss}"
    else:
        what = f"prepared sequences {', '.join(map(str, mb.samples))}"
    lines = [
        f"── step {mb.step}, micro-batch {mb.micro_step}, rank {mb.rank}: input_ids {shape}, {what}",
        f"   {_attention_line(mb)}",
    ]
    for b, row in enumerate(ids):
        segs = " · ".join(
            (f"{k}: [{s.start},{s.end}), {s.trained} trained" if s.row is None else
             f"{k}: row {s.row} [{s.start},{s.end}) from its token {s.row_start}, {s.trained} trained")
            + (" (sees earlier segments)" if s.crosses else "")
            for k, s in enumerate(mb.segments[b])
        )
        lines.append(f"   batch row {b}: {segs}")
        lines.append(
            f"   {'pos':>5} {'token':<14} {'id':>7} {'pos_id':>6} {'label':>7} {'why -100':<16} {'row':>5} "
            f"{'seg':>3} {'sees':>5} {'trainer':>7} {'per-mb':>7} {'per-seq':>7}"
        )
        for t, tid in enumerate(row):
            reason = mb.reasons[b][t]
            k = mb.token_segment[b][t]
            source = mb.segments[b][k].row if k is not None else None
            sees = mb.attends_from[b][t]
            lines.append(
                f"   {t:>5} {_clip(mb.texts[b][t], 14):<14} {tid:>7} "
                f"{positions[b][t] if positions is not None else '':>6} {labels[b][t]:>7} "
                f"{_clip(reason or '', 16):<16} {source if source is not None else '':>5} "
                f"{k if k is not None else '':>3} {(f'{sees}..' if sees is not None else ''):>5} "
                + " ".join(f"{_w(mb.weights[s][b][t]):>7}" for s in SCHEMES)
            )
    for d in mb.dropped:
        lines.append(f"   dropped: row {d.row}, its tokens {d.start}..{d.end - 1} ({len(d.tokens)}): {d.reason}")
    return lines


def _rank_lines(view: StepView) -> list[str]:
    """A recorded step's sums per rank (a recording knows no examples)."""
    sums = step_sums(view)
    lines = [f"per rank in step {view.step}:", f"   {'rank':>5} {'trained':>7} {'loss':>10}"]
    for rank, trained in enumerate(view.items_per_rank):
        losses = [mb.recorded["loss"] for mb in view.micro_batches if mb.rank == rank and mb.recorded]
        if losses:
            total = "" if None in losses else f"{sum(losses):.6g}"
            lines.append(f"   {rank:>5} {trained:>7} {total:>10}")
    lines.append("   weights summed over what is shown: " + ", ".join(f"{k} {v:.4f}" for k, v in sums.items()))
    return lines


def example_lines(view: StepView) -> list[str]:
    if view.recording is not None:
        return _rank_lines(view)
    sums = step_sums(view)
    lines = [f"per example in step {view.step}:", f"   {'row':>5} {'trained':>7} {'trainer':>8} {'per-mb':>8} {'per-seq':>8}"]
    for e in view.examples:
        lines.append(
            f"   {e.row:>5} {e.trained_tokens:>7} " + " ".join(f"{e.weights[s]:>8.4f}" for s in SCHEMES)
        )
    lines.append(f"   {'sum':>5} {sum(e.trained_tokens for e in view.examples):>7} " + " ".join(f"{sums[s]:>8.4f}" for s in SCHEMES))
    d = view.dropped_summary
    if d.get("rows_truncated") or d.get("rows_dropped"):
        lines.append(
            f"over the epoch: truncation cuts {d['tokens_truncated']:,} tokens from {d['rows_truncated']:,} rows; "
            f"{d['rows_dropped']:,} rows ({d['tokens_in_dropped_rows']:,} tokens) never reach a batch"
            + (f": rows {', '.join(str(r.row) for r in view.dropped_rows[:10])}" if view.dropped_rows else "")
        )
    return lines


def attention_lines(report: AttentionReport) -> list[str]:
    cache = "" if report.plain_use_cache is None else f", use_cache={report.plain_use_cache}"
    lines = [
        f"attention check ({report.implementation}): p(next token) of each segment alone vs inside its micro-batch",
        f"   largest difference: {report.max_diff:.2e} as SFTTrainer's compute_loss runs it (use_cache=False), "
        f"{report.max_diff_plain_call:.2e} in a plain model(**batch) call (the model's own config{cache})",
    ]
    for s in report.segments:
        dep = f"depended on rows {', '.join(map(str, s.depends_on))}" if s.depends_on else "its own tokens only"
        dep_plain = (
            f"depended on rows {', '.join(map(str, s.depends_on_plain_call))}" if s.depends_on_plain_call else "its own tokens only"
        )
        lines.append(
            f"   rank {s.rank} micro-batch {s.micro_step} row {s.row} [{s.start},{s.end}): trainer {s.max_diff:.2e} "
            f"at {s.at} ({_clip(s.token or '', 12)}), {dep}; plain call {s.max_diff_plain_call:.2e} at {s.at_plain_call}, {dep_plain}"
        )
    return lines


def format_view(view: StepView) -> str:
    lines = header(view)
    for mb in view.micro_batches:
        lines.append("")
        lines += micro_batch_lines(mb)
    lines.append("")
    lines += example_lines(view)
    if view.attention is not None:
        lines.append("")
        lines += attention_lines(view.attention)
    return "\n".join(lines)
