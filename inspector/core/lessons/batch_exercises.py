"""Exercises 11 and 13: a packed row's labels, and each label's weight in an optimizer step,
checked against what TRL and the Trainer compute, on the lesson's batches and on hidden ones.

The references are never written here: TRL's SFTTrainer prepares and packs the examples (the
batch core's `examples_setup` and `sft_trainer`), its collator labels each packed row
(`trainer.data_collator([row])`), and each label's weight in a step is read off the gradient of
the Trainer's own loss (`batches.token_weights.gradient_weights`). A case's setup is sized from the
examples' lengths under the tokenizer in use (an answer cut in its middle, a piece of one token),
so the hidden cases hold on any model.

- exercise 11 (`packing`): `packed_labels(example, tokenizer)`, called once per packed row, with
  `position_ids`, `seq_lengths` and `completion_mask` in the example dict;
- exercise 13 (`weights`): `token_weights(micro_batches)`, called once per step, returning for
  every micro-batch, every row, every label its weight.

The prepared cases are kept per model, tokenizer and template (the app checks on every save).
"""

from __future__ import annotations

import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.batches.step_types import MicroBatch
from inspector.core.errors import InspectorError
from inspector.core.data.chat_format import ARTICLE_PAIRS, ARTICLE_TEMPLATE, ChatTemplate, add_special_tokens, article_text
from inspector.core.lessons.weights import REPEATS, step_examples

from inspector.core.data.tokens import IGNORE_INDEX as IGNORE


def _varied(pairs: Sequence[tuple[str, str]], repeats: Sequence[int]) -> tuple[tuple[str, str], ...]:
    """Lesson 13's examples (answers said `repeats` times), as a case holds them."""
    return tuple(step_examples(pairs, repeats))
WEIGHT_TOLERANCE = 1e-6  # relative to the step's largest weight


@dataclass(frozen=True)
class BatchCase:
    """One SFTTrainer setup of a check: article examples (word, answer), SFTConfig flags, ranks.

    `max_length`: sized from the examples' (length, prompt length) as TRL prepares them unpacked.
    `keep`: which of its packed rows a pack case checks (default: all); for a weights case, what
    its step must show (its name says so: a setup that does not show it on a tokenizer fails loudly)."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    flags: Mapping[str, Any]
    world_size: int = 1
    hidden: bool = False
    max_length: Callable[[list[tuple[int, int]]], int] | None = field(default=None, compare=False)
    keep: Callable[[Any], bool] | None = field(default=None, compare=False)


@dataclass
class PreparedCall:
    """One call of the user's function with its reference answer."""

    name: str
    hidden: bool
    argument: Any  # a pack exercise: the example dict's fields; a weights exercise: the micro-batches
    expected: Any  # labels (one row) or weights (per micro-batch, row, label)
    texts: list[Any] = field(default_factory=list)  # the tokens' visible texts (a row, or per micro-batch rows)
    gradients: Any = None  # a weights case: per micro-batch (G, U) of `gradient_weights`
    count: int = 0  # a weights case: the trained labels of the step


