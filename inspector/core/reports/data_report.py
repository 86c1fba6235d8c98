"""`causallm-inspect inspect-data`: which tokens a whole dataset trains, and the rows that train nothing.

The report streams through the data in batches (only counters and the problem list are
kept), and finds the silent failures that cost days: rows whose labels are all -100, an
answer whose closing eos / end-of-turn token is never trained, truncation that cuts into an
answer, a template that is not found, a chat template made for another model (its turn
markers not tokens of this vocabulary: `data.template_fit`), pad == eos, empty answers, tool
calls a format cannot show, and masks that differ by the method that finds them
(`labels.mask_audit`); and, for reasoning traces and tool calls (`reasoning_checks`), trained
turns whose context differs from inference's, reasoning dropped or masked, empty think blocks
trained, prefilled think openers, tool results trained, per-message flags TRL ignores, and the
share of trained tokens that are reasoning, under a turn policy (`--turn-policy`).

With `num_proc` above 1 the batches are checked in worker processes (`row_checks`), at most
a few batches ahead of the one being added to the report, so memory stays flat; the report
is put together in the order of the batches and is the same as with one process.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import ARTICLE_MARKERS, TurnMarkers
from inspector.core.data.readers import cores
from inspector.core.data.template_fit import FIX as FIT_FIX
from inspector.core.data.template_fit import KIND as NOT_FOR_THIS_MODEL
from inspector.core.errors import InspectorError
from inspector.core.reports.reasoning_checks import REASONING_FIXES, REASONING_PROBLEMS, format_share, share_dict
from inspector.core.reports.row_checks import BatchResult, Job, Problem, RowChecker
from inspector.core.reports.run_checks import RUN_FIXES, RUN_PROBLEMS, RunReport

__all__ = ["FIXES", "PROBLEMS", "DataReport", "Problem", "add_run", "cores", "format_report", "inspect_data"]

if TYPE_CHECKING:
    from inspector.core.labels.strategies import LabelMaker
    from inspector.core.models import LoadedModel


# Every problem kind the report can give, with what it means (FIXES: what to do); the one list:
# DataReport.add takes no other kind, and docs/data.md documents each (tests/test_docs.py).
PROBLEMS = {
    "bad-row": "the row cannot be read, or fits none of TRL's dataset types",
    "mixed-format": "the row is of another type than the rows before it",
    "template-not-found": "no assistant turn was found: the template's markers are not in the row",
    NOT_FOR_THIS_MODEL: "the chat template's turn markers are not tokens of this model's vocabulary: "
    "it is made for another model family, and no end-of-turn token can be trained",
    "no-trained-tokens": "every label is -100: the model learns nothing from the row",
    "eos-not-trained": "an answer's closing eos / end-of-turn token is not trained: the model may never learn to stop",
    "truncated-answer": "--max-length cuts into an answer: its trained tokens past the cut are lost",
    "pad-equals-eos": "the pad token is the eos token: a collator that masks padding masks the eos too",
    "empty-answer": "an assistant answer is empty: only its closing token is trained, the model learns to say nothing",
    "stop-token-not-trained": "the chat template's generation markers leave the end-of-turn token out: the model never learns to stop",
    "tool-call-dropped": "a tool call or tool result that the format in use cannot show: the row is refused",
    "mask-methods-disagree": "generation markers, prefix rendering and the prompt/completion split train different tokens",
    **REASONING_PROBLEMS,  # reasoning traces, tool results, per-message flags (reasoning_checks)
    **RUN_PROBLEMS,  # with --config or SFTConfig flags: what TRL's SFTTrainer prepares (run_checks)
}
FIXES = {
    "bad-row": "fix or drop those rows; map other column names with --columns",
    "mixed-format": "keep one type of row per file",
    "template-not-found": "check --human-marker/--assistant-marker, or give conversations as messages",
    NOT_FOR_THIS_MODEL: FIT_FIX,
    "no-trained-tokens": "drop those rows, or fix their template: they only cost compute",
    "eos-not-trained": "make sure each answer ends with the eos (or end-of-turn) token and that its label is kept",
    "truncated-answer": "raise --max-length, or shorten or split those rows",
    "pad-equals-eos": "give the tokenizer its own pad token, or check that your collator keeps the eos label",
    "empty-answer": "write the answers, or drop those rows",
    "stop-token-not-trained": "use a template whose {% generation %} block ends after the end-of-turn token "
    "(TRL's _training variants: `causallm-inspect templates`)",
    "tool-call-dropped": "pass --chat-template with a template that renders tools (qwen2_5, qwen3, llama3_2...)",
    "mask-methods-disagree": "check the template's {% generation %} markers against what the model writes",
    **REASONING_FIXES,
    **RUN_FIXES,
}
KEEP_ROWS = 1000  # rows listed per problem kind; the counts are always complete


@dataclass
class StrategyTotals:
    trained_tokens: int = 0
    tokens: int = 0
    reasoning_tokens: int = 0  # trained tokens whose role is reasoning (a think block, its markers included)

    @property
    def trained_fraction(self) -> float:
        return self.trained_tokens / self.tokens if self.tokens else 0.0


@dataclass
class DataReport:
    source: str
    format: str
    model: str
    strategies: list[str]
    row_kinds: Counter = field(default_factory=Counter)
    row_formats: Counter = field(default_factory=Counter)  # the row format each row was read as
    rows_read: int = 0
    examples: int = 0
    tokens: int = 0
    totals: dict[str, StrategyTotals] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    run: RunReport | None = None  # with --config or SFTConfig flags: TRL's prepared dataset and the step weights
    turn_policy: str = "all"  # which assistant turns are trained (labels.turn_policy)
    inference_template: str | None = None  # what the training contexts are compared with, for display
    reasoning_rows: int = 0  # rows whose messages carry reasoning

    def add(self, problem: Problem) -> None:
        if problem.kind not in PROBLEMS:  # a bug of ours: summary() would leave it out, docs/data.md not name it
            raise ValueError(f"problem kind {problem.kind!r} is not in PROBLEMS")
        self.counts[problem.kind] += 1
        if self.counts[problem.kind] <= KEEP_ROWS:
            self.problems.append(problem)

    def rows_with(self, kind: str) -> list[int]:
        return sorted({p.row for p in self.problems if p.kind == kind and p.row is not None})

    def summary(self) -> list[str]:
        lines = []
        for kind in PROBLEMS:
            n = self.counts.get(kind, 0)
            if n:
                rows = self.rows_with(kind)
                shown = ", ".join(map(str, rows[:10])) + (", …" if len(rows) > 10 else "")
                where = f" (rows {shown})" if rows else ""
                fix = self.run.fix(kind) if self.run is not None and kind in RUN_FIXES else FIXES[kind]
                lines.append(f"{kind}: {n}{where}: {fix}")
        return lines or ["no problems found"]

    def format_found(self) -> str:
        """`ShareGPT rows in jsonl, gzip` (the row formats found, most rows first, and the file's format)."""
        from inspector.core.data.row_formats import FORMAT_TITLES

        formats = " + ".join(FORMAT_TITLES.get(f, f) for f, _ in self.row_formats.most_common()) or "no readable"
        return f"{formats} rows in {self.format}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "model": self.model,
            "row_kinds": dict(self.row_kinds),
            "row_formats": dict(self.row_formats),
            "rows": self.rows_read,
            "examples": self.examples,
            "tokens": self.tokens,
            "strategies": {
                s: {"trained_tokens": t.trained_tokens, "tokens": t.tokens, "trained_fraction": t.trained_fraction}
                for s, t in self.totals.items()
            },
            "turn_policy": self.turn_policy,
            "inference_template": self.inference_template,
            "reasoning_rows": self.reasoning_rows,
            "reasoning_share": {s: share_dict(t.reasoning_tokens, t.trained_tokens) for s, t in self.totals.items()},
            "problem_counts": dict(self.counts),
            "problems": [asdict(p) for p in self.problems],
            "summary": self.summary(),
            "seconds": self.seconds,
            **({"run": self.run.to_dict()} if self.run is not None else {}),
        }


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def inspect_data(
    path: str | Path,
    loaded: LoadedModel,
    *,
    strategies: Sequence[str] = ("copy", "mask"),
    template: TurnMarkers = ARTICLE_MARKERS,
    chat_template: str | None = None,
    max_length: int | None = None,
    split: str | None = None,
    limit: int | None = None,
    columns: dict[str, str] | None = None,
    row_format: str = "auto",
    batch_size: int = 256,
    num_proc: int = 1,
    progress: Callable[[int], None] | None = None,
    custom: LabelMaker | None = None,
    turn_policy: str = "all",
    inference_template: str | None = None,
) -> DataReport:
    """Read the data in batches and count each strategy's trained tokens and problems.

    `custom` (the user's label function) is needed for the `custom` strategy; an error in
    its code stops the report (a LabelCodeError), it is not a problem of the row.
    `turn_policy` says which assistant turns are trained (`split`: one row per turn);
    `inference_template` (a file or a TRL name) is what each trained turn's context is
    compared with, by default the model's own (or the original of a TRL training variant).
    """
    from inspector.core.data.readers import classify, describe_file, iter_records
    from inspector.core.labels.strategies import check_strategy
    from inspector.core.reports.reasoning_checks import check_policy, inference_for

    for s in strategies:
        check_strategy(s, custom)
    check_policy(turn_policy)

    start = time.perf_counter()
    tok = loaded.tokenizer
    p = Path(path).expanduser()
    report = DataReport(
        source=str(path),
        format=describe_file(p) if p.exists() else "?",
        model=loaded.name,
        strategies=list(strategies),
        totals={s: StrategyTotals() for s in strategies},
    )
    if num_proc < 1:
        raise InspectorError(f"--num-proc must be at least 1, not {num_proc}", "pass a positive number")
    if "trl" in strategies or "custom" in strategies:
        num_proc = 1  # TRL's trainer needs the model, the user's function lives in this process: one process
    model = loaded.model if "trl" in strategies else None
    inference = inference_for(tok, chat_template or getattr(tok, "chat_template", None), inference_template)
    checker = RowChecker(
        tok, loaded.name, list(strategies), template, chat_template, max_length, model, custom=custom,
        policy=turn_policy, inference=inference,
    )
    report.turn_policy, report.inference_template = turn_policy, inference.name if inference else None
    if tok.pad_token_id is not None and tok.pad_token_id == tok.eos_token_id:
        report.add(Problem(None, "pad-equals-eos", f"pad and eos are both {tok.eos_token!r}"))
    _check_template(report, checker)
    first_kind: str | None = None
    records = iter_records(p, split=split, limit=limit, columns=columns, row_format=row_format)
    with _Runner(checker, num_proc) as runner:
        for batch in _batches(records, batch_size):
            early: list[Problem] = []
            jobs: list[Job] = []
            for rec in batch:
                report.rows_read += 1
                if rec.format:
                    report.row_formats[rec.format] += 1
                if rec.data is None:
                    early.append(Problem(rec.row, "bad-row", f"{rec.where} {rec.error}"))
                    continue
                kind, why = classify(rec.data)
                if kind is None:
                    early.append(Problem(rec.row, "bad-row", f"{rec.where} {why}"))
                    continue
                first_kind = first_kind or kind
                if kind != first_kind:
                    early.append(Problem(rec.row, "mixed-format", f"{rec.where} is {kind}, the first rows {first_kind}"))
                    continue
                report.row_kinds[kind] += 1
                jobs.append(Job(rec.row, rec.where, kind, rec.data))
            for done in runner.submit(early, jobs):
                _merge(report, *done)
            if progress:
                progress(report.rows_read)
        for done in runner.drain():
            _merge(report, *done)
    _check_template_fits(report, checker)
    if report.rows_read == 0:
        raise InspectorError(f"the data file {path} is empty: it has no rows", "add at least one example")
    report.seconds = time.perf_counter() - start
    return report


