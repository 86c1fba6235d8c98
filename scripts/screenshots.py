"""Make the pictures the docs use (docs/images/*.svg), with the app itself.

Each picture is the app driven through Textual's Pilot (`App.run_test`): keys pressed, the
view waited for until it shows what the picture is of, then `App.save_screenshot`, and the
picture checked for the texts it is of before it replaces the old one. A view that does not
get there in time, an error the app shows, or a picture without its texts is a FAILED line:
that picture is left as it was, the others are made, and the exit code is 1.

    python scripts/screenshots.py                   # every picture, into docs/images/
    python scripts/screenshots.py --only labels     # one (repeat --only for more)
    python scripts/screenshots.py --out /tmp/shots  # elsewhere

The pictures of tokens, labels and predictions use the embedded Gemma 3 270M (real words; its
first use converts it, later loads take half a minute on 2 cores). Those that train (the
strategies compared after a burst each) and the recording use the test suite's tiny model,
built here with the suite's own code (tests/tiny_model.py) into a folder called `tiny`, so
the header reads `tiny`: a burst on it takes seconds. The recording is made by
`causallm-inspect record` on that model. Every file the app is given lives in a temporary
folder that is the working folder while the app runs, and is named relatively, so no path of
this machine shows in a picture. What is measured (seconds, tokens/s) is as measured on the
run that made the picture.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
SIZE = (120, 36)
LOAD_TIMEOUT = 300.0  # the embedded model converted on first use takes minutes on 2 cores
FAST_LR = 1e-2  # the tiny model learns visibly in a few steps at this rate (as in the UI tests)


class ShotError(RuntimeError):
    """A view did not reach the state its picture is of."""


# --- waiting ---------------------------------------------------------------------------------


async def wait_until(pilot: Any, condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Let the app run until `condition()` holds; an error the app showed, or the timeout, fails."""
    deadline = time.monotonic() + timeout
    while not condition():
        if pilot.app.errors:
            raise ShotError(f"waiting for {what}, the app showed an error: {pilot.app.errors[-1]}")
        if time.monotonic() > deadline:
            raise ShotError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


def labels_settled(app: Any) -> bool:
    """The model is loaded and the labels view has the labels of the strategy on show."""
    view = app.main.labels_view
    return app.loaded is not None and not view.pending and view.strategy in view.labelings


def demo_settled(app: Any) -> bool:
    """The lesson's demo panel shows its result, or waits for `g`, or there is none."""
    panel = app.main.demo_panel
    if not panel.display or panel.spec is None:
        return True
    if panel.spec.on_demand:
        return panel.spec.quick is None or panel.lesson_id in panel.quick_parts
    return bool(panel.text) and not panel.running


def facts_settled(app: Any) -> bool:
    """The lesson pane's lines are drawn (for a lesson that trains: whether a run is prepared)."""
    from inspector.core.lessons.facts import trains

    facts = app.main.lesson_facts
    lesson = facts.lesson
    return lesson is None or not trains(lesson) or lesson.id in facts.prepared


async def started(pilot: Any) -> None:
    """The model loaded, the first lesson's labels, demo and lines drawn."""
    app = pilot.app
    await wait_until(pilot, lambda: labels_settled(app), "the model and the first labels", LOAD_TIMEOUT)
    await wait_until(pilot, lambda: demo_settled(app), "the first lesson's demo panel")
    await wait_until(pilot, lambda: facts_settled(app), "the lesson pane's lines")


async def open_lesson(pilot: Any, number: int) -> None:
    """Lesson `number` (1-based) on show, its demo and lines drawn."""
    app = pilot.app
    app.goto_lesson(number - 1)
    await pilot.pause()
    await wait_until(pilot, lambda: app.main.lesson_index == number - 1, f"lesson {number}")
    await wait_until(pilot, lambda: demo_settled(app), f"lesson {number}'s demo panel", LOAD_TIMEOUT)
    await wait_until(pilot, lambda: facts_settled(app), f"lesson {number}'s lines")


async def settle(pilot: Any) -> None:
    """The last frame laid out: a few refreshes, no animation running, no toast on top."""
    pilot.app.clear_notifications()
    for _ in range(3):
        await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.3)


async def point_at_second_sequence(pilot: Any, view: Any) -> None:
    """The batch grid's cursor on the first token of the row's second packed sequence, centred:
    where `position` restarts at 0 and the first sequence's trained end is beside it."""
    from inspector.widgets.batch_view import BatchGrid

    grid = view.query_one(BatchGrid)
    segments = grid.mb.segments[grid.batch_row] if grid.mb is not None else []
    if len(segments) < 2:
        raise ShotError(f"the batch row on show holds {len(segments)} sequence(s), not a packed pair")
    grid.move_by_user(segments[1].start)
    await pilot.pause()
    grid.scroll_cursor_visible(center=True)


