"""Which model is in use, where it came from, and how its loading is going."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.widgets import ProgressBar, Static

if TYPE_CHECKING:
    from inspector.core.models import LoadedModel


def short_name(loaded: LoadedModel) -> str:
    """A header-sized model name: a folder shows by its last part."""
    if getattr(loaded, "source", "") == "embedded":
        return "Gemma 3 270M (embedded)"
    if getattr(loaded, "source", "") == "folder":
        from pathlib import Path

        return Path(loaded.name).name or loaded.name
    return loaded.name


class ModelStatus(Vertical):
    """The model's state: loading (with the loader's messages), loaded, or failed."""

    HELP = """\
## Model

The model the lessons run on. It loads in the background while you read: the bar moves
and the loader says what it is doing. Once loaded this shows its name, the device
(`cpu`, `cuda` or `mps`) and whether it came from the cache (the embedded Gemma is
converted once, then read from the cache in seconds).

If `--trust-remote-code` was given, a warning says so: that model's own Python code was
allowed to run. If loading failed, the reason and the fix show here; the lessons stay
readable. Quit with `Ctrl+Q` and start again with another `--model`.
"""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = "loading"

    def compose(self) -> ComposeResult:
        yield Static("starting…", id="model-line")
        yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="model-progress")
        yield Static("", id="model-warning")

    def on_mount(self) -> None:
        self.query_one("#model-warning").display = False

    def _loading_done(self) -> None:
        # Removed, not hidden: a hidden bar of unknown length still animates, 15 frames a second.
        for bar in self.query("#model-progress"):
            bar.remove()

    def progressed(self, text: str) -> None:
        self.query_one("#model-line", Static).update(f"[b]Model[/b] {escape(text)}…")

    def loaded(self, loaded: Any) -> None:
        self.state = "loaded"
        self.set_class(False, "-failed")
        cache = "from the cache" if loaded.from_cache else "converted now, cached for next time"
        self.query_one("#model-line", Static).update(
            f"[b]Model[/b] {escape(short_name(loaded))}\n{loaded.device} · {loaded.source} · {cache}"
        )
        self._loading_done()
        if loaded.trust_remote_code:
            warning = self.query_one("#model-warning", Static)
            warning.update("⚠ trust_remote_code is ON: this model's own code was allowed to run")
            warning.display = True

    def failed(self, problem: str) -> None:
        self.state = "failed"
        self.set_class(True, "-failed")
        self.query_one("#model-line", Static).update(
            f"[b]No model:[/b] {escape(problem)}\nThe lessons stay readable. Quit (Ctrl+Q) and start again with "
            "--model pointing to a model folder, a .gguf file or a cached Hugging Face id."
        )
        self._loading_done()