def add_run(report: DataReport, run: RunReport) -> None:
    """The run's problems (TRL's prepared dataset under the config's settings) and its step weights, into the report."""
    for problem in run.problems:
        report.add(problem)
    report.run = run


def _format_run(run: RunReport) -> list[str]:
    keys = ("max_length", "truncation_mode", "packing", "packing_strategy", "padding_free")
    settings = ", ".join(f"{k} {run.settings[k]}" for k in keys if k in run.settings)
    what = "packed sequences" if run.settings.get("packing") else "rows"
    lines = [f"the run's settings ({settings}): TRL prepares {run.prepared_rows} {what}, {run.steps} optimizer steps"]
    if run.shares:
        read = f" (the first {run.steps_read} steps)" if run.steps_read < run.steps else ""
        lines.append(f"  heaviest rows{read}: {run.heaviest()}")
    lines.extend(f"  {note}" for note in run.notes)
    return [*lines, ""]


def _check_template(report: DataReport, checker: RowChecker) -> None:
    """TRL's own check of the template in use, once per report: is the end-of-turn token inside its markers?"""
    from inspector.core.data.trl_templates import stop_token_trained

    template = checker.template_in_use
    if not (template and checker.marked) or checker.not_tokens:
        return  # a template of another family: template-not-for-this-model says why, not TRL's stop-token check
    try:
        ok = stop_token_trained(checker.tokenizer, template)
    except Exception:  # noqa: BLE001 -- a template that cannot render TRL's probe conversation: the rows say more
        return
    if not ok:
        report.add(Problem(None, "stop-token-not-trained", "TRL's is_chat_template_stop_token_trained says no"))


