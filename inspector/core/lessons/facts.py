"""A lesson's facts above its prose: the library versions it describes beside those installed,
how long what it trains takes live, and whether a prepared run of it is stored.

`describes:` in the front matter names the TRL (and transformers) version the prose is
true of; the installed ones are read with importlib.metadata (no torch import), and a
major.minor that differs is a warning, with a mark and words. `live:` is what
`scripts/lesson_times.py --write` measured; a demo run live in this session replaces its
part. What a lesson trains (`lesson_bursts`, `prepared_demo`) is what `causallm-inspect
prepare --lessons N` records for it; the Lab says which of it is stored (`PreparedState`).
The app's lesson pane and `lesson N --plain` show the same lines (`header_lines`), the pane
in a shorter form (`FORMS`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from inspector.core.lessons.model import LIBRARIES, Lesson, LiveTime

# The views that train bursts of the lesson's strategies (in the app, and `lesson N` headless).
TRAINING_VIEWS = ("training", "predictions", "learning")


def installed_version(library: str) -> str | None:
    """The installed version of a distribution, or None (read from its metadata: nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(library)
    except PackageNotFoundError:
        return None


def major_minor(version: str) -> tuple[int, ...]:
    """(major, minor) of a version such as "1.16.0", "1.16" or "1.17.0.dev0"."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit()) if not piece.isdigit() else piece
        parts.append(int(digits or 0))
    return tuple(parts)


@dataclass(frozen=True)
class VersionNote:
    """A library the lesson describes: the version it describes and the one installed (None: not installed)."""

    library: str
    described: str
    installed: str | None

    @property
    def name(self) -> str:
        return LIBRARIES.get(self.library, self.library)

    @property
    def differs(self) -> bool:
        return self.installed is None or major_minor(self.installed) != major_minor(self.described)


def version_notes(lesson: Lesson) -> list[VersionNote]:
    return [VersionNote(lib, described, installed_version(lib)) for lib, described in lesson.describes]


def lesson_bursts(lesson: Lesson) -> tuple[str, ...]:
    """The strategies whose bursts the lesson's view trains (its keys c, m, t): those `prepare
    --lessons N` records for it. (`lesson N` headless skips them where the demo covers the view.)"""
    return lesson.trains if lesson.view in TRAINING_VIEWS else ()


def prepared_demo(lesson: Lesson) -> str | None:
    """The lesson's demo where `prepare` stores it (it trains or builds HF trainers), else None."""
    from inspector.core.lessons.demos import DEMOS

    return lesson.demo if lesson.demo is not None and DEMOS[lesson.demo].prepared else None


def trains(lesson: Lesson) -> bool:
    """The lesson trains (bursts, or a demo `prepare` stores): it has a live time and can be prepared."""
    return bool(lesson_bursts(lesson)) or prepared_demo(lesson) is not None


@dataclass(frozen=True)
class PreparedState:
    """What `prepare --lessons N` records for a lesson ("copy run", "demo eos-padding"), which of it
    is stored for the model in use and the settings on show, and when the oldest of that was recorded."""

    needed: tuple[str, ...]
    missing: tuple[str, ...]
    created: float | None = None

    @property
    def complete(self) -> bool:
        return bool(self.needed) and not self.missing

    @property
    def date(self) -> str:
        return "" if self.created is None else time.strftime("%Y-%m-%d", time.localtime(self.created))


# --- the lines ---------------------------------------------------------------------------

# The forms of the lines: "plain" (`lesson N --plain`, the pane's tooltip: whole), "pane" (the
# wide lesson pane, 39 columns: the prepared line names the command short) and "narrow" (the
# narrow pane, 17 columns: one short line of each).
FORMS = ("plain", "pane", "narrow")


def version_lines(notes: list[VersionNote], *, form: str = "plain") -> list[str]:
    """"describes TRL 1.16 · installed 1.16.0"; a library whose installed major.minor differs is a
    warning ("⚠ ..."). Narrow: "TRL 1.16 = 1.16.0", the first library only where none differs."""
    if not notes:
        return []
    warnings = [
        (f"⚠ {n.name} {n.installed or 'not installed'}, lesson {n.described}" if form == "narrow" else
         f"⚠ {n.name} {n.installed} installed: this lesson describes {n.described}, details may differ"
         if n.installed else f"⚠ {n.name} is not installed: this lesson describes {n.described}")
        for n in notes if n.differs
    ]
    same = [n for n in notes if not n.differs]
    if form == "narrow":
        return warnings or [f"{same[0].name} {same[0].described} = {same[0].installed}"]
    if not same:
        return warnings
    if form == "pane":  # a line per library, each within the pane's width
        return [f"{'describes ' if i == 0 else ''}{n.name} {n.described} · installed {n.installed}"
                for i, n in enumerate(same)] + warnings
    described = ", ".join(f"{n.name} {n.described}" for n in same)
    installed = ", ".join(str(n.installed) for n in same)
    return [f"describes {described} · installed {installed}", *warnings]


def seconds_text(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 599.5 else f"{seconds / 60:.0f} min"


def live_seconds(live: LiveTime | None, measured: float | None) -> tuple[float | None, str]:
    """How long the lesson takes live, and where that comes from: "measured" (the `live:` key),
    "here" (its demo, all it trains, ran live in this session: `measured` seconds) or "partly
    here" (the measured total, its demo's part replaced by the `measured` one)."""
    if measured is None:
        return (None if live is None else live.seconds), "measured"
    if live is None or live.demo is None:
        return measured, "here"
    return live.seconds - live.demo + measured, "partly here"


def prepared_text(state: PreparedState | None, number: int, *, form: str = "plain") -> str:
    """Whether a prepared run of the lesson is stored for the model in use ("" while unknown)."""
    if state is None or not state.needed:
        return ""
    every = state.complete
    none = len(state.missing) == len(state.needed)
    if form == "narrow":
        return "⟲ yes" if every else "⟲ no" if none else "⟲ some"
    if form == "pane":
        command = f"prepare --lessons {number}"
        return f"prepared: yes, recorded {state.date}" if every else f"prepared: {'none' if none else 'some'} · {command}"
    command = f"causallm-inspect prepare --lessons {number}"
    if every:
        return f"prepared run: yes, recorded {state.date}"
    if none:
        return f"prepared run: none: {command}"
    return f"prepared run: {', '.join(state.missing)} missing: {command}"


def speaker_lines(
    lesson: Lesson, number: int, *, prepared: PreparedState | None = None, measured: float | None = None,
    form: str = "plain",
) -> list[str]:
    """For a lesson that trains: how long it takes live and whether a prepared run exists."""
    if not trains(lesson):
        return []
    seconds, source = live_seconds(lesson.live, measured)
    ready = prepared_text(prepared, number, form=form)
    if form == "narrow":
        live = "live ? s" if seconds is None else f"{'took' if source == 'here' else 'live'} {seconds_text(seconds)}"
        return [f"{live} {ready}".strip()]
    if seconds is None:
        live = "live: not measured" + (" (scripts/lesson_times.py)" if form == "plain" else "")
    elif source == "here":
        live = f"live: {seconds_text(seconds)}, as it ran here"
    elif source == "partly here":
        live = f"live ≈ {seconds_text(seconds)}, its demo as it ran here"
    else:
        assert lesson.live is not None
        live = f"live ≈ {seconds_text(seconds)} ({lesson.live.setup})"
    return [line for line in (live, ready) if line]


def header_lines(
    lesson: Lesson, number: int, *, prepared: PreparedState | None = None, measured: float | None = None,
    form: str = "plain",
) -> list[str]:
    """The lines above the lesson's prose: versions, then the speaker's (live time, prepared run)."""
    return [*version_lines(version_notes(lesson), form=form),
            *speaker_lines(lesson, number, prepared=prepared, measured=measured, form=form)]
