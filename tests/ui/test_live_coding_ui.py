"""Live coding in the app: the user's label function (--labels-from) shown, reloaded on save, trained."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from textual.widgets import Input
from ui_helpers import FAST_LR, started, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from label_functions import LAST_ANSWER, NO_EOS, RIGHT  # noqa: E402

from inspector.app import InspectorApp  # noqa: E402
from inspector.core.labels.reload import LabelReloader  # noqa: E402
from inspector.widgets.label_function_panel import LabelFunctionPanel  # noqa: E402

SIZE = (140, 42)


def _app(tiny_path: Path, file: Path) -> InspectorApp:
    reloader = LabelReloader(str(file))
    reloader.load()
    return InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live", labels_from=reloader)


def _save(file: Path, text: str) -> None:
    file.write_text(text)


def _panel(app: InspectorApp) -> str:
    return str(app.main.labels_view.query_one(LabelFunctionPanel).render())


async def test_saving_the_label_function_updates_the_columns_and_the_count(tiny_path, tmp_path):
    file = tmp_path / "mask.py"
    _save(file, RIGHT)
    app = _app(tiny_path, file)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        await pilot.press("4")
        assert view.strategy == "custom"
        await wait_until(pilot, lambda: "custom" in view.labelings and not view.pending, what="your labels")
        assert view.labelings["custom"].labels == view.labelings["mask"].labels
        assert "gives the labels of mask at every position" in _panel(app)
        right = view.labelings["custom"].labels

        _save(file, NO_EOS)  # never trains the eos that closes the answer
        await wait_until(pilot, lambda: "differs from mask at 1 position" in _panel(app), timeout=20, what="the reload")
        eos = len(right) - 1
        assert view.labelings["custom"].labels[eos] == -100 and right[eos] != -100
        assert view.grid.differs == frozenset({eos})  # the column is marked ≠

        _save(file, "def make_labels(example, tokenizer):\n    return [\n")  # a syntax error
        await wait_until(pilot, lambda: "does not load" in _panel(app), timeout=20, what="the error")
        assert f"{file}" in _panel(app) and "line 2" in _panel(app)
        assert view.labelings["custom"].labels[eos] == -100  # the last version that loaded goes on
        assert app.errors == []  # the user's error is shown in the panel, not as the app's


async def test_the_label_function_trains_and_a_new_version_marks_it_stale(tiny_path, tmp_path):
    file = tmp_path / "mine.py"
    _save(file, RIGHT.replace("def make_labels", "def my_mask"))
    reloader = LabelReloader(f"{file}:my_mask")
    reloader.load()
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live", labels_from=reloader)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        view = app.main.training_view
        assert "my_mask" in str(view.panel("custom").border_title)
        view.query_one("#set-epochs", Input).value = "2"
        await pilot.press("u")
        await wait_until(pilot, lambda: "custom" in view.results and not view.running, timeout=90, what="the burst")
        losses = view.panel("custom").losses
        assert len(losses) == 10 and losses[-1] < losses[0]
        assert view.table.row_values("custom")["strategy"].startswith("my_mask")
        assert not view.panel("custom").stale

        _save(file, RIGHT.replace("def make_labels", "def my_mask").replace("mask_token_id = -100", "mask_token_id = -100  # v2"))
        await wait_until(pilot, lambda: view.panel("custom").stale, timeout=20, what="the stale mark")
        assert "stale" in view.table.row_values("custom")["strategy"]
        await pilot.press("x")
        await wait_until(pilot, lambda: not view.panel("custom").stale, what="the reset")
        assert app.errors == []


async def test_an_exercise_file_is_checked_on_every_save(tiny_path, tmp_path):
    from inspector.core.exercises.registry import exercise_for, write_starter
    from inspector.core.lessons.model import load_lessons

    lessons = load_lessons()
    file = write_starter(exercise_for(lessons[3], 4, lessons), tmp_path / "exercise_4_mask.py")
    app = _app(tiny_path, file)  # the starter as written: it labels like copy
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: "exercise 4: 0 of" in _panel(app), timeout=30, what="the first check")
        assert "✗ lesson example 1" in _panel(app)
        head = file.read_text().split("def make_labels")[0]
        _save(file, head + RIGHT.lstrip())
        await wait_until(pilot, lambda: "all pass ✓" in _panel(app), timeout=30, what="the check after the save")
        assert "✗" not in _panel(app)


async def test_exercise_8s_file_is_yours_compared_with_trl_and_checked_on_save(tiny_path, tmp_path):
    """Exercise 8 is a label strategy checked against TRL: its starter (one turn right) differs from
    trl on lesson 8's two turns; after a right save, yours gives trl's labels and the check passes."""
    from inspector.core.exercises.registry import EXERCISES, write_starter

    file = write_starter(EXERCISES["multi-turn"], tmp_path / "exercise_8_multi_turn.py")
    app = _app(tiny_path, file)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: "exercise 8: 1 of 5" in _panel(app), timeout=60, what="the first check")
        app.main.show_lesson(7)  # lesson 8: its two-turn example
        view = app.main.labels_view
        await pilot.press("4")
        assert view.strategy == "custom"
        await wait_until(pilot, lambda: {"custom", "trl"} <= set(view.labelings) and not view.pending, timeout=30,
                         what="yours and trl's labels")
        assert "differs from trl at" in _panel(app) and "✗ lesson example" in _panel(app)
        head = file.read_text().split("def make_labels")[0]
        _save(file, head + LAST_ANSWER.lstrip())
        await wait_until(pilot, lambda: "all pass ✓" in _panel(app), timeout=60, what="the check after the save")
        await wait_until(pilot, lambda: "gives the labels of trl at every position" in _panel(app), timeout=30,
                         what="yours equal to trl's")
        assert view.labelings["custom"].labels == view.labelings["trl"].labels != view.labelings["mask"].labels
        assert app.errors == []


async def test_a_trains_all_four_and_the_footer_says_so(tiny_path, tmp_path):
    file = tmp_path / "mine.py"
    _save(file, RIGHT)
    app = _app(tiny_path, file)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        assert app.screen.active_bindings["a"].binding.description == "all four"
        view = app.main.training_view
        view.query_one("#set-epochs", Input).value = "1"
        await pilot.press("a")
        await wait_until(pilot, lambda: view.last_request is not None and not view.running, timeout=120, what="four bursts")
        assert view.last_request == ("copy", "mask", "trl", "custom")
        assert set(view.results) == {"copy", "mask", "trl", "custom"}
        assert app.errors == []


async def test_without_a_label_function_a_is_all_three(tiny_path):
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        bindings = app.screen.active_bindings
        assert bindings["a"].binding.description == "all three" and "u" not in bindings


def _cpu_seconds(pid: int) -> float | None:
    """The CPU time process `pid` used so far, None once it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the label process's CPU time in /proc")
