"""Reasoning and turns in the app (issue 32): the role row, the turns mode, the turn policy field
and the batch view's mark, on a tiny model whose tokenizer knows Qwen's chat tokens, with a
2-turn reasoning conversation and `--chat-template qwen3`: training renders it with TRL's
qwen3_training (which keeps every turn's reasoning), and the inference template is TRL's original
qwen3, which drops the reasoning of the turns before the last user message."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Select
from ui_helpers import FAST_LR, started, wait_until

from inspector import app as app_module
from inspector.cli import app as app_command
from inspector.cli import build_parser
from inspector.core.errors import InspectorError
from inspector.widgets.turns_panel import TurnsPanel

SIZE = (120, 40)
CHAT = {
    "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "reasoning_content": "greet", "content": "Hola"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "reasoning_content": "part", "content": "Adiós"},
    ]
}
ONE_TURN = {"messages": [{"role": "user", "content": "Red?"}, {"role": "assistant", "content": "rojo"}]}


@pytest.fixture(scope="module")
def qwen_tiny(tmp_path_factory):
    """The tiny model, its tokenizer with Qwen's turn markers as special tokens and <think> as added
    tokens (so a 2-turn conversation fits its 128 positions)."""
    from tiny_model import make_model, make_tokenizer

    tok = make_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.add_tokens(["<think>", "</think>"])
    folder = tmp_path_factory.mktemp("qwen_tiny")
    make_model(len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def chats(tmp_path):
    path = tmp_path / "reasoning.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (CHAT, ONE_TURN)))
    return path


def build_app(monkeypatch, argv: list[str], **given: str):
    """The app exactly as `causallm-inspect ARGV` builds it (`given`: options set on the parsed arguments)."""
    seen = {}
    monkeypatch.setattr(app_module.InspectorApp, "run", lambda self, **options: seen.setdefault("app", self))
    args = build_parser().parse_args(argv)
    for name, value in given.items():
        setattr(args, name, value)
    assert app_command.run(args) == 0
    app = seen["app"]
    app.burst_defaults = (1, FAST_LR, 1)
    return app


def _argv(model, data) -> list[str]:
    return ["--model", str(model), "--device", "cpu", "--data", str(data), "--chat-template", "qwen3", "--live"]


def _mask_settled(view) -> bool:
    return not view.pending and "mask" in view.labelings


async def test_role_row_shows_reasoning_trained_or_masked(qwen_tiny, chats, monkeypatch):
    app = build_app(monkeypatch, _argv(qwen_tiny, chats))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        await pilot.press("2")
        await wait_until(pilot, lambda: _mask_settled(view), what="mask's labels")
        grid = view.grid
        assert grid.row_names[2] == "role" and grid.roles is not None
        thinking = [i for i, role in enumerate(grid.roles) if role == "reasoning"]
        assert thinking, grid.roles
        # The role row writes a short word (never colour alone); the loss row says trained or not.
        assert {grid.cell(2, i)[0] for i in thinking} == {"think"}
        first = thinking[0]
        assert grid.rows[first].text == "<think>" and not grid.rows[first].masked
        loss = grid.row_names.index("loss")
        assert grid.cell(loss, first)[0] == "✓"
        grid.cursor = first
        await pilot.pause()
        details = str(view.query_one("#token-details").render())
        assert "an assistant's reasoning" in details and "trained to write this thinking" in details
        legend = str(view.query_one("#labels-legend").render())
        assert "think reasoning" in legend and f"think: {len(thinking)} of {len(thinking)} reasoning tokens trained" in legend
        # `i` is offered for a conversation, in the footer's keys.
        assert "turns" in view.ACTIONS and app.main.check_action("view_key", ("turns",))
        assert app.errors == []


async def test_turns_mode_shows_turn_two_trained_beside_other_reasoning(qwen_tiny, chats, monkeypatch):
    app = build_app(monkeypatch, _argv(qwen_tiny, chats))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        view = app.main.labels_view
        await pilot.press("2")
        await wait_until(pilot, lambda: _mask_settled(view), what="mask's labels")
        await pilot.press("i")
        panel = view.query_one(TurnsPanel)
        await wait_until(pilot, lambda: panel.shown is not None, what="the turns")
        assert panel.display and not view.grid.display and app.focused is panel
        one, two = panel.shown.turns
        assert one.context_matches_inference is True and two.context_matches_inference is False
        assert "earlier reasoning (message 2)" in two.verdict
        text = str(panel.query_one("#turns-text").render())
        assert "✓ same context as at inference" in text
        assert "✗ differs: earlier reasoning (message 2) is in the training context, not at inference" in text
        assert "qwen3 (TRL's original of qwen3_training)" in text
        # The training context's extra tokens are marked with a mark and a word, in both contexts.
        assert "«≠<think>" in text.replace("↵", "") and "tokens only in training»" in text
        # At 80x24 it scrolls: the panel is on the screen, and ↓ moves through it.
        assert panel.region.height > 0 and panel.max_scroll_y > 0
        await pilot.press("down", "down")
        assert panel.scroll_y > 0
        await pilot.press("i")  # back to the grid
        assert view.grid.display and not panel.display
        assert app.errors == []


async def test_turn_policy_field_changes_what_trains(qwen_tiny, chats, monkeypatch):
    app = build_app(monkeypatch, _argv(qwen_tiny, chats))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        await pilot.press("2")
        await wait_until(pilot, lambda: _mask_settled(view), what="mask's labels")
        every = view.labelings["mask"].trained_tokens
        assert len(app.lab.formatted) == 2
        picker = view.query_one("#turn-policy", Select)
        assert picker.display and picker.value == "all"
        # A burst first: a new policy makes other rows, so the strategies trained start again.
        await pilot.press("f3", "m")
        await wait_until(pilot, lambda: "mask" in app.main.training_view.results and not app.main.training_view.running,
                         what="the burst")
        assert app.lab.sessions["mask"].steps_done == 2
        await pilot.press("f2")
        picker.value = "last"
        await wait_until(pilot, lambda: app.lab.turn_policy.policy == "last" and _mask_settled(view)
                         and view.key[1] == "last", what="the last turn's labels")
        last = view.labelings["mask"].trained_tokens
        assert 0 < last < every  # turn 1 (its reasoning and answer) is masked now
        assert app.lab.sessions == {}
        # The bursts train the same rows with only their last turn's spans.
        assert [len(fe.answer_spans) for fe in app.lab.formatted] == [1, 1]
        picker.value = "split"
        await wait_until(pilot, lambda: app.lab.turn_policy.policy == "split" and _mask_settled(view)
                         and view.key[1] == "split" and view.parts == 2, what="the split rows")
        assert len(app.lab.formatted) == 3 and view.parts == 2 and view.part == 0
        assert "row 1 of 2" in str(view.query_one("#policy-part").render())
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: view.part == 1 and _mask_settled(view), what="the second row")
        assert view.labelings["mask"].trained_tokens == last  # turn 2 alone, now in inference's context
        await pilot.press("i")
        panel = view.query_one(TurnsPanel)
        await wait_until(pilot, lambda: panel.shown is not None, what="the turns of the split row")
        assert [t.context_matches_inference for t in panel.shown.turns] == [None, True]
        note = str(app.main.training_view.query_one("#train-data").render())
        assert "turn policy split: the bursts train 3 rows made of 2 examples" in note
        assert app.errors == []


async def test_a_turn_policy_the_lab_refuses_is_one_message_and_the_policy_stays(qwen_tiny, chats, monkeypatch):
    app = build_app(monkeypatch, _argv(qwen_tiny, chats))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        await wait_until(pilot, lambda: app.lab.loaded is not None, what="the model")

        def refuse(policy):
            raise InspectorError(f"the inference template cannot split row 1 for {policy}", "pick another turn policy")

        monkeypatch.setattr(app.lab, "set_turn_policy", refuse)
        picker = view.query_one("#turn-policy", Select)
        picker.value = "split"
        await wait_until(pilot, lambda: bool(app.errors), what="the refusal")
        assert app.errors == ["the inference template cannot split row 1 for split. Pick another turn policy."]
        await wait_until(pilot, lambda: picker.value == "all", what="the field back on the policy in use")
        assert app.lab.turn_policy.policy == "all" and len(app.lab.formatted) == 2


async def test_batch_view_marks_a_row_trained_in_another_context(qwen_tiny, chats, monkeypatch):
    app = build_app(monkeypatch, _argv(qwen_tiny, chats))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        batch = app.main.views["batch"]
        await pilot.press("f6")
        await wait_until(pilot, lambda: batch.step_view is not None, timeout=60, what="the step")
        assert set(batch.differs) == {1}  # row 1's turn 2; row 2 has one turn
        grid = batch.query_one("#batch-grid")
        row = grid.rows.index("row")
        cells = {grid.cell(row, c)[0] for c in range(len(grid.mb.texts[grid.batch_row]))}
        assert "▶1≠" in cells
        summary = str(batch.query_one("#batch-summary").render())
        assert "≠ row 1: context differs from inference at turn 2" in summary
        assert "N≠: a trained turn of row N has another context" in str(batch.query_one("#batch-legend").render())
        assert app.errors == []


async def test_turn_policy_and_inference_template_from_the_command_line(qwen_tiny, chats, monkeypatch):
    with pytest.raises(InspectorError, match="--inference-template nope: no such file"):
        build_app(monkeypatch, _argv(qwen_tiny, chats), inference_template="nope")  # before the screen opens
    app = build_app(monkeypatch, _argv(qwen_tiny, chats), turn_policy="split", inference_template="qwen3_training")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        view = app.main.labels_view
        assert view.query_one("#turn-policy", Select).value == "split"
        assert len(app.lab.formatted) == 3 and all(fe.part is not None for fe in app.lab.formatted)
        await pilot.press("2", "i")
        panel = view.query_one(TurnsPanel)
        await wait_until(pilot, lambda: panel.shown is not None and panel.key[3] == "mask", what="the turns")
        assert panel.shown.template == "qwen3_training (TRL's)"
        assert [t.context_matches_inference for t in panel.shown.turns] == [True]
        assert app.errors == []