def _check_template_fits(report: DataReport, checker: RowChecker) -> None:
    """template-not-for-this-model, once per report: where the template is used (given with
    --chat-template, or the tokenizer's for conversational rows), are its turn markers tokens here?"""
    from inspector.core.data.template_fit import describe

    conversational = ("messages", "conversational-prompt-completion")  # the rows a chat template renders
    used = checker.chat_template is not None or any(k in conversational for k in report.row_kinds)
    if checker.not_tokens and used:
        report.add(Problem(None, NOT_FOR_THIS_MODEL, describe(checker.not_tokens, checker.template_in_use)))


def _merge(report: DataReport, early: list[Problem], result: BatchResult) -> None:
    for problem in early:
        report.add(problem)
    for problem in result.problems:
        report.add(problem)
    report.examples += result.examples
    report.tokens += result.tokens
    for strategy, (trained, tokens) in result.totals.items():
        report.totals[strategy].trained_tokens += trained
        report.totals[strategy].tokens += tokens
    for strategy, reasoning in result.reasoning.items():
        report.totals[strategy].reasoning_tokens += reasoning
    report.reasoning_rows += result.reasoning_rows


class _Runner:
    """Checks batches here (one process) or in worker processes, handing results back in order.

    The workers are forked only once a second batch comes (a small file is checked here), and
    at most two batches per worker wait, so the file is never read far ahead.
    """

    def __init__(self, checker: RowChecker, num_proc: int) -> None:
        self.checker = checker
        self.num_proc = num_proc
        self.pool: Any = None
        self.pending: list[tuple[list[Problem], Any]] = []
        self.batches = 0

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, early: list[Problem], jobs: list[Job]) -> list[tuple[list[Problem], BatchResult]]:
        self.batches += 1
        if self.num_proc == 1:
            return [(early, self.checker.check(jobs))]
        if self.batches == 1:
            self.first = (early, jobs)  # held: checked here if no second batch comes
            return []
        if self.pool is None:
            self._start()
            first_early, first_jobs = self.first
            self.pending.append((first_early, self.pool.submit(_check, first_jobs)))
        self.pending.append((early, self.pool.submit(_check, jobs)))
        out = []
        while len(self.pending) > 2 * self.num_proc:
            out.append(self._take())
        return out

    def drain(self) -> list[tuple[list[Problem], BatchResult]]:
        if self.num_proc > 1 and self.batches == 1:
            early, jobs = self.first
            return [(early, self.checker.check(jobs))]
        out = []
        while self.pending:
            out.append(self._take())
        return out

    def _take(self) -> tuple[list[Problem], BatchResult]:
        early, future = self.pending.pop(0)
        return early, future.result()

    def _start(self) -> None:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        from inspector.core.reports.row_checks import start_worker

        # Forked workers share the tokenizer's memory; its own threads stay off in them.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self.pool = ProcessPoolExecutor(
            self.num_proc, mp_context=multiprocessing.get_context(method), initializer=start_worker,
            initargs=(self.checker,),
        )


