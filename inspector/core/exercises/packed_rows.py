"""Exercise 11: `packed_labels(example, tokenizer)`, the labels of a packed row as TRL's
collator makes them, called once per packed row with `position_ids`, `seq_lengths` and
`completion_mask` in the example dict; on the rows TRL packs from the lesson's examples and
from hidden ones (an answer cut by bfd_split, a piece of one token, answers of different
lengths). The batch view calls it on the row on show (`row_fields`, `row_call`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import ARTICLE_MARKERS, ARTICLE_PAIRS, TurnMarkers
from inspector.core.errors import InspectorError
from inspector.core.exercises.check_report import Case, CaseResult, Checked, CheckReport, Difference
from inspector.core.exercises.trl_cases import (
    IGNORE,
    BatchCase,
    PreparedCall,
    built_once,
    formatted,
    setup_flags,
    visible,
)
from inspector.core.labels.process.code_errors import LabelCodeError
from inspector.core.labels.process.parent import LabelCall, LabelFunction
from inspector.core.labels.process.protocol import FunctionKind
from inspector.core.lessons.model import Lesson
from inspector.core.lessons.weights import step_examples

if TYPE_CHECKING:
    from inspector.core.batches.step_types import MicroBatch, StepView

EXTRA_FIELDS = ("position_ids", "seq_lengths", "completion_mask")  # the example dict's fields besides input_ids


def _cut_in_answer(lengths: list[tuple[int, int]]) -> int:
    """A max_length that cuts the longest example in the middle of its answer."""
    length, prompt = max(lengths)
    return prompt + max(1, (length - prompt) // 2)


def _one_token_over(lengths: list[tuple[int, int]]) -> int:
    """A max_length one token short of the longest example: its last token is a piece of its own."""
    return max(length for length, _ in lengths) - 1


def _all_in_one(lengths: list[tuple[int, int]]) -> int:
    return sum(length for length, _ in lengths) + len(lengths)


def _has_cut_answer(arg: dict[str, Any]) -> bool:
    """A segment that starts inside an answer (a completion token at position 0)."""
    return any(p == 0 and c == 1 for p, c in zip(arg["position_ids"], arg["completion_mask"]))


def _has_one_token_piece(arg: dict[str, Any]) -> bool:
    return 1 in arg["seq_lengths"]


def pack_cases(lesson_flags: Mapping[str, Any]) -> tuple[BatchCase, ...]:
    flags = {"packing": True, "packing_strategy": "bfd", "max_length": 64, "per_device_train_batch_size": 1,
             **{k: v for k, v in lesson_flags.items() if k in ("packing_strategy", "max_length")}}
    if flags["packing_strategy"] == "wrapped":
        flags["packing_strategy"] = "bfd"  # the exercise is about padding-free rows
    split = {"packing": True, "packing_strategy": "bfd_split", "per_device_train_batch_size": 1}
    return (
        BatchCase(f"lesson examples packed ({flags['packing_strategy']}, max_length {flags['max_length']})",
                  ARTICLE_PAIRS, flags),
        BatchCase("hidden: an answer cut in its middle by bfd_split", (*ARTICLE_PAIRS[:2], ("house", " ".join(["casa"] * 10))),
                  split, hidden=True, max_length=_cut_in_answer, keep=_has_cut_answer),
        BatchCase("hidden: a piece of one token (bfd_split)", ARTICLE_PAIRS[:3], split, hidden=True,
                  max_length=_one_token_over, keep=_has_one_token_piece),
        BatchCase("hidden: answers of different lengths in one row (bfd)", tuple(step_examples(ARTICLE_PAIRS, (1, 4, 2))),
                  {"packing": True, "packing_strategy": "bfd", "per_device_train_batch_size": 1}, hidden=True,
                  max_length=_all_in_one),
    )


def build_pack_case(model: Any, tokenizer: Any, case: BatchCase, template: TurnMarkers = ARTICLE_MARKERS, *,
                    device: str = "cpu", model_name: str = "in use") -> list[PreparedCall]:
    """Each packed row TRL makes for the case (those `case.keep` keeps), with its collator's labels."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.trainer import sft_trainer

    examples = formatted(tokenizer, template, case.pairs, model_name)
    flags = setup_flags(model, tokenizer, case, examples, device)
    rows = list(range(1, len(examples) + 1))
    calls = []
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-exercise-") as tmp:
        setup = examples_setup(examples, rows, "the exercise's examples", flags, output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            for i in range(len(trainer.train_dataset)):
                row = trainer.train_dataset[i]
                batch = trainer.data_collator([{k: row[k] for k in ("input_ids", "labels", "seq_lengths")}])
                ids = [int(x) for x in row["input_ids"]]
                arg = {
                    "input_ids": ids,
                    "text": tokenizer.decode(ids),
                    "position_ids": batch["position_ids"][0].tolist(),
                    "seq_lengths": [int(n) for n in row["seq_lengths"]],
                    "completion_mask": [int(x != IGNORE) for x in row["labels"]],
                }
                if case.keep is not None and not case.keep(arg):
                    continue
                name = f"{case.name}, row {i + 1} (segments {', '.join(map(str, arg['seq_lengths']))})"
                calls.append(PreparedCall(name, case.hidden, arg, batch["labels"][0].tolist(), visible(tokenizer, ids)))
    if not calls:
        raise InspectorError(f"the exercise's case '{case.name}': TRL made no such row with this model's tokenizer",
                             "check it with another model (the embedded one is the default)")
    return calls


def row_fields(tokenizer: Any, mb: MicroBatch, batch_row: int, mask_reason: str) -> dict[str, Any] | None:
    """Exercise 11's example dict for one row of a batch view's micro-batch (`batches.steps.MicroBatch`):
    its fields as the check gives them, `completion_mask` 0 where the prepared row masked the token
    (`mask_reason`) or where it is padding; None for a micro-batch that is not padding-free."""
    from inspector.core.batches.step_types import PADDING

    positions = mb.rows_of("position_ids")
    if positions is None or "attention_mask" in mb.batch:
        return None
    ids = mb.rows_of("input_ids")[batch_row]
    pos = positions[batch_row]
    starts = [t for t, p in enumerate(pos) if p == 0] + [len(pos)]
    return {
        "input_ids": ids,
        "text": tokenizer.decode(ids),
        "position_ids": pos,
        "seq_lengths": [b - a for a, b in zip(starts, starts[1:])],
        "completion_mask": [0 if r in (mask_reason, PADDING) else 1 for r in mb.reasons[batch_row]],
    }


def row_call(tokenizer: Any, fields: Mapping[str, Any], number: int) -> LabelCall:
    """The call of `packed_labels` on a packed row's example dict (`row_fields`, or a built case's)."""
    extra = {k: fields[k] for k in EXTRA_FIELDS}
    return LabelCall(fields["input_ids"], tokenizer, fields["text"], None, number, extra)


def pack_hint(arg: Mapping[str, Any], expected: Sequence[int], got: Sequence[int]) -> str:
    """The usual cause of a packed row's wrong labels, where one fits."""
    diffs = [t for t, (e, g) in enumerate(zip(expected, got)) if e != g]
    if not diffs:
        return ""
    pos, mask = arg["position_ids"], arg["completion_mask"]
    if any(mask[t] == 0 and got[t] != IGNORE for t in diffs):
        return "a prompt token (completion_mask 0) is trained: only the completion is, under completion_only_loss"
    if any(pos[t] == 0 and got[t] != IGNORE for t in diffs):
        return ("the first token of each packed example (position_ids 0) is -100: nothing before it in the row "
                "belongs to its example, so the previous one is never trained to predict it")
    if any(mask[t] == 1 and got[t] == IGNORE for t in diffs):
        return "a completion token past the first of its segment is masked: each is trained, eos included"
    return ""


class PackedRows:
    """Exercise 11's kind: the labels of each packed row TRL makes, against its collator's."""

    unit = "packed rows"  # what one checked case is (plural)
    function_kind = FunctionKind.PACKED_LABELS  # how the label process calls it
    strategy = False  # checked on every save, never trained
    needs_model = True  # TRL's trainer on the model builds the cases

    def build_cases(self, lesson: Lesson, model: Any, tokenizer: Any, template: TurnMarkers, *,
                    model_name: str, device: str) -> list[PreparedCall]:
        """The packed rows of every case, with the collator's labels: built by TRL once."""
        return built_once("packed rows", model, tokenizer, pack_cases(lesson.batch_settings), template,
                          lambda case: build_pack_case(model, tokenizer, case, template, device=device,
                                                       model_name=model_name))

    def check(
        self, exercise: Checked, number: int, lesson: Lesson, fn: LabelFunction, tokenizer: Any,
        template: TurnMarkers, *, model_name: str, model: Any = None, device: str = "cpu",
    ) -> CheckReport:
        """The user's function on TRL's packed rows, against the collator's labels."""
        built = self.build_cases(lesson, model, tokenizer, template, model_name=model_name, device=device)
        answers = fn.call_many([row_call(tokenizer, p.argument, i + 1) for i, p in enumerate(built)],
                               stop_on_error=False)
        results = []
        for p, got in zip(built, answers):
            case = Case(p.name, "", hidden=p.hidden)
            if isinstance(got, LabelCodeError):
                results.append(CaseResult(case, False, error=got))
                continue
            diffs = tuple(
                Difference(t, p.texts[t], e, g) for t, (e, g) in enumerate(zip(p.expected, got)) if e != g
            )
            results.append(CaseResult(case, not diffs, diffs, hint=pack_hint(p.argument, p.expected, got)))
        return CheckReport(exercise, number, fn, tuple(results))

    @staticmethod
    def row_labels(fn: LabelFunction, tokenizer: Any, view: StepView, micro_batch: int, batch_row: int) -> Any:
        """`fn` on one row of a batch view's step (a `batches.steps.StepView`): its labels, its
        LabelCodeError, or None for a micro-batch that is not padding-free."""
        fields = row_fields(tokenizer, view.micro_batches[micro_batch], batch_row, view.mask_reason)
        if fields is None:
            return None
        return fn.call_many([row_call(tokenizer, fields, 1)], stop_on_error=False)[0]