def _cut_in_answer(lengths: list[tuple[int, int]]) -> int:
    """A max_length that cuts the longest example in the middle of its answer."""
    length, prompt = max(lengths)
    return prompt + max(1, (length - prompt) // 2)


def _one_token_over(lengths: list[tuple[int, int]]) -> int:
    """A max_length one token short of the longest example: its last token is a piece of its own."""
    return max(length for length, _ in lengths) - 1


def _whole_first_prompt(lengths: list[tuple[int, int]]) -> int:
    """The first example's prompt length: `wrapped` makes it a block of prompt tokens only."""
    return max(2, lengths[0][1])


def _all_in_one(lengths: list[tuple[int, int]]) -> int:
    return sum(length for length, _ in lengths) + len(lengths)


def _third(lengths: list[tuple[int, int]]) -> int:
    longest = max(length for length, _ in lengths)
    return max(longest, sum(length for length, _ in lengths) // 3)


def _has_cut_answer(arg: dict[str, Any]) -> bool:
    """A segment that starts inside an answer (a completion token at position 0)."""
    return any(p == 0 and c == 1 for p, c in zip(arg["position_ids"], arg["completion_mask"]))


def _has_one_token_piece(arg: dict[str, Any]) -> bool:
    return 1 in arg["seq_lengths"]


def _has_all_masked_micro_batch(micro_batches: list[dict[str, Any]]) -> bool:
    return any(all(x == IGNORE for row in mb["labels"] for x in row[1:]) for mb in micro_batches)


def _has_uneven_devices(micro_batches: list[dict[str, Any]]) -> bool:
    counts: dict[int, int] = {}
    for mb in micro_batches:
        counts[mb["rank"]] = counts.get(mb["rank"], 0) + sum(1 for row in mb["labels"] for x in row[1:] if x != IGNORE)
    return len(set(counts.values())) > 1


LONG_QUESTION = "good morning, my dear friend, how are you on this fine and sunny day"


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
        BatchCase("hidden: answers of different lengths in one row (bfd)", _varied(ARTICLE_PAIRS, (1, 4, 2)),
                  {"packing": True, "packing_strategy": "bfd", "per_device_train_batch_size": 1}, hidden=True,
                  max_length=_all_in_one),
    )


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


# --- preparing the cases ----------------------------------------------------------------------


def _formatted(tokenizer: Any, template: ChatTemplate, pairs: Sequence[tuple[str, str]], model_name: str) -> list[Any]:
    return [
        add_special_tokens(article_text(w, a, template), tokenizer.bos_token, tokenizer.eos_token, template,
                           model_name=model_name)
        for w, a in pairs
    ]


def _lengths(model: Any, tokenizer: Any, formatted: Sequence[Any], device: str) -> list[tuple[int, int]]:
    """(length, prompt length) of each example as TRL prepares it, unpacked and untruncated."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.trainer import sft_trainer

    rows = list(range(1, len(formatted) + 1))
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-exercise-") as tmp:
        flags = {"packing": False, "max_length": None, "per_device_train_batch_size": 1}
        setup = examples_setup(formatted, rows, "the exercise's examples", flags, output_dir=tmp, device=device)
        with sft_trainer(model, tokenizer, setup) as trainer:
            out = []
            for row in trainer.train_dataset:
                labels = row["labels"]
                prompt = next((i for i, x in enumerate(labels) if x != IGNORE), len(labels))
                out.append((len(row["input_ids"]), prompt))
    return out


def _setup_flags(model: Any, tokenizer: Any, case: BatchCase, formatted: Sequence[Any], device: str) -> dict[str, Any]:
    flags = dict(case.flags)
    if case.max_length is not None:
        flags["max_length"] = case.max_length(_lengths(model, tokenizer, formatted, device))
    return flags


def _visible(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([int(i)]) for i in ids]


def prepare_pack_case(model: Any, tokenizer: Any, case: BatchCase, template: ChatTemplate = ARTICLE_TEMPLATE, *,
                      device: str = "cpu", model_name: str = "in use") -> list[PreparedCall]:
    """Each packed row TRL makes for the case (those `case.keep` keeps), with its collator's labels."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.trainer import sft_trainer

    formatted = _formatted(tokenizer, template, case.pairs, model_name)
    flags = _setup_flags(model, tokenizer, case, formatted, device)
    rows = list(range(1, len(formatted) + 1))
    calls = []
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-exercise-") as tmp:
        setup = examples_setup(formatted, rows, "the exercise's examples", flags, output_dir=tmp, device=device)
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
                calls.append(PreparedCall(name, case.hidden, arg, batch["labels"][0].tolist(), _visible(tokenizer, ids)))
    if not calls:
        raise InspectorError(f"the exercise's case '{case.name}': TRL made no such row with this model's tokenizer",
                             "check it with another model (the embedded one is the default)")
    return calls


def prepare_weight_case(model: Any, tokenizer: Any, case: BatchCase, template: ChatTemplate = ARTICLE_TEMPLATE, *,
                        device: str = "cpu", model_name: str = "in use") -> PreparedCall:
    """Step 1 of the case's SFTTrainer on `case.world_size` simulated devices: its micro-batches
    and each label's weight as the Trainer's gradient gives it."""
    from inspector.core.batches.setup import examples_setup
    from inspector.core.batches.steps import inspect_step
    from inspector.core.batches.trainer import sft_trainer
    from inspector.core.batches.token_weights import _gradients

    formatted = _formatted(tokenizer, template, case.pairs, model_name)
    flags = _setup_flags(model, tokenizer, case, formatted, device)
    rows = list(range(1, len(formatted) + 1))
    with tempfile.TemporaryDirectory(prefix="causallm-inspect-exercise-") as tmp:
        setup = examples_setup(formatted, rows, "the exercise's examples", flags, output_dir=tmp, device=device)
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


_prepared: dict[tuple[Any, ...], tuple[Any, Any, list[PreparedCall]]] = {}


def prepared_calls(kind: str, model: Any, tokenizer: Any, cases: Sequence[BatchCase], template: ChatTemplate,
                   *, device: str = "cpu", model_name: str = "in use") -> list[PreparedCall]:
    """The calls of every case, prepared once per model, tokenizer, template and cases."""
    key = (kind, id(model), id(tokenizer), repr(template), tuple(c.name for c in cases), tuple(repr(c.flags) for c in cases))
    found = _prepared.get(key)
    if found is not None and found[0]() is model and found[1]() is tokenizer:
        return found[2]
    calls: list[PreparedCall] = []
    for case in cases:
        if kind == "packed":
            calls += prepare_pack_case(model, tokenizer, case, template, device=device, model_name=model_name)
        else:
            calls.append(prepare_weight_case(model, tokenizer, case, template, device=device, model_name=model_name))
    try:
        _prepared[key] = (weakref.ref(model), weakref.ref(tokenizer), calls)
    except TypeError:  # an object without weak references: prepare again next time
        pass
    return calls


def row_fields(tokenizer: Any, mb: MicroBatch, batch_row: int, mask_reason: str) -> dict[str, Any] | None:
    """Exercise 11's example dict for one row of a batch view's micro-batch (`batches.step_types.MicroBatch`):
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


# --- comparing ---------------------------------------------------------------------------------


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
