"""Exercise 13: `token_weights(micro_batches)`, each label's weight in one optimizer step
(gradient accumulation and devices), called once per step, returning for every micro-batch,
every row, every label its weight; against the weights the Trainer's own gradient gives
(`batches.token_weights`), on the lesson's step and on hidden ones (uneven devices (3 of them), a
micro-batch with no trained label (wrapped packing), copy labels on padded rows, packed rows without
padding (bfd) on 2 devices).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from inspector.core.data.chat_format import ARTICLE_MARKERS, ARTICLE_PAIRS, TurnMarkers
from inspector.core.errors import InspectorError
from inspector.core.exercises.check_report import Case, CaseResult, Checked, CheckReport, Difference
from inspector.core.exercises.trl_cases import IGNORE, BatchCase, PreparedCall, built_once, formatted, setup_flags
from inspector.core.labels.process.code_errors import LabelCodeError
from inspector.core.labels.process.parent import LabelFunction, WeightsCall
from inspector.core.labels.process.protocol import FunctionKind
from inspector.core.lessons.model import Lesson
from inspector.core.lessons.weights import REPEATS, step_examples

WEIGHT_TOLERANCE = 1e-6  # relative to the step's largest weight
LONG_QUESTION = "good morning, my dear friend, how are you on this fine and sunny day"


def _varied(pairs: Sequence[tuple[str, str]], repeats: Sequence[int]) -> tuple[tuple[str, str], ...]:
    """Lesson 13's examples (answers said `repeats` times), as a case holds them."""
    return tuple(step_examples(pairs, repeats))


def _whole_first_prompt(lengths: list[tuple[int, int]]) -> int:
    """The first example's prompt length: `wrapped` makes it a block of prompt tokens only."""
    return max(2, lengths[0][1])


def _third(lengths: list[tuple[int, int]]) -> int:
    longest = max(length for length, _ in lengths)
    return max(longest, sum(length for length, _ in lengths) // 3)


def _has_all_masked_micro_batch(micro_batches: list[dict[str, Any]]) -> bool:
    return any(all(x == IGNORE for row in mb["labels"] for x in row[1:]) for mb in micro_batches)


def _has_uneven_devices(micro_batches: list[dict[str, Any]]) -> bool:
    counts: dict[int, int] = {}
    for mb in micro_batches:
        counts[mb["rank"]] = counts.get(mb["rank"], 0) + sum(1 for row in mb["labels"] for x in row[1:] if x != IGNORE)
    return len(set(counts.values())) > 1


def weight_cases(lesson_flags: Mapping[str, Any], lesson_world: int) -> tuple[BatchCase, ...]:
    flags = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, **dict(lesson_flags)}
    world = lesson_world if lesson_world > 1 else 2
    step = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 2}
    return (
        BatchCase(f"lesson step: {flags['gradient_accumulation_steps']} accumulation steps × {world} devices",
                  _varied(ARTICLE_PAIRS, REPEATS), flags, world_size=world),
        BatchCase("hidden: uneven devices (3 devices, answers of 1 to 9 words)", _varied(ARTICLE_PAIRS, (1, 9, 2, 5, 1, 3)),
                  step, world_size=3, hidden=True, keep=_has_uneven_devices),
        BatchCase("hidden: a micro-batch with no trained label (wrapped packing)",
                  ((LONG_QUESTION, "buenos días"), *ARTICLE_PAIRS[:3]),
                  {"packing": True, "packing_strategy": "wrapped", "per_device_train_batch_size": 1,
                   "gradient_accumulation_steps": 16}, hidden=True, max_length=_whole_first_prompt,
                  keep=_has_all_masked_micro_batch),
        BatchCase("hidden: copy labels (completion_only_loss=False), padded rows", _varied(ARTICLE_PAIRS, (1, 5, 2, 3)),
                  {**step, "per_device_train_batch_size": 2, "completion_only_loss": False}, hidden=True),
        BatchCase("hidden: packed rows without padding (bfd), 2 devices", _varied(ARTICLE_PAIRS, (2, 1, 6, 1, 3, 2, 1, 4)),
                  {**step, "packing": True, "packing_strategy": "bfd"}, world_size=2, hidden=True, max_length=_third),
    )


