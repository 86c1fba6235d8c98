"""Reloading the label function on save: the last good version kept, the new one's error held.

The app watches the file of `--labels-from` with `LabelReloader.poll()`; core only reads the
file (no UI, no threads here).
"""

from __future__ import annotations

from inspector.core.labels.process.code_errors import LabelCodeError
from inspector.core.labels.process.parent import LabelFunction, load_label_function
from inspector.core.labels.process.protocol import FunctionKind, LabelSource


class LabelReloader:
    """The label function of a file, reloaded when the file changes; the last good version kept.

    `poll()` is cheap while the file is unchanged (one `stat`), so a UI may call it a few times
    a second. It returns None when nothing changed, the new LabelFunction after a good reload
    (now `current`), or the LabelCodeError of a version that does not load (`current` stays the
    last good one, `error` holds it). A version that loads but fails on an example is the
    caller's to find: `revert(error)` then goes back to the version before it.
    """

    def __init__(
        self,
        spec: str | LabelSource,
        *,
        kind: FunctionKind = FunctionKind.LABELS,
        strategy: bool = True,
    ) -> None:
        self.source = spec if isinstance(spec, LabelSource) else LabelSource.parse(spec)
        self.kind = kind  # what kind of function it is (an exercise's own)
        self.strategy = (
            strategy  # a label strategy the views show and train; False: an exercise's function, checked only
        )
        self.current: LabelFunction | None = None
        self.error: LabelCodeError | None = None
        self._previous: LabelFunction | None = None
        self._stamp: tuple[int, int] | None = None

    @property
    def params(self) -> tuple[str, ...]:
        """What the function is called with (its kind's parameters)."""
        return self.kind.params

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.source.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def load(self) -> LabelFunction:
        """The first load: a LabelCodeError if the file does not load (nothing to fall back on)."""
        self._stamp = self._stat()
        self.current = load_label_function(self.source, kind=self.kind)
        self.error = None
        return self.current

    def poll(self) -> LabelFunction | LabelCodeError | None:
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            fn = load_label_function(self.source, kind=self.kind)
        except LabelCodeError as exc:
            if self.error is not None and self.error.to_dict() == exc.to_dict():
                return None  # saved again with the same problem
            self.error = exc
            return exc
        was_error = self.error is not None
        self.error = None
        if self.current is not None and fn.fingerprint == self.current.fingerprint and not was_error:
            return None  # touched, not changed
        self._previous, self.current = self.current, fn
        return fn

    def revert(self, error: LabelCodeError) -> LabelFunction | None:
        """The version now loaded failed on an example: go back to the one before it (if any)."""
        self.error = error
        if self._previous is not None:
            self.current, self._previous = self._previous, None
        return self.current
