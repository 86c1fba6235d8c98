"""The work `inspect-data` does per batch of rows: format, tokenize, label, and find the problems.

A batch goes in as plain data (row numbers, kinds, the rows) and comes out as a `BatchResult`
(the problems in the order found, the counts to add), so the same function runs in this
process or in a worker process (`--num-proc`): the report is put together from the results
in the order of the batches, and comes out the same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inspector.core.data.chat_format import ARTICLE_MARKERS, FormattedExample, TurnMarkers
from inspector.core.errors import InspectorError


@dataclass
class Problem:
    row: int | None  # None: about the whole dataset
    kind: str
    detail: str
    strategy: str | None = None


@dataclass(frozen=True)
class Job:
    row: int
    where: str
    kind: str  # readers.KINDS
    data: dict[str, Any]


@dataclass
class BatchResult:
    problems: list[Problem] = field(default_factory=list)
    examples: int = 0
    tokens: int = 0
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)  # strategy -> (trained, tokens)


@dataclass
class RowChecker:
    """What checking a row needs; made once per report (and once per worker process)."""

    tokenizer: Any
    model_name: str
    strategies: Sequence[str]
    template: TurnMarkers = ARTICLE_MARKERS
    chat_template: str | None = None
    max_length: int | None = None
    model: Any = None  # only for the trl strategy
    custom: Any = None  # the user's label function (a LabelMaker), only for the custom strategy
    special: set[int] = field(default_factory=set)
    marked: bool = False  # the chat template in use has {% generation %} markers
    # The chat template's special strings that are not one token here: a template of another family.
    not_tokens: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        from inspector.core.data.conversations import has_generation_markers
        from inspector.core.data.template_fit import not_single_tokens
        from inspector.core.data.tokens import special_token_ids

        # Computed once: Gemma's tokenizer has thousands of added tokens.
        self.special = special_token_ids(self.tokenizer)
        self.marked = has_generation_markers(self.template_in_use)
        self.not_tokens = not_single_tokens(self.tokenizer, self.template_in_use)

    @property
    def template_in_use(self) -> str | None:
        """The chat template conversations are rendered with: --chat-template, or the tokenizer's."""
        return self.chat_template or getattr(self.tokenizer, "chat_template", None)

    def check(self, jobs: Sequence[Job]) -> BatchResult:
        out = BatchResult(totals={s: (0, 0) for s in self.strategies})
        formatted: list[tuple[int, FormattedExample]] = []
        for job in jobs:
            fe = self._format(job, out)
            if fe is not None:
                formatted.append((job.row, fe))
        self._label(formatted, out)
        return out

    def _format(self, job: Job, out: BatchResult) -> FormattedExample | None:
        from inspector.core.data.chat_format import add_special_tokens
        from inspector.core.data.conversations import ASSISTANT_ROLES, format_messages
        from inspector.core.data.examples import row_to_text
        from inspector.core.data.readers import messages_of, tools_of

        tok = self.tokenizer
        try:
            if job.kind in ("messages", "conversational-prompt-completion"):
                msgs = messages_of(job.kind, job.data)
                if not any(m["role"] in ASSISTANT_ROLES for m in msgs):
                    out.problems.append(Problem(job.row, "no-trained-tokens", "the conversation has no assistant message"))
                    return None
                return format_messages(
                    msgs, tok, self.template, self.chat_template, tools=tools_of(job.data),
                    model_name=self.model_name, where=job.where,
                )
            text = row_to_text(job.data, self.template, job.where)
            return add_special_tokens(text, tok.bos_token, tok.eos_token, self.template, model_name=self.model_name)
        except InspectorError as exc:
            kind = exc.kind or ("template-not-found" if "assistant" in exc.problem else "bad-row")
            out.problems.append(Problem(job.row, kind, exc.problem))
            return None

    def _label(self, formatted: list[tuple[int, FormattedExample]], out: BatchResult) -> None:
        from inspector.core.labels.mask_audit import audit
        from inspector.core.labels.strategies import encode, label_examples, mask_labels

        tok, strategies = self.tokenizer, self.strategies
        if not formatted:
            return
        trl_rows: dict[int, Any] = {}
        if "trl" in strategies:
            try:
                labeled = label_examples("trl", [fe for _, fe in formatted], tok, self.model)
                trl_rows = {row: lab for (row, _), lab in zip(formatted, labeled)}
            except InspectorError as exc:
                for row, _ in formatted:
                    out.problems.append(Problem(row, "template-not-found", exc.problem, "trl"))
        custom_rows: dict[int, Any] = {}
        if self.custom is not None and "custom" in strategies:
            # One request for the batch. An error in the user's code stops the report (a
            # LabelCodeError): it is not the row's problem.
            rows = [row for row, _ in formatted]
            labeled = self.custom.labeled_many([fe for _, fe in formatted], tok, numbers=rows)
            custom_rows = {row: lab.labels for row, lab in zip(rows, labeled)}
        for row, fe in formatted:
            ids, offsets = encode(fe, tok)
            out.examples += 1
            out.tokens += len(ids)
            labels = {"copy": list(ids), "mask": mask_labels(ids, offsets, fe)}
            if row in trl_rows:
                labels["trl"] = trl_rows[row].labels
            if row in custom_rows:
                labels["custom"] = custom_rows[row]
            closers = [self._closer(fe, offsets, span) for span in fe.answer_spans]
            empty = self._empty_answer(fe, ids, offsets)
            if empty:
                out.problems.append(Problem(row, "empty-answer", f"answer {empty} is empty: at most its closing token is trained"))
            if fe.kind == "chat":
                found = audit(fe, tok, ids, offsets)
                if found is not None:
                    out.problems.append(Problem(row, "mask-methods-disagree", found.detail))
            for strategy in strategies:
                if strategy in labels:
                    self._check_strategy(row, fe, ids, labels[strategy], strategy, closers, out)

    def _check_strategy(
        self, row: int, fe: FormattedExample, ids: list[int], lab: list[int], strategy: str,
        closers: list[int | None], out: BatchResult,
    ) -> None:
        trained = [i for i, x in enumerate(lab) if x != -100 and i > 0]
        done, seen = out.totals[strategy]
        out.totals[strategy] = (done + len(trained), seen + len(lab))
        if not trained:
            out.problems.append(Problem(row, "no-trained-tokens", f"all {len(lab)} labels are -100", strategy))
            return
        if strategy == "copy":
            return
        every = strategy != "trl"  # TRL trains the last answer only
        # A template of another family has no end-of-turn token here to train: that cause is
        # reported once for the data (template-not-for-this-model), not as each row's stop token.
        foreign = fe.kind == "chat" and bool(self.not_tokens)
        checked = [] if foreign else closers if every else closers[-1:]
        for n, pos in enumerate(checked, start=1):
            if pos is None or ids[pos] not in self.special or lab[pos] == -100:
                which = f"answer {n}" if every else "the last answer"
                if fe.kind == "chat" and self.marked:
                    detail = f"{which}: the template's generation markers end before its end-of-turn token"
                    out.problems.append(Problem(row, "stop-token-not-trained", detail, strategy))
                else:
                    detail = f"{which} does not end in a trained special token"
                    out.problems.append(Problem(row, "eos-not-trained", detail, strategy))
                break
        if self.max_length is not None and len(ids) > self.max_length:
            lost = [i for i in trained if i >= self.max_length]
            if lost:
                detail = (
                    f"{len(ids)} tokens; {len(lost)} of {len(trained)} trained tokens lie past --max-length {self.max_length}"
                )
                out.problems.append(Problem(row, "truncated-answer", detail, strategy))

    def _closer(self, fe: FormattedExample, offsets: list[tuple[int, int]], span: tuple[int, int]) -> int | None:
        """The token that closes an answer: the last one inside its span that is not only whitespace."""
        a, b = span
        inside = [i for i, (s, e) in enumerate(offsets) if e > s and a <= s and e <= b and fe.text[s:e].strip()]
        return inside[-1] if inside else None

    def _empty_answer(self, fe: FormattedExample, ids: list[int], offsets: list[tuple[int, int]]) -> int | None:
        """The number of the first empty answer: an assistant message with no content and no tool call
        (conversations), or an answer span holding nothing but special tokens and whitespace (texts)."""
        from inspector.core.data.conversations import ASSISTANT_ROLES

        if fe.messages is not None:
            answers = [m for m in fe.messages if m["role"] in ASSISTANT_ROLES]
            return next((n for n, m in enumerate(answers, 1) if not m["content"].strip() and not m.get("tool_calls")), None)
        for n, (a, b) in enumerate(fe.answer_spans, start=1):
            content = [
                i for i, (s, e) in enumerate(offsets) if a <= s < b and e > s and ids[i] not in self.special and fe.text[s:e].strip()
            ]
            if not content:
                return n
        return None


_WORKER: RowChecker | None = None


def start_worker(checker: RowChecker) -> None:
    """A worker process's initializer: the checker it uses for every batch."""
    global _WORKER
    _WORKER = checker


def check_in_worker(jobs: Sequence[Job]) -> BatchResult:
    assert _WORKER is not None, "start_worker runs first"
    return _WORKER.check(jobs)
