"""Do a packed segment's predictions depend on the rows packed before it?

Each segment of a step's micro-batches is run alone (its own sequence, from position 0)
and inside its micro-batch, teacher-forced, and p(next token) is compared at every position
whose next token is in the segment. Inside the micro-batch it is run two ways:

- **as SFTTrainer's compute_loss runs it**: the collator's batch, `use_cache=False`, through
  TRL's fused LM head (`fused_lm_head=True`). With no attention mask and restarting
  position_ids (bfd, padding-free) transformers builds a block-causal mask from the
  position_ids, because no cache is in use: each segment sees only itself.
- **a plain `model(**batch)` call**: the model's own forward with its own `config.use_cache`
  (as it was before `Trainer.__init__` set it to `args.use_cache`, False). With a cache,
  transformers does not look for packed sequences in position_ids, so the mask is plain
  causal and a segment attends to every segment before it in the row.

With `wrapped` packing the collator sends an attention mask of ones: both ways see across
segments. The model runs in eval mode (no dropout), in the attention implementation the
config names (`attn_implementation`), or the model's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspector.core.batches.step_types import TOLERANCE, AttentionReport, MicroBatch, Segment, SegmentCheck, StepView


def _next_token_p_fused(model: Any, inputs: dict[str, Any], ids: Any) -> Any:
    """p(next token) at every position but the last, through TRL's fused head, use_cache=False (compute_loss's way)."""
    out = model(**inputs, labels=ids, use_cache=False, fused_lm_head=True)
    return out.log_probs.float().exp()


def _next_token_p_plain(model: Any, inputs: dict[str, Any], ids: Any, use_cache: bool | None) -> Any:
    """p(next token) from the model's own forward, called plainly, in slices of positions. `use_cache` is the
    model's own config value: Trainer.__init__ sets config.use_cache to args.use_cache (False), after which a
    plain call would not use a cache either."""
    import torch

    config = model.config
    during = config.use_cache
    if use_cache is not None:
        config.use_cache = use_cache
    try:
        logits = model(**inputs).logits
    finally:
        config.use_cache = during
    targets = ids[:, 1:]
    parts = []
    step = 256
    for s in range(0, targets.shape[1], step):
        chunk = logits[:, s : s + step].float().log_softmax(-1)
        parts.append(chunk.gather(-1, targets[:, s : s + step, None])[..., 0].exp())
    return torch.cat(parts, dim=1) if parts else targets.float()


def check_attention(
    trainer: Any,
    view: StepView,
    attn_implementation: str | None = None,
    tolerance: float = TOLERANCE,
    *,
    model_use_cache: bool | None,
) -> AttentionReport:
    """Compare each segment's teacher-forced p(next token) alone and inside its micro-batch, both ways.

    `model_use_cache`: the model config's own use_cache, which the plain call runs with (the setup's,
    as `trainer.sft_trainer` found it before the Trainer turned it off)."""
    import torch

    model = trainer.model
    own_implementation = getattr(model.config, "_attn_implementation", None)
    if attn_implementation:
        try:
            model.set_attn_implementation(attn_implementation)
        except (ValueError, ImportError) as exc:
            from inspector.core.errors import InspectorError

            raise InspectorError(
                f"attn_implementation {attn_implementation!r} cannot be used with this model ({str(exc).splitlines()[0]})",
                "use sdpa or eager on CPU",
            ) from exc
    implementation = str(getattr(model.config, "_attn_implementation", None) or "default")
    was_training = model.training
    model.eval()
    checks: list[SegmentCheck] = []
    try:
        with torch.no_grad():
            for mb in view.micro_batches:
                checks += _check_micro_batch(model, mb, tolerance, model_use_cache)
    finally:
        model.train(was_training)
        if attn_implementation and own_implementation and own_implementation != attn_implementation:
            model.set_attn_implementation(own_implementation)
    return AttentionReport(implementation, checks, tolerance, model_use_cache)


def _check_micro_batch(model: Any, mb: MicroBatch, tolerance: float, use_cache: bool | None) -> list[SegmentCheck]:
    device = next(model.parameters()).device
    inputs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in mb.batch.items() if k != "labels"}
    ids = inputs["input_ids"]
    fused = _next_token_p_fused(model, inputs, ids)
    plain = _next_token_p_plain(model, inputs, ids, use_cache)
    out = []
    for b, segments in enumerate(mb.segments):
        for k, seg in enumerate(segments):
            if seg.end - seg.start < 2:
                continue
            own = ids[b : b + 1, seg.start : seg.end]
            alone = _next_token_p_fused(model, {"input_ids": own}, own)[0]
            span = slice(seg.start, seg.end - 1)
            d_fused = (fused[b, span] - alone).abs()
            d_plain = (plain[b, span] - alone).abs()
            i, j = int(d_fused.argmax()), int(d_plain.argmax())
            earlier = _earlier_rows(segments[:k])
            diff, diff_plain = float(d_fused[i]), float(d_plain[j])
            out.append(
                SegmentCheck(
                    rank=mb.rank,
                    micro_step=mb.micro_step,
                    batch_row=b,
                    row=seg.row,
                    start=seg.start,
                    end=seg.end,
                    max_diff=diff,
                    at=seg.start + i + 1,
                    token=mb.texts[b][seg.start + i + 1],
                    max_diff_plain_call=diff_plain,
                    at_plain_call=seg.start + j + 1,
                    depends_on=earlier if diff > tolerance else [],
                    depends_on_plain_call=earlier if diff_plain > tolerance else [],
                )
            )
    return out


def _earlier_rows(segments: Sequence[Segment]) -> list[int]:
    rows: list[int] = []
    for s in segments:
        if s.row not in rows:
            rows.append(s.row)
    return rows
