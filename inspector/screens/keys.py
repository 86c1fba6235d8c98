"""The main screen's keys. The view keys (steps, epochs, play, train...) go to the view on
show, which lists those it answers (`LabView.ACTIONS`); `MainScreen.check_action` hides the
others from the footer."""

from __future__ import annotations

from textual.binding import Binding, BindingType

MAIN_KEYS: list[BindingType] = [
    Binding("1", "view_key('strategy', 'copy')", "copy", id="strategy-copy", tooltip="Labels copied from input_ids"),
    Binding("2", "view_key('strategy', 'mask')", "mask", id="strategy-mask", tooltip="Human part masked to -100"),
    Binding("3", "view_key('strategy', 'trl')", "trl", id="strategy-trl", tooltip="TRL SFTTrainer, completion-only loss"),
    Binding("4", "view_key('strategy', 'custom')", "yours", id="strategy-custom", tooltip="Your label function (--labels-from)"),
    Binding("left", "view_key('step', -1)", "◀", id="step-back", show=False),
    Binding("right", "view_key('step', 1)", "▶", id="step-on", show=False),
    Binding("home", "view_key('jump', False)", "start", id="jump-start", show=False),
    Binding("end", "view_key('jump', True)", "end", id="jump-end", show=False),
    Binding("c", "train('copy')", "train copy", id="train-copy"),
    Binding("m", "train('mask')", "train mask", id="train-mask"),
    Binding("t", "train('trl')", "train trl", id="train-trl"),
    Binding("u", "train('custom')", "train yours", id="train-custom", tooltip="Train your label function"),
    Binding("a", "train_all", "all three", id="train-all"),
    # The same key once your function is a fourth strategy (check_action shows one of the two).
    Binding("a", "train_all('custom')", "all four", id="train-all-custom"),
    Binding("plus", "again", "again", id="train-again", tooltip="Repeat the last burst: train more epochs"),
    Binding("escape", "stop", "stop", id="train-stop", tooltip="Stop the burst after the current step"),
    Binding("x", "reset", "reset", id="train-reset", tooltip="Every strategy back to the untrained model"),
    Binding("i", "view_key('turns')", "turns", id="labels-turns",
            tooltip="Each assistant turn: its training context beside the inference prompt"),
    Binding("left_square_bracket", "view_key('part', -1)", "◀ row", id="part-back", tooltip="The example's previous split row"),
    Binding("right_square_bracket", "view_key('part', 1)", "row ▶", id="part-on", tooltip="The example's next split row"),
    Binding("left_square_bracket", "view_key('epoch', -1)", "◀ epoch", id="epoch-back"),
    Binding("left_square_bracket", "view_key('batch_row', -1)", "◀ batch", id="batch-back"),
    Binding("right_square_bracket", "view_key('batch_row', 1)", "batch ▶", id="batch-on"),
    Binding("right_square_bracket", "view_key('epoch', 1)", "epoch ▶", id="epoch-on"),
    Binding("space", "view_key('toggle_play')", "pause/play", id="play-toggle"),
    Binding("r", "view_key('replay')", "replay", id="play-replay"),
    Binding("s", "show_code", "code", id="show-code", tooltip="The code behind this lesson's view"),
    Binding("g", "run_demo", "run demo", id="run-demo", tooltip="Run the lesson's demo (it trains copies)"),
    Binding("e", "problems", "problem rows", id="problem-rows", tooltip="The rows of --data that train wrongly"),
    Binding("l", "cycle_pane", "lesson pane", id="lesson-pane", tooltip="Lesson pane: wide → narrow → hidden"),
]
