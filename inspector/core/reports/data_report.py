"""`causallm-inspect inspect-data`: which tokens a whole dataset trains, and the rows that train nothing.

The report streams through the data in batches (only counters and the problem list are
kept), and finds the silent failures that cost days: rows whose labels are all -100, an
answer whose closing eos / end-of-turn token is never trained, truncation that cuts into an
answer, a template that is not found, and pad == eos.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import ARTICLE_TEMPLATE, ChatTemplate, FormattedExample
from inspector.core.errors import InspectorError

if TYPE_CHECKING:
    from inspector.core.labels.strategies import LabelMaker
    from inspector.core.models import LoadedModel


PROBLEMS = {
    "bad-row": "the row cannot be read, or fits none of TRL's dataset types",
    "mixed-format": "the row is of another type than the rows before it",
    "template-not-found": "no assistant turn was found: the template's markers are not in the row",
    "no-trained-tokens": "every label is -100: the model learns nothing from the row",
    "eos-not-trained": "an answer's closing eos / end-of-turn token is not trained: the model may never learn to stop",
    "truncated-answer": "--max-length cuts into an answer: its trained tokens past the cut are lost",
    "pad-equals-eos": "the pad token is the eos token: a collator that masks padding masks the eos too",
}
FIXES = {
    "bad-row": "fix or drop those rows; map other column names with --columns",
    "mixed-format": "keep one type of row per file",
    "template-not-found": "check --human-marker/--assistant-marker, or give conversations as messages",
    "no-trained-tokens": "drop those rows, or fix their template: they only cost compute",
    "eos-not-trained": "make sure each answer ends with the eos (or end-of-turn) token and that its label is kept",
    "truncated-answer": "raise --max-length, or shorten or split those rows",
    "pad-equals-eos": "give the tokenizer its own pad token, or check that your collator keeps the eos label",
}
KEEP_ROWS = 1000  # rows listed per problem kind; the counts are always complete


@dataclass
class Problem:
    row: int | None  # None: about the whole dataset
    kind: str
    detail: str
    strategy: str | None = None


@dataclass
class StrategyTotals:
    trained_tokens: int = 0
    tokens: int = 0

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
    rows_read: int = 0
    examples: int = 0
    tokens: int = 0
    totals: dict[str, StrategyTotals] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, problem: Problem) -> None:
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
                lines.append(f"{kind}: {n}{where}: {FIXES[kind]}")
        return lines or ["no problems found"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "model": self.model,
            "row_kinds": dict(self.row_kinds),
            "rows": self.rows_read,
            "examples": self.examples,
            "tokens": self.tokens,
            "strategies": {
                s: {"trained_tokens": t.trained_tokens, "tokens": t.tokens, "trained_fraction": t.trained_fraction}
                for s, t in self.totals.items()
            },
            "problem_counts": dict(self.counts),
            "problems": [asdict(p) for p in self.problems],
            "summary": self.summary(),
            "seconds": self.seconds,
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
    template: ChatTemplate = ARTICLE_TEMPLATE,
    chat_template: str | None = None,
    max_length: int | None = None,
    split: str | None = None,
    limit: int | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
    custom: LabelMaker | None = None,
) -> DataReport:
    """Read the data in batches and count each strategy's trained tokens and problems.

    `custom` (the user's label function) is needed for the `custom` strategy; an error in
    its code stops the report (a LabelCodeError), it is not a problem of the row.
    """
    from inspector.core.labels.strategies import check_strategy

    for s in strategies:
        check_strategy(s, custom)
    from inspector.core.data.conversations import ASSISTANT_ROLES, format_messages
    from inspector.core.data.examples import row_to_text
    from inspector.core.data.readers import classify, detect_format, iter_records, messages_of
    from inspector.core.data.tokens import special_token_ids

    start = time.perf_counter()
    tok = loaded.tokenizer
    p = Path(path).expanduser()
    report = DataReport(
        source=str(path),
        format=detect_format(p) if p.exists() else "?",
        model=loaded.name,
        strategies=list(strategies),
        totals={s: StrategyTotals() for s in strategies},
    )
    if tok.pad_token_id is not None and tok.pad_token_id == tok.eos_token_id:
        report.add(Problem(None, "pad-equals-eos", f"pad and eos are both {tok.eos_token!r}"))
    special = special_token_ids(tok)
    first_kind: str | None = None
    for batch in _batches(iter_records(p, split=split, limit=limit, columns=columns), batch_size):
        formatted: list[tuple[int, FormattedExample]] = []
        for rec in batch:
            report.rows_read += 1
            if rec.data is None:
                report.add(Problem(rec.row, "bad-row", f"{rec.where} {rec.error}"))
                continue
            kind, why = classify(rec.data)
            if kind is None:
                report.add(Problem(rec.row, "bad-row", f"{rec.where} {why}"))
                continue
            first_kind = first_kind or kind
            if kind != first_kind:
                report.add(Problem(rec.row, "mixed-format", f"{rec.where} is {kind}, the first rows {first_kind}"))
                continue
            report.row_kinds[kind] += 1
            try:
                if kind in ("messages", "conversational-prompt-completion"):
                    msgs = messages_of(kind, rec.data)
                    if not any(m["role"] in ASSISTANT_ROLES for m in msgs):
                        report.add(Problem(rec.row, "no-trained-tokens", "the conversation has no assistant message"))
                        continue
                    fe = format_messages(msgs, tok, template, chat_template, model_name=loaded.name, where=rec.where)
                else:
                    from inspector.core.data.chat_format import add_special_tokens

                    text = row_to_text(rec.data, template, rec.where)
                    fe = add_special_tokens(text, tok.bos_token, tok.eos_token, template, model_name=loaded.name)
            except InspectorError as exc:
                kind_of = "template-not-found" if ("assistant" in exc.problem) else "bad-row"
                report.add(Problem(rec.row, kind_of, exc.problem))
                continue
            formatted.append((rec.row, fe))
        _label_batch(report, formatted, loaded, strategies, max_length, special, custom)
        if progress:
            progress(report.rows_read)
    if report.rows_read == 0:
        raise InspectorError(f"the data file {path} is empty: it has no rows", "add at least one example")
    report.seconds = time.perf_counter() - start
    return report


def _label_batch(report: DataReport, formatted: list[tuple[int, FormattedExample]], loaded: LoadedModel,
                 strategies: Sequence[str], max_length: int | None, special: set[int],
                 custom: LabelMaker | None = None) -> None:
    """Label a batch of formatted rows; `special` is the tokenizer's special ids (computed once
    per report: Gemma's tokenizer has thousands of added tokens)."""
    from inspector.core.labels.strategies import encode, label_examples, mask_labels

    tok = loaded.tokenizer
    if not formatted:
        return
    trl_rows: dict[int, Any] = {}
    if "trl" in strategies:
        try:
            labeled = label_examples("trl", [fe for _, fe in formatted], tok, loaded.model)
            trl_rows = {row: lab for (row, _), lab in zip(formatted, labeled)}
        except InspectorError as exc:
            for row, _ in formatted:
                report.add(Problem(row, "template-not-found", exc.problem, "trl"))
    for row, fe in formatted:
        ids, offsets = encode(fe, tok)
        report.examples += 1
        report.tokens += len(ids)
        labels = {"copy": list(ids), "mask": mask_labels(ids, offsets, fe)}
        if row in trl_rows:
            labels["trl"] = trl_rows[row].labels
        if custom is not None and "custom" in strategies:
            labels["custom"] = custom.labeled(fe, tok, index=row - 1).labels
        # The token that closes each answer: the one whose text ends where the span ends.
        closers = []
        for a, b in fe.answer_spans:
            pos = next((i for i, (s, e) in enumerate(offsets) if e == b and e > s), None)
            closers.append(pos)
        for strategy in strategies:
            if strategy not in labels:
                continue
            lab = labels[strategy]
            trained = [i for i, x in enumerate(lab) if x != -100 and i > 0]
            totals = report.totals[strategy]
            totals.tokens += len(lab)
            totals.trained_tokens += len(trained)
            if not trained:
                report.add(Problem(row, "no-trained-tokens", f"all {len(lab)} labels are -100", strategy))
                continue
            if strategy == "copy":
                continue
            every = strategy != "trl"  # TRL trains the last answer only
            checked = closers if every else closers[-1:]
            for n, pos in enumerate(checked, start=1):
                if pos is None or ids[pos] not in special or lab[pos] == -100:
                    which = f"answer {n}" if every else "the last answer"
                    report.add(Problem(row, "eos-not-trained", f"{which} does not end in a trained special token", strategy))
                    break
            if max_length is not None and len(ids) > max_length:
                lost = [i for i in trained if i >= max_length]
                if lost:
                    report.add(
                        Problem(
                            row,
                            "truncated-answer",
                            f"{len(ids)} tokens; {len(lost)} of {len(trained)} trained tokens lie past --max-length {max_length}",
                            strategy,
                        )
                    )


def format_report(report: DataReport) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in report.row_kinds.items()) or "none"
    lines = [
        f"{report.source} ({report.format}): {report.rows_read} rows ({kinds}), {report.examples} examples, "
        f"{report.tokens} tokens, read in {report.seconds:.1f} s with {report.model}'s tokenizer",
        "",
        "trained tokens per strategy:",
    ]
    width = max([5, *map(len, report.totals)])
    for s, t in report.totals.items():
        lines.append(f"  {s:<{width}} {t.trained_tokens:>10} of {t.tokens:<10} {100 * t.trained_fraction:6.2f}%")
    lines.append("")
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