def contains(svg: str, *texts: str) -> None:
    """The picture shows these texts (Textual writes a cell's text in the SVG, spaces as &#160;)."""
    plain = svg.replace("&#160;", " ")
    missing = [t for t in texts if escape_xml(t) not in plain]
    if missing:
        raise ShotError(f"the picture does not show {', '.join(map(repr, missing))}")


def escape_xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;")


# --- the apps --------------------------------------------------------------------------------


@contextlib.contextmanager
def app_from(argv: list[str]) -> Iterator[Any]:
    """The app exactly as `causallm-inspect ARGV` builds it (options checked, files read), not run."""
    import inspector.running
    from inspector.cli import app as app_command
    from inspector.cli import build_parser

    built: list[Any] = []
    real = inspector.running.run_until_quit
    inspector.running.run_until_quit = lambda app: built.append(app) or 0
    try:
        if app_command.run(build_parser().parse_args(argv)) != 0 or not built:
            raise ShotError(f"causallm-inspect {' '.join(argv)} did not build the app")
        yield built[0]
    finally:
        inspector.running.run_until_quit = real


@contextlib.contextmanager
def working_folder(folder: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


def tiny_model(folder: Path) -> Path:
    """The test suite's tiny model (tests/tiny_model.py), in `folder/tiny`."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import tiny_model as tiny
    finally:
        sys.path.remove(str(ROOT / "tests"))
    target = folder / "tiny"
    if not (target / "config.json").exists():
        tiny.build(target)
    return target


@dataclass
class Shot:
    """One picture: what it shows, the model it needs, and how the app is driven there."""

    name: str
    what: str
    model: str  # "embedded" or "tiny"
    drive: Callable[[Any], Awaitable[list[str]]]  # drives the app (its pilot); returns the texts it must show
    size: tuple[int, int] = SIZE
    argv: Callable[[Path], list[str]] = lambda folder: []  # the command line's options, given the folder


# --- the pictures ----------------------------------------------------------------------------


async def _labels(pilot: Any) -> list[str]:
    """Lesson 1's example under mask: the prompt's labels -100, struck through and grey."""
    app = pilot.app
    await started(pilot)
    await pilot.press("2")
    view = app.main.labels_view
    await wait_until(pilot, lambda: view.strategy == "mask" and labels_settled(app), "the mask labels")
    view.point_at_interesting_column()  # the answer's first trained token, as a lesson opens on it
    await settle(pilot)
    return ["-100", "mask"]


async def _lesson(pilot: Any) -> list[str]:
    """Lesson 2 in the wide pane: its prose, its computed panel, the labels view."""
    await started(pilot)
    await open_lesson(pilot, 2)
    await wait_until(pilot, lambda: labels_settled(pilot.app), "lesson 2's labels")
    await settle(pilot)
    return ["Tokens, special tokens"]


async def _help(pilot: Any) -> list[str]:
    """F1 over the labels view: its help scrolled to its end, the table of the keys that work everywhere."""
    from textual.containers import VerticalScroll
    from textual.widgets import Markdown

    from inspector.screens.help import HelpScreen

    app = pilot.app
    await started(pilot)
    await pilot.press("f1")
    await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
    text = app.screen.query_one("#help-text", Markdown)
    await wait_until(pilot, lambda: bool(text.query("MarkdownTable")), "the help's table of keys")
    await pilot.pause()
    app.screen.query_one("#help-scroll", VerticalScroll).scroll_end(animate=False, immediate=True)
    await settle(pilot)
    return ["Ctrl+P", "command palette", "Ctrl+Q", "Esc closes this help"]


async def _predictions(pilot: Any) -> list[str]:
    """Lesson 4's predictions view: the untrained model's guess at every position, to its end."""
    app = pilot.app
    await started(pilot)
    await open_lesson(pilot, 4)
    view = app.main.views["predictions"]
    await wait_until(pilot, lambda: app.main.view == "predictions" and view.length > 0, "the predictions")
    await pilot.press("end")  # the animation's last frame
    await wait_until(pilot, lambda: view.finished and not view.playing, "the animation's end")
    view.step(-2)  # the answer's first guess selected: its top 5 below
    await settle(pilot)
    return ["untrained"]


async def _strategies(pilot: Any) -> list[str]:
    """Lesson 3's training view after a burst of each strategy (`a`): panels and the comparison table."""
    app = pilot.app
    await started(pilot)
    await open_lesson(pilot, 3)
    view = app.main.training_view
    await pilot.press("a")
    await wait_until(pilot, lambda: view.running, "the bursts to start")
    await wait_until(pilot, lambda: not view.running and {"copy", "mask", "trl"} <= set(view.results), "three bursts")
    await settle(pilot)
    return ["copy", "mask", "trl", "epoch loss"]


async def _batch(pilot: Any) -> list[str]:
    """F6: one optimizer step as TRL packs the article's examples (bfd)."""
    app = pilot.app
    await started(pilot)
    await pilot.press("f6")
    view = app.main.views["batch"]
    await wait_until(pilot, lambda: app.main.view == "batch" and view.step_view is not None, "the packed step", 240)
    await point_at_second_sequence(pilot, view)
    await settle(pilot)
    return ["position", "why -100", "▶2"]


DATA_ROW = 5  # the problem row picked: an answer that is empty
DATA_ROWS: list[Any] = [
    {"messages": [{"role": "user", "content": 'How do you say "dog" in Spanish?'}, {"role": "assistant", "content": "perro"}]},
    {"messages": [{"role": "user", "content": 'And "cat"?'}, {"role": "assistant", "content": "gato"}]},
    "NOT JSON {",
    {"messages": [{"role": "user", "content": "only a question"}]},
    {"messages": [{"role": "user", "content": "Red?"}, {"role": "assistant", "content": ""}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hola"},
                  {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Adiós"}]},
    {"msgs": []},
]


def _data_argv(folder: Path) -> list[str]:
    (folder / "chats.jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in DATA_ROWS))
    return ["--data", "chats.jsonl"]


async def _data(pilot: Any) -> list[str]:
    """--data chats.jsonl: the problem rows listed, one picked (Enter) and shown as training formats it.

    On lesson 8 (multi-turn conversations), a labels lesson with no demo panel: the room is the grid's."""
    from inspector.widgets.problem_list import ProblemList

    app = pilot.app
    await started(pilot)
    await open_lesson(pilot, 8)
    view = app.main.labels_view
    problems = view.query_one(ProblemList)
    await wait_until(pilot, lambda: problems.state == "done", "the data report", 240)
    await pilot.press("e")
    await wait_until(pilot, lambda: app.focused is not None and problems in app.focused.ancestors_with_self,
                     "the problem list in focus")
    rows = [p.row for p in problems.problems]
    if DATA_ROW not in rows:
        raise ShotError(f"row {DATA_ROW} is not among the problem rows listed ({rows})")
    problems.highlighted = rows.index(DATA_ROW)
    await pilot.press("enter")
    await wait_until(pilot, lambda: view.current_row == DATA_ROW and labels_settled(app), f"row {DATA_ROW}'s labels")
    await settle(pilot)
    return ["chats.jsonl", f"row {DATA_ROW}"]


def _live_coding_argv(folder: Path) -> list[str]:
    """Exercise 8's starter file (multi-turn), as `causallm-inspect exercise 8` writes it."""
    from inspector.core.exercises.registry import EXERCISES, write_starter

    write_starter(EXERCISES["multi-turn"], folder / "exercise_8_multi_turn.py")
    return ["--labels-from", "exercise_8_multi_turn.py"]


async def _live_coding(pilot: Any) -> list[str]:
    """Lesson 8 with exercise 8's starter as strategy 4 ("yours"): its labels beside TRL's, the
    columns where they differ marked, and the exercise's check, a line per example."""
    from inspector.widgets.label_function_panel import LabelFunctionPanel

    app = pilot.app
    await started(pilot)
    await open_lesson(pilot, 8)
    view = app.main.labels_view
    panel = view.query_one(LabelFunctionPanel)
    await wait_until(pilot, lambda: "exercise 8:" in str(panel.render()), "the exercise's check", 240)
    await pilot.press("4")
    await wait_until(pilot, lambda: view.strategy == "custom" and labels_settled(app) and "trl" in view.labelings,
                     "yours and trl's labels")
    view.point_at_interesting_column()  # the first column where yours and trl's differ
    await settle(pilot)
    return ["exercise 8", "≠trl"]


RECORD_CONFIG = """\
model_name_or_path: tiny
datasets:
  - path: json
    data_files: rows.jsonl
output_dir: out
use_cpu: true
packing: true
packing_strategy: bfd
max_length: 48
per_device_train_batch_size: 1
gradient_accumulation_steps: 2
max_steps: 2
seed: 3
report_to: none
save_strategy: "no"
logging_strategy: "no"
disable_tqdm: true
"""


def _recording_argv(folder: Path) -> list[str]:
    """`causallm-inspect record` on the tiny model: two optimizer steps of TRL's SFTTrainer, packed."""
    from inspector.cli import main
    from inspector.core.data.chat_format import ARTICLE_PAIRS, article_text

    # prompt/completion rows (the tiny model has no chat template): the article's five examples
    rows = [{"prompt": article_text(en), "completion": f" {es}"} for en, es in ARTICLE_PAIRS]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "sft.yaml").write_text(RECORD_CONFIG)
    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecations, not the run's
        code = main(["record", "--config", "sft.yaml", "--to", "rec", "--steps", "2"])
    if code != 0:
        raise ShotError(f"causallm-inspect record failed (exit {code}):\n{said.getvalue()[-2000:]}")
    return ["--run", "rec"]


async def _recording(pilot: Any) -> list[str]:
    """--run rec: the batch view on the recorded step 1, rank 0."""
    app = pilot.app
    view = app.main.views["batch"]
    await wait_until(pilot, lambda: app.loaded is not None, "the model", LOAD_TIMEOUT)
    await wait_until(pilot, lambda: app.main.view == "batch" and view.step_view is not None, "the recorded step", 240)
    await point_at_second_sequence(pilot, view)
    await settle(pilot)
    return ["recorded step 1", "▶s2"]


SHOTS = {
    shot.name: shot
    for shot in (
        Shot("labels", "the labels view, masked tokens greyed", "embedded", _labels, size=(120, 40)),
        Shot("lesson", "a lesson: prose, computed panel, live view", "embedded", _lesson),
        Shot("strategies", "the three strategies trained and compared", "tiny", _strategies),
        Shot("predictions", "the predictions view", "embedded", _predictions),
        Shot("batch", "one optimizer step, packed", "embedded", _batch),
        Shot("data", "your own data: the problem rows", "embedded", _data, argv=_data_argv),
        Shot("recording", "the app opened on a recording (--run)", "tiny", _recording, argv=_recording_argv),
        Shot("live-coding", "your label function, an exercise checked", "embedded", _live_coding,
             argv=_live_coding_argv),
        Shot("help", "F1: the part in focus explained, the keys", "embedded", _help),
    )
}


# --- making them -----------------------------------------------------------------------------


def shoot(name: str, out: Path, model: str | None = None, folder: Path | None = None) -> Path:
    """Make the picture `name` into `out/NAME.svg` and return its path.

    `model`: a model folder to use instead of the picture's own (the tests give the tiny model);
    `folder`: where its files are made (a temporary folder by default).
    """
    shot = SHOTS[name]
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        work = folder or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shots-")))
        work.mkdir(parents=True, exist_ok=True)
        if model is not None:
            target = work / "tiny"
            if not target.exists():
                target.symlink_to(Path(model).resolve(), target_is_directory=True)
        elif shot.model == "tiny":
            tiny_model(work)
        stack.enter_context(working_folder(work))
        tiny = model is not None or shot.model == "tiny"
        argv = [*(["--model", "tiny", "--live"] if tiny else []), *shot.argv(work), "--device", "cpu"]
        app = stack.enter_context(app_from(argv))
        if tiny:
            epochs, _, seed = app.burst_defaults
            app.burst_defaults = (epochs, FAST_LR, seed)
        return asyncio.run(_run(app, shot, out, work))


async def _run(app: Any, shot: Shot, out: Path, folder: Path) -> Path:
    async with app.run_test(size=shot.size) as pilot:
        texts = await shot.drive(pilot)
        if app.errors:
            raise ShotError(f"the app showed an error: {app.errors[-1]}")
        saved = Path(app.save_screenshot(filename=f"{shot.name}.svg", path=str(folder)))
    svg = saved.read_text(encoding="utf-8")
    contains(svg, *texts)
    if str(folder) in svg or str(folder.resolve()) in svg:
        raise ShotError(f"{saved.name} shows the temporary folder's path")
    path = out / saved.name
    path.write_text(svg, encoding="utf-8")  # only a picture that shows what it is of
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(SHOTS), metavar="NAME",
                        help=f"make only this picture (repeatable): {', '.join(SHOTS)}")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the folder to write to (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or list(SHOTS):
        started_at = time.monotonic()
        try:
            path = shoot(name, args.out)
        except ShotError as exc:
            print(f"{name}.svg: FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        print(f"wrote {path} ({SHOTS[name].what}; {time.monotonic() - started_at:.0f} s)", flush=True)
    if failed:
        print(f"not made: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