async def test_an_endless_loop_saved_while_the_app_runs_is_stopped_and_the_fix_loads(tiny_path, tmp_path):
    from inspector.core.labels.process import sandbox

    file = tmp_path / "mask.py"
    pid_file = tmp_path / "pid"
    _save(file, RIGHT)
    app = _app(tiny_path, file)
    old_timeout = sandbox.default_sandbox().timeout
    sandbox.set_timeout(1.0)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            view = app.main.labels_view
            await pilot.press("4")
            await wait_until(pilot, lambda: "custom" in view.labelings and not view.pending, what="your labels")
            right = view.labelings["custom"].labels
            _save(file, f"import os\ndef make_labels(example, tokenizer):\n"
                        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n    while True:\n        pass\n")
            await wait_until(pilot, lambda: "time limit" in _panel(app), timeout=30, what="the loop's error")
            assert f"{file}, line 4" in _panel(app) or f"{file}, line 5" in _panel(app)
            assert app.errors == []  # the user's error, in the panel
            assert view.labelings["custom"].labels == right  # the last good version stays in use
            pid = int(pid_file.read_text())
            await wait_until(pilot, lambda: _cpu_seconds(pid) is None, timeout=10, what="the loop's process to end")
            await pilot.press("down")  # the app answers keys
            _save(file, NO_EOS)
            await wait_until(pilot, lambda: "differs from mask at 1 position" in _panel(app), timeout=30, what="the fix")
            assert app.errors == []
    finally:
        sandbox.set_timeout(old_timeout)


async def test_a_burst_that_trains_no_token_is_refused_with_a_notification(tiny_path, tmp_path):
    file = tmp_path / "nothing.py"
    _save(file, "def make_labels(example, tokenizer):\n    return [-100] * len(example['input_ids'])\n")
    app = _app(tiny_path, file)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f3")
        view = app.main.training_view
        view.query_one("#set-epochs", Input).value = "1"
        await pilot.press("u")
        await wait_until(pilot, lambda: view.panel("custom").state == "refused" and not view.running, timeout=60,
                         what="the refusal")
        assert "custom" not in view.results and view.panel("custom").losses == []
        told = [n.message for n in app._notifications]
        assert any("trains no token of any of the 5 examples" in m for m in told), told
        assert app.errors == []


async def test_an_exercise_whose_function_is_not_a_strategy_is_checked_not_trained(tiny_path, tmp_path):
    """Exercise 13's token_weights(micro_batches): checked on every save, said where the batch view
    is on show; no custom strategy, no key 4."""
    from inspector.cli.app import exercise_reloader
    from inspector.core.exercises.registry import EXERCISES, write_starter

    file = write_starter(EXERCISES["weights"], tmp_path / "exercise_13_weights.py")
    reloader = exercise_reloader(str(file))
    assert reloader is not None and not reloader.strategy and reloader.params == ("micro_batches",)
    reloader.load()
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live", labels_from=reloader)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: "exercise 13: 0 of 5" in _panel(app), timeout=60, what="the first check")
        assert "custom" not in app.main.lab.strategies and "4" not in app.screen.active_bindings
        app.main.show_lesson(12)
        await pilot.pause()
        head = file.read_text().split("def token_weights")[0]
        _save(file, head + (
            "def token_weights(micro_batches):\n"
            "    n = sum(1 for mb in micro_batches for row in mb['labels'] for x in row[1:] if x != -100)\n"
            "    return [[[1 / n if t and x != -100 else 0.0 for t, x in enumerate(r)] for r in mb['labels']]"
            " for mb in micro_batches]\n"
        ))
        await wait_until(pilot, lambda: "all pass ✓" in _panel(app), timeout=60, what="the check after the save")
        await wait_until(
            pilot, lambda: any(n.title == "Exercise 13" and "5 of 5 pass" in n.message for n in app._notifications),
            timeout=10, what="the notification in the batch view",
        )
        assert app.errors == []


async def test_exercise_11_shows_its_labels_in_the_batch_view_and_follows_saves(tiny_path, tmp_path):
    """Lesson 11's batch view with exercise 11's starter: a `yours` row, ≠ where the starter trains the
    prompt; after a right save, ✓ on every row."""
    from inspector.cli.app import exercise_reloader
    from inspector.core.exercises.registry import EXERCISES, write_starter
    from inspector.widgets.batch_view import YOURS, BatchGrid

    file = write_starter(EXERCISES["packing"], tmp_path / "exercise_11_packing.py")
    reloader = exercise_reloader(str(file))
    reloader.load()
    app = InspectorApp(model=str(tiny_path), device="cpu", learning_rate=FAST_LR, runs="live", labels_from=reloader)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.main.show_lesson(10)
        view = app.main.views["batch"]
        grid = view.query_one(BatchGrid)
        await wait_until(pilot, lambda: grid.yours is not None, timeout=60, what="the yours row")
        assert YOURS in grid.rows and grid.differs()
        status = str(view.query_one("#batch-status").render())
        assert "yours ≠ the collator's at" in status
        head = file.read_text().split("def packed_labels")[0]
        _save(file, head + (
            "def packed_labels(example, tokenizer):\n"
            "    return [t if c and p else -100 for t, c, p in zip(example['input_ids'], example['completion_mask'],"
            " example['position_ids'])]\n"
        ))
        await wait_until(pilot, lambda: grid.yours is not None and not grid.differs(), timeout=60, what="the saved version")
        await pilot.press("]")
        await wait_until(pilot, lambda: "✓ yours" in str(view.query_one("#batch-status").render()), timeout=30,
                         what="the next row's check")
        assert app.errors == []
