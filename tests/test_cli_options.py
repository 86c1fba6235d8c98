"""The program's options (those the top-level --help lists) mean the same typed before the
command as after it; one a command does not take is refused in one line, never dropped."""

from __future__ import annotations

import json

import pytest

from inspector.cli import build_parser, main
from inspector.core.errors import InspectorError

PARSER = build_parser()
TAIL = {"lesson": ["4"], "export": ["4"], "exercise": ["4"], "train": ["--strategy", "mask"], "record": ["--to", "rec"]}  # what each must have


def typed(dest: str) -> list[str]:
    """The option of `dest` with a value other than its default, as a user types it."""
    action = PARSER.program[dest]
    flag = action.option_strings[0]
    if action.nargs == 0:
        return [flag]
    return [flag, action.choices[-1] if action.choices else "3"]


SHARED = [(c, d) for c in PARSER.commands for d in sorted(PARSER.takes(c))]
NOT_TAKEN = [(c, d) for c in PARSER.commands for d in sorted(set(PARSER.program) - PARSER.takes(c))]


@pytest.mark.parametrize(("command", "dest"), SHARED)
def test_an_option_before_the_command_is_the_option_after_it(command, dest):
    tail = TAIL.get(command, [])
    before = PARSER.parse_args([*typed(dest), command, *tail])
    after = PARSER.parse_args([command, *tail, *typed(dest)])
    assert vars(before) == vars(after)
    assert getattr(before, dest) != PARSER.defaults[dest]


@pytest.mark.parametrize(("command", "dest"), NOT_TAKEN)
def test_an_option_a_command_does_not_take_is_refused(command, dest):
    with pytest.raises(InspectorError, match=f"is not an option of {command}"):
        PARSER.parse_args([*typed(dest), command, *TAIL.get(command, [])])


def test_typed_before_and_after_the_command_the_one_after_wins():
    assert PARSER.parse_args(["--model", "A", "labels", "--model", "B"]).model == "B"
    assert PARSER.parse_args(["--model", "A", "labels"]).model == "A"


def test_a_refusal_is_one_line_saying_where_it_goes(capsys):
    assert main(["--train-rows", "3", "labels"]) == 2
    err = capsys.readouterr().err
    assert err == "causallm-inspect: error: --train-rows is not an option of labels. " \
        "The commands that take it: lesson, prepare; with no command, the app.\n"


def test_model_before_labels_is_the_model_used(capsys, tiny_path):
    assert main(["--model", str(tiny_path), "labels", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["labels", "--model", str(tiny_path), "--json"]) == 0
    assert before == json.loads(capsys.readouterr().out)
    assert before["model"] != "gemma-3-270m-it" and before["examples"][0]["trained_tokens"] == 2


def test_inspect_data_takes_its_file_as_data_too(capsys, tmp_path, tiny_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    reports = []
    for argv in (["inspect-data", str(path)], ["inspect-data", "--data", str(path)], ["--data", str(path), "inspect-data"]):
        assert main([*argv, "--model", str(tiny_path), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        report.pop("seconds")
        reports.append(report)
    assert reports[0] == reports[1] == reports[2]
    assert main(["inspect-data", "--model", str(tiny_path)]) == 2
    assert "inspect-data needs a data file" in capsys.readouterr().err