def build_weight_case(model: Any, tokenizer: Any, case: BatchCase, template: TurnMarkers = ARTICLE_MARKERS, *,
                      device: str = "cpu", model_name: str = "in use") -> PreparedCall:
    """Step 1 of the case's SFTTrainer on `case.world_size` simulated devices: its micro-batches
    and each label's weight as the Trainer's gradient gives it."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.steps import inspect_step
    from inspector.core.batches.token_weights import _gradients
    from inspector.core.batches.trainer import sft_trainer

    examples = formatted(tokenizer, template, case.pairs, model_name)
    flags = setup_flags(model, tokenizer, case, examples, device)
    rows = list(range(1, len(examples) + 1))
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-exercise-") as tmp:
        setup = examples_setup(examples, rows, "the exercise's examples", flags, output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            view = inspect_step(trainer, setup, step=1, world_size=case.world_size)
            found = _gradients(trainer, view)
    micro_batches = []
    for mb in view.micro_batches:
        d = {"rank": mb.rank, "micro_step": mb.micro_step}
        for key in ("input_ids", "labels", "attention_mask", "position_ids"):
            if key in mb.batch:
                d[key] = mb.rows_of(key)
        micro_batches.append(d)
    count = sum(1 for mb in micro_batches for row in mb["labels"] for x in row[1:] if x != IGNORE)
    if case.keep is not None and not case.keep(micro_batches):
        raise InspectorError(f"the exercise's case '{case.name}': TRL's step does not show it with this model's tokenizer",
                             "check it with another model (the embedded one is the default)")
    return PreparedCall(
        case.name, case.hidden, micro_batches, [w for w, _, _ in found], [mb.texts for mb in view.micro_batches],
        gradients=[(g, u) for _, g, u in found], count=count,
    )


def weights_hint(call: PreparedCall, got: Sequence[Sequence[Sequence[float]]]) -> str:
    """The usual cause of wrong weights: a count per micro-batch or per device, label 0 counted."""
    mbs = call.argument
    n = call.count
    first = [g[0] for g_mb in got for g in g_mb if g]
    if any(abs(w) > 0 for w in first):
        return "label 0 of a row predicts nothing (the model shifts the labels): its weight is 0 and it is not counted"
    if n == 0:
        return ""
    for m, (mb, g_mb) in enumerate(zip(mbs, got)):
        in_mb = sum(1 for row in mb["labels"] for x in row[1:] if x != IGNORE)
        trained = [w for row, labels in zip(g_mb, mb["labels"]) for w, x in zip(row[1:], labels[1:]) if x != IGNORE]
        if in_mb and trained and all(abs(w - 1 / in_mb) < 1e-9 for w in trained) and in_mb != n:
            return (f"micro-batch {m}'s weights are 1/{in_mb}, its own count: the Trainer divides by the "
                    f"{n} trained labels of the whole step (every micro-batch, every device)")
    ranks = sorted({mb["rank"] for mb in mbs})
    for rank in ranks:
        mine = [(mb, g) for mb, g in zip(mbs, got) if mb["rank"] == rank]
        in_rank = sum(1 for mb, _ in mine for row in mb["labels"] for x in row[1:] if x != IGNORE)
        trained = [w for mb, g in mine for row, labels in zip(g, mb["labels"]) for w, x in zip(row[1:], labels[1:]) if x != IGNORE]
        for divisor in (in_rank, in_rank * len(ranks)):
            if in_rank and trained and all(abs(w - 1 / divisor) < 1e-9 for w in trained) and divisor != n:
                return (f"device {rank}'s weights are 1/{divisor}, from its own count ({in_rank}): with "
                        f"average_tokens_across_devices the count is summed over the devices ({n})")
    return ""


def gradient_agreement(call: PreparedCall, got: Sequence[Sequence[Sequence[float]]]) -> tuple[float, float]:
    """(cosine, norm ratio) of the step's gradient at the last hidden states under the user's
    weights (Σ w·U) against the Trainer's own (G)."""
    import torch

    mine, theirs = [], []
    for (g, u), weights in zip(call.gradients, got):
        w = torch.zeros(u.shape[:2], dtype=torch.float64)
        for b, row in enumerate(weights):
            for t in range(1, len(row)):
                w[b, t - 1] = row[t]
        mine.append((w.unsqueeze(-1) * u).reshape(-1))
        theirs.append(g.reshape(-1))
    a, b = torch.cat(mine), torch.cat(theirs)
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return (1.0 if na == nb else 0.0), (1.0 if na == nb else (na / nb if nb else float("inf")))
    return float(torch.dot(a, b) / (na * nb)), na / nb


class StepWeights:
    """Exercise 13's kind: each label's weight in an optimizer step, against the Trainer's gradient."""

    unit = "steps"  # what one checked case is (plural)
    function_kind = FunctionKind.WEIGHTS  # how the label process calls it
    strategy = False  # checked on every save, never trained
    needs_model = True  # TRL's trainer on the model builds the cases

    def build_cases(self, lesson: Lesson, model: Any, tokenizer: Any, template: TurnMarkers, *,
                    model_name: str, device: str) -> list[PreparedCall]:
        """Step 1 of every case with the Trainer's weights: built by TRL once."""
        return built_once("step weights", model, tokenizer, weight_cases(lesson.batch_settings, lesson.batch_world_size),
                          template, lambda case: [build_weight_case(model, tokenizer, case, template, device=device,
                                                                    model_name=model_name)])

    def check(
        self, exercise: Checked, number: int, lesson: Lesson, fn: LabelFunction, tokenizer: Any,
        template: TurnMarkers, *, model_name: str, model: Any = None, device: str = "cpu",
    ) -> CheckReport:
        """The user's function on each case's step, against the Trainer's weights."""
        built = self.build_cases(lesson, model, tokenizer, template, model_name=model_name, device=device)
        answers = fn.call_many([WeightsCall(p.argument, tokenizer, i + 1) for i, p in enumerate(built)],
                               stop_on_error=False)
        results = []
        for p, got in zip(built, answers):
            case = Case(p.name, "", hidden=p.hidden)
            if isinstance(got, LabelCodeError):
                results.append(CaseResult(case, False, error=got))
                continue
            scale = max((abs(w) for mb in p.expected for row in mb for w in row), default=0.0) or 1.0
            diffs = tuple(
                Difference(t, p.texts[m][b][t] if m < len(p.texts) and b < len(p.texts[m]) else "", e, g,
                           where=f"micro-batch {m}, row {b}, position {t}")
                for m, (e_mb, g_mb) in enumerate(zip(p.expected, got))
                for b, (e_row, g_row) in enumerate(zip(e_mb, g_mb))
                for t, (e, g) in enumerate(zip(e_row, g_row))
                if abs(e - g) > WEIGHT_TOLERANCE * scale
            )
            cosine, ratio = gradient_agreement(p, got)
            detail = (f"your weights' gradient (at the last hidden states) against the Trainer's: cosine {cosine:.6f}, "
                      f"norm ratio {ratio:.6f}; the step trains {p.count} labels")
            results.append(CaseResult(case, not diffs, diffs, hint=weights_hint(p, got), detail=detail))
        return CheckReport(exercise, number, fn, tuple(results))
