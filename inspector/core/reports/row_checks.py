"""The work `inspect-data` does per batch of rows: format, tokenize, label, and find the problems.

A batch goes in as plain data (row numbers, kinds, the rows) and comes out as a `BatchResult`
(the problems in the order found, the counts to add), so the same function runs in this
process or in a worker process (`--num-proc`): the report is put together from the results
in the order of the batches, and comes out the same whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inspector.core.data.chat_format import ARTICLE_MARKERS, FormattedExample, TurnMarkers
from inspector.core.errors import InspectorError

if TYPE_CHECKING:
    from inspector.core.reports.reasoning_checks import Finding

CONVERSATIONAL = ("messages", "conversational-prompt-completion")  # the rows a chat template renders


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
    reasoning: dict[str, int] = field(default_factory=dict)  # strategy -> trained reasoning tokens
    reasoning_rows: int = 0  # rows whose messages carry reasoning


@dataclass(frozen=True)
class _Unit:
    """One row to label: the turn policy's (a split row makes several), the strategies it is
    labelled under, whether it counts as an example, and the row as formatted (on its first unit
    only: the checks made once per row)."""

    row: int
    fe: FormattedExample
    strategies: tuple[str, ...]
    counted: bool
    source: FormattedExample | None
    error: Problem | None = None  # the policy could not make the row's rows


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
    policy: str = "all"  # the turn policy (labels.turn_policy): which assistant turns are trained, in which rows
    inference: Any = None  # the InferenceTemplate training contexts are compared with; None: no chat template

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
        formatted: list[tuple[Job, FormattedExample]] = []
        for job in jobs:
            fe = self._format(job, out)
            if fe is not None:
                formatted.append((job, fe))
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
            # A conversation's bad row says what to do with it (a reasoning field that is not text...).
            said = _said(exc) if kind == "bad-row" and job.kind in CONVERSATIONAL else exc.problem
            out.problems.append(Problem(job.row, kind, said))
            return None

    def _label(self, formatted: list[tuple[Job, FormattedExample]], out: BatchResult) -> None:
        from inspector.core.labels.strategies import encode, label_examples, mask_labels
        from inspector.core.reports import reasoning_checks as rc

        tok, strategies = self.tokenizer, self.strategies
        units = self._units(formatted, out)
        if not units:
            return
        trl_labels: dict[int, Any] = {}
        trl_units = [i for i, u in enumerate(units) if "trl" in u.strategies]
        if trl_units:
            try:
                labeled = label_examples("trl", [units[i].fe for i in trl_units], tok, self.model)
                trl_labels = dict(zip(trl_units, labeled))
            except InspectorError as exc:
                for i in trl_units:
                    out.problems.append(Problem(units[i].row, "template-not-found", exc.problem, "trl"))
        custom_labels: dict[int, Any] = {}
        custom_units = [i for i, u in enumerate(units) if "custom" in u.strategies]
        if self.custom is not None and custom_units:
            # One request for the batch. An error in the user's code stops the report (a
            # LabelCodeError): it is not the row's problem.
            rows = [units[i].row for i in custom_units]
            labeled = self.custom.labeled_many([units[i].fe for i in custom_units], tok, numbers=rows)
            custom_labels = {i: lab.labels for i, lab in zip(custom_units, labeled)}
        for i, unit in enumerate(units):
            if unit.error is not None:
                self._row_checks(unit.row, unit.fe, out, encode(unit.fe, tok))
                out.problems.append(unit.error)
                continue
            fe = unit.fe
            ids, offsets = encode(fe, tok)
            if unit.source is not None:
                same = unit.source.text == fe.text  # the policy kept the row's text: its tokens are these
                self._row_checks(unit.row, unit.source, out, (ids, offsets) if same else encode(unit.source, tok))
            if unit.counted:
                out.examples += 1
                out.tokens += len(ids)
            roles = rc.token_roles(fe, offsets, tok)
            labels: dict[str, tuple[FormattedExample, list[int], list[tuple[int, int]], list[int], Any]] = {}
            for strategy in unit.strategies:
                if strategy == "copy":
                    labels[strategy] = (fe, ids, offsets, list(ids), roles)
                elif strategy == "mask":
                    labels[strategy] = (fe, ids, offsets, mask_labels(ids, offsets, fe), roles)
                elif strategy == "custom" and i in custom_labels:
                    labels[strategy] = (fe, ids, offsets, custom_labels[i], roles)
                elif strategy == "trl" and i in trl_labels:
                    labels[strategy] = self._trl_view(trl_labels[i], fe, ids, offsets, roles)
            said: set[Finding] = set()  # a finding about the row (no strategy) is said once
            for strategy in strategies:
                if strategy not in labels:
                    continue
                s_fe, s_ids, s_offsets, lab, s_roles = labels[strategy]
                closers = [self._closer(s_fe, s_offsets, span) for span in s_fe.answer_spans] if s_offsets else []
                self._check_strategy(unit.row, s_fe, s_ids, lab, strategy, closers, out)
                found = rc.check_row(s_fe, s_ids, s_offsets, lab, strategy, tok, self.inference, s_roles)
                out.problems.extend(Problem(unit.row, *f) for f in found.findings if f[2] is not None or f not in said)
                said.update(f for f in found.findings if f[2] is None)
                out.reasoning[strategy] = out.reasoning.get(strategy, 0) + found.reasoning_trained

    def _units(self, formatted: list[tuple[Job, FormattedExample]], out: BatchResult) -> list[_Unit]:
        """The rows the turn policy makes of each formatted row, with the strategies each is
        labelled under: TRL ignores per-message flags, so a flagged row's TRL rows are its own."""
        from inspector.core.reports import reasoning_checks as rc

        units: list[_Unit] = []
        for job, fe in formatted:
            row = job.row
            try:
                honoured = rc.policy_rows(job, fe, self.policy, self.tokenizer, self.inference, flags=True)
                separate = "trl" in self.strategies and rc.carries_flag(fe)
                ignored = rc.policy_rows(job, fe, self.policy, self.tokenizer, self.inference, flags=False) if separate else []
            except InspectorError as exc:  # the inference template refuses the conversation (split)
                units.append(_Unit(row, fe, (), False, fe, Problem(row, exc.kind or "bad-row", _said(exc))))
                continue
            shared = tuple(s for s in self.strategies if not separate or s != "trl")
            for n, r in enumerate(honoured):
                units.append(_Unit(row, r, shared, True, fe if n == 0 else None))
            units.extend(_Unit(row, r, ("trl",), False, None) for r in ignored)
        return units

    def _row_checks(
        self, row: int, fe: FormattedExample, out: BatchResult, encoded: tuple[list[int], list[tuple[int, int]]]
    ) -> None:
        """What is checked once per row, on the row as rendered (before a turn policy): an empty
        answer, the mask methods' agreement, the flags TRL ignores, whether it carries reasoning."""
        from inspector.core.labels.mask_audit import audit
        from inspector.core.reports import reasoning_checks as rc

        ids, offsets = encoded
        empty = self._empty_answer(fe, ids, offsets)
        if empty:
            out.problems.append(Problem(row, "empty-answer", f"answer {empty} is empty: at most its closing token is trained"))
        if fe.kind == "chat":
            found = audit(fe, self.tokenizer, ids, offsets)
            if found is not None:
                out.problems.append(Problem(row, "mask-methods-disagree", found.detail))
        out.problems.extend(Problem(row, *f) for f in rc.flag_findings(fe))
        out.reasoning_rows += rc.carries_reasoning(fe)

    def _trl_view(
        self, lab: Any, fe: FormattedExample, ids: list[int], offsets: list[tuple[int, int]], roles: Any
    ) -> tuple[FormattedExample, list[int], list[tuple[int, int]], list[int], Any]:
        """TRL's labels with the text they belong to: a split row as TRL renders it has its own."""
        from inspector.core.labels.strategies import encode
        from inspector.core.reports import reasoning_checks as rc

        t_fe = lab.formatted or fe
        t_ids = lab.input_ids
        if t_fe.text == fe.text and t_ids == ids:
            return fe, ids, offsets, lab.labels, roles
        e_ids, e_offsets = encode(t_fe, self.tokenizer)
        if e_ids != t_ids:  # TRL tokenized its text otherwise: no offsets to place its tokens by
            return t_fe, t_ids, [], lab.labels, None
        return t_fe, t_ids, e_offsets, lab.labels, rc.token_roles(t_fe, e_offsets, self.tokenizer)

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


def _said(exc: InspectorError) -> str:
    """A problem's line with what to do about it, where the error says."""
    return f"{exc.problem} ({exc.fix})" if exc.fix else exc.problem
