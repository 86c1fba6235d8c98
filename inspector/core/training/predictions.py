"""Teacher-forced predictions: what the model guesses at every position, in one forward pass.

The article's `print_iterative_generate` generates one greedy token for every prefix of the
text; the argmax of the logits at position i of a single forward pass is the same token
(`iterative_greedy` is kept to show exactly that, in the tests and the lessons).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from inspector.core.labels.strategies import make_rows


@dataclass(frozen=True)
class Candidate:
    id: int
    text: str
    prob: float


@dataclass(frozen=True)
class PredictionRow:
    position: int
    input_id: int
    input: str  # visible text of the token at this position
    target_id: int | None  # the true next token (None at the last position)
    target: str | None
    predicted_id: int
    predicted: str
    correct: bool | None  # None where there is no next token to compare with
    p_target: float | None
    top: tuple[Candidate, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["top"] = [asdict(c) for c in self.top]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PredictionRow:
        return cls(**{**d, "top": tuple(Candidate(**c) for c in d["top"])})


def prediction_input(fe: Any, tokenizer: Any, max_length: int | None = None) -> tuple[list[int], frozenset[int]]:
    """The token ids the predictions of a formatted example are made on, and the positions
    whose next token belongs to an answer (the ones the mask strategy trains)."""
    from inspector.core.labels.strategies import label_example

    masked = label_example("mask", fe, tokenizer, max_length=max_length)
    answer = frozenset(r.position - 1 for r in masked.rows if not r.masked and r.position > 0)
    return list(masked.input_ids), answer


DEFAULT_TOP_K = 5  # candidates kept per position


def teacher_forced(
    model: Any, tokenizer: Any, input_ids: Sequence[int], top_k: int = DEFAULT_TOP_K
) -> list[PredictionRow]:
    """One row per position: the input token, the true next token, the model's argmax guess."""
    import torch

    ids = [int(i) for i in input_ids]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.tensor([ids], device=model.device)
            logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0].float()
    finally:
        model.train(was_training)
    probs = torch.softmax(logits, dim=-1)
    k = min(top_k, probs.shape[-1])
    top_p, top_i = probs.topk(k, dim=-1)
    predicted = logits.argmax(dim=-1).tolist()
    # Texts of every token that appears, made visible the same way as the label rows.
    needed = set(ids) | set(predicted) | set(top_i.flatten().tolist())
    texts = {r.id: r.text for r in make_rows(tokenizer, sorted(needed), [0] * len(needed))}
    rows = []
    for pos, tid in enumerate(ids):
        target = ids[pos + 1] if pos + 1 < len(ids) else None
        pred = predicted[pos]
        rows.append(
            PredictionRow(
                position=pos,
                input_id=tid,
                input=texts[tid],
                target_id=target,
                target=texts[target] if target is not None else None,
                predicted_id=pred,
                predicted=texts[pred],
                correct=(pred == target) if target is not None else None,
                p_target=float(probs[pos, target]) if target is not None else None,
                top=tuple(
                    Candidate(int(i), texts[int(i)], float(p))
                    for i, p in zip(top_i[pos].tolist(), top_p[pos].tolist())
                ),
            )
        )
    return rows


def iterative_greedy(model: Any, tokenizer: Any, input_ids: Sequence[int]) -> list[int]:
    """The article's `print_iterative_generate`: one greedy token per prefix of the text."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=1,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for end in range(1, len(input_ids) + 1):
                x = torch.tensor([list(input_ids[:end])], device=model.device)
                gen = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=config)
                out.append(int(gen[0, -1]))
    finally:
        model.train(was_training)
    return out


def accuracy(rows: Sequence[PredictionRow], start: int = 0, end: int | None = None) -> float:
    """Share of right guesses among positions [start, end) that have a next token."""
    scored = [r for r in rows[start:end] if r.correct is not None]
    return sum(r.correct for r in scored) / len(scored) if scored else 0.0