def _check(jobs: list[Job]) -> BatchResult:
    from inspector.core.reports.row_checks import check_in_worker

    return check_in_worker(jobs)


def _policy_lines(report: DataReport) -> list[str]:
    from inspector.core.labels.turn_policy import POLICY_HELP

    if report.inference_template is None and report.turn_policy == "all":
        return []
    compared = f"; trained contexts compared with {report.inference_template}" if report.inference_template else ""
    return [f"turn policy {report.turn_policy} ({POLICY_HELP[report.turn_policy]}){compared}", ""]


def format_report(report: DataReport) -> str:
    from inspector.core.data.row_formats import FORMAT_TITLES

    kinds = ", ".join(f"{n} {k}" for k, n in report.row_kinds.items()) or "none"
    formats = ", ".join(f"{FORMAT_TITLES.get(f, f)}" + (f" ({n})" if len(report.row_formats) > 1 else "")
                        for f, n in report.row_formats.most_common())
    lines = [
        (
            f"{report.source} ({report.format}; rows in {formats or '?'} format): {report.rows_read} rows ({kinds}), "
            f"{report.examples} examples, {report.tokens} tokens, read in {report.seconds:.1f} s with {report.model}'s "
            "tokenizer"
        ),
        "",
        *_policy_lines(report),
        "trained tokens per strategy:",
    ]
    width = max([5, *map(len, report.totals)])
    for s, t in report.totals.items():
        lines.append(f"  {s:<{width}} {t.trained_tokens:>10} of {t.tokens:<10} {100 * t.trained_fraction:6.2f}%")
    lines.append("")
    lines.extend(format_share({s: (t.reasoning_tokens, t.trained_tokens) for s, t in report.totals.items()}, report.reasoning_rows))
    if report.run is not None:
        lines.extend(_format_run(report.run))
    if report.counts:
        lines.append("problems:")
        for kind, what in PROBLEMS.items():
            n = report.counts.get(kind, 0)
            if not n:
                continue
            lines.append(f"  {kind} ({n}): {what}")
            for p in [p for p in report.problems if p.kind == kind][:20]:
                where = f"row {p.row}" if p.row is not None else "dataset"
                lines.append(f"    {where}{f' [{p.strategy}]' if p.strategy else ''}: {p.detail}")
            if n > 20:
                lines.append(f"    … {n - 20} more (--json lists up to {KEEP_ROWS} per kind)")
        lines.append("")
    lines.append("summary:")
    lines.extend(f"  {line}" for line in report.summary())
    return "\n".join(lines)
