"""--data in the app: problem rows listed and jumpable, bursts and predictions on a slice."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Select
from ui_helpers import FAST_LR, started, wait_until

from inspector import app as app_module
from inspector.cli import app as app_command
from inspector.cli import build_parser
from inspector.widgets.problem_list import ProblemList

SIZE = (120, 40)

ROWS = [
    {"messages": [{"role": "user", "content": 'How do you say "dog" in Spanish?'}, {"role": "assistant", "content": "perro"}]},
    {"messages": [{"role": "user", "content": 'And "cat"?'}, {"role": "assistant", "content": "gato"}]},
    "NOT JSON {",
    {"messages": [{"role": "user", "content": "only a question"}]},
    {"prompt": "x", "completion": "y"},
    {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hola"},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Adiós"},
        ]
    },
    {"messages": [{"role": "user", "content": "Red?"}, {"role": "assistant", "content": "rojo"}]},
    {"msgs": []},
]


@pytest.fixture
def chats(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in ROWS))
    return path


def build_app(monkeypatch, argv: list[str]):
    """The app exactly as `causallm-inspect ARGV` builds it."""
    seen = {}
    monkeypatch.setattr(app_module.InspectorApp, "run", lambda self, **options: seen.setdefault("app", self))
    assert app_command.run(build_parser().parse_args(argv)) == 0
    app = seen["app"]
    app.burst_defaults = (2, FAST_LR, 1)
    return app


def _checked(app) -> bool:
    return app.main.labels_view.query_one(ProblemList).state == "done"


async def test_every_broken_row_is_listed_with_its_reason(tiny_path, chats, monkeypatch):
    app = build_app(monkeypatch, ["--model", str(tiny_path), "--device", "cpu", "--data", str(chats)])
    # The rows that cannot be read are known before the model loads; the app opens anyway.
    assert [p.row for p in app.data_problems] == [3, 5, 8]
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: _checked(app), what="the data report")
        problems = app.main.labels_view.query_one(ProblemList).problems
        found = {(p.row, p.kind) for p in problems}
        assert found == {(3, "bad-row"), (4, "no-trained-tokens"), (5, "mixed-format"), (8, "bad-row")}
        text = {p.row: p.detail for p in problems}
        assert "not valid JSON" in text[3] and "msgs" in text[8] and "prompt-completion" in text[5]
        title = str(app.main.labels_view.query_one(ProblemList).border_title)
        assert "4 in chats.jsonl" in title
        # The picker holds the rows that are examples, by their row numbers.
        assert app.main.labels_view.rows == [1, 2, 4, 6, 7]
        assert app.errors == []


async def test_a_problem_row_is_one_enter_away(tiny_path, chats, monkeypatch):
    app = build_app(monkeypatch, ["--model", str(tiny_path), "--device", "cpu", "--data", str(chats)])
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: _checked(app), what="the data report")
        view = app.main.labels_view
        plist = view.query_one(ProblemList)
        await pilot.press("f3", "e")  # e: from any view to the problem list
        assert app.main.view == "labels" and app.focused is plist
        plist.highlighted = next(i for i, p in enumerate(plist.problems) if p.row == 4)
        await pilot.press("enter")
        await wait_until(pilot, lambda: view.current_row == 4 and not view.pending, what="row 4's labels")
        assert view.query_one("#example-picker", Select).value == view.rows.index(4)
        note = str(view.query_one("#row-problems").render())
        assert "row 4" in note and "no-trained-tokens" in note
        assert app.focused is view.grid
        # A row that is no example at all says why, and nothing stale stays on show.
        await pilot.press("e")
        plist.highlighted = next(i for i, p in enumerate(plist.problems) if p.row == 3)
        await pilot.press("enter")
        await pilot.pause()
        assert view.labelings == {} and view.current_row is None
        note = str(view.query_one("#row-problems").render())
        assert "row 3" in note and "not valid JSON" in note
        assert "row 3 cannot be shown" in view.grid.message


async def test_bursts_and_predictions_run_on_the_first_usable_rows(tiny_path, chats, monkeypatch):
    argv = ["--model", str(tiny_path), "--device", "cpu", "--data", str(chats), "--train-rows", "2", "--live"]
    app = build_app(monkeypatch, argv)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: _checked(app), what="the data report")
        assert len(app.lab.formatted) == 2
        assert "perro" in app.lab.formatted[0].text and "gato" in app.lab.formatted[1].text
        note = str(app.main.training_view.query_one("#train-data").render())
        assert "rows 1-2 of chats.jsonl" in note and "first 2 of 5" in note
        await pilot.press("f3", "m")
        await wait_until(pilot, lambda: not app.main.training_view.running and "mask" in app.main.training_view.results, what="the burst")
        assert app.lab.sessions["mask"].steps_done == 2 * 2  # two epochs of the two rows
        await pilot.press("f4")
        pv = app.main.views["predictions"]
        assert [t for _, t in pv.choices] == [e.text for e in app.lab.examples[:2]]
        await wait_until(pilot, lambda: pv.rows.get("mask") is not None, what="the trained row")
        assert app.errors == []


async def test_a_file_with_no_usable_row_is_one_clear_line(tiny_path, tmp_path, monkeypatch, capsys):
    from inspector.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n{\"msgs\": 1}\n")
    monkeypatch.setattr(app_module.InspectorApp, "run", lambda self, **options: pytest.fail("the app should not start"))
    assert main(["--model", str(tiny_path), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no row of bad.jsonl can be used: bad.jsonl line 1 is not valid JSON" in err and "(and 1 more rows)" in err


async def test_a_problem_row_past_the_rows_kept_is_read_when_picked(tiny_path, chats, monkeypatch):
    import inspector.core.data.examples as data

    monkeypatch.setattr(data, "APP_ROWS", 3)  # the app keeps rows 1-3; the report still reads all 8
    app = build_app(monkeypatch, ["--model", str(tiny_path), "--device", "cpu", "--data", str(chats)])
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: _checked(app), what="the data report")
        view = app.main.labels_view
        assert view.rows == [1, 2]
        plist = view.query_one(ProblemList)
        assert {p.row for p in plist.problems} == {3, 4, 5, 8}
        assert "later one is read when picked" in str(plist.border_subtitle)
        await pilot.press("e")
        plist.highlighted = next(i for i, p in enumerate(plist.problems) if p.row == 4)
        await pilot.press("enter")
        await wait_until(pilot, lambda: view.current_row == 4 and not view.pending, what="row 4, read on demand")
        assert view.rows == [1, 2, 4] and "only a question" in view.text
        assert "no-trained-tokens" in str(view.query_one("#row-problems").render())
        assert app.errors == []


async def test_a_sharegpt_file_is_read_and_its_format_shown(tiny_path, tmp_path, monkeypatch):
    import gzip

    path = tmp_path / "chats.jsonl.gz"
    rows = [
        {"conversations": [{"from": "human", "value": "dog?"}, {"from": "gpt", "value": "perro"}]},
        {"conversations": [{"from": "human", "value": "weather?"}, {"from": "function_call", "value": '{"name": "get_weather"}'},
                           {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}]},
    ]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    app = build_app(monkeypatch, ["--model", str(tiny_path), "--device", "cpu", "--data", str(path)])
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: _checked(app), what="the data report")
        plist = app.main.labels_view.query_one(ProblemList)
        assert "ShareGPT rows in jsonl, gzip" in str(plist.border_subtitle)
        # The tiny model has no chat template: the tool call cannot be shown in the article's format, and says so.
        assert [(p.row, p.kind) for p in plist.problems] == [(2, "tool-call-dropped")]
        assert "get_weather" in plist.problems[0].detail
        assert app.errors == []


async def test_a_template_of_another_family_is_in_the_problem_list(tiny_path, tmp_path, monkeypatch):
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (ROWS[0], ROWS[1])))
    chatml = tmp_path / "chatml.jinja"  # Qwen's markers: not tokens of the tiny vocabulary
    chatml.write_text("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    argv = ["--model", str(tiny_path), "--device", "cpu", "--data", str(path), "--chat-template", str(chatml)]
    app = build_app(monkeypatch, argv)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_until(pilot, lambda: _checked(app), what="the data report")
        plist = app.main.labels_view.query_one(ProblemList)
        (problem,) = [p for p in plist.problems if p.kind == "template-not-for-this-model"]
        assert problem.row is None and "<|im_end|> → " in problem.detail
        assert "stop-token-not-trained" not in {p.kind for p in plist.problems}
        assert app.errors == []
