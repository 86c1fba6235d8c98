"""The lab's views, in their keys' order (F2 to F6): the main screen builds them from this
tuple and the app binds F2, F3... to them in this order.

A new view takes: its own file (a `LabView` or `PlayingView` subclass with its `VIEW`,
`TITLE`, `ACTIONS` and `HELP`); its class here, whose place gives its F key; its name at the
same place in `VIEWS` (`inspector.core.lessons.model`: a lesson opens a view by name, the
palette lists them; tests/test_shape.py checks that the two agree); its key in the F1 help's
table of keys (`GENERAL` in `inspector.help_text`); a key it answers that no view answered
before, in the main screen's `VIEW_KEYS` (`inspector.screens.main`); its layout, if any, in
`inspector.tcss`.
"""

from __future__ import annotations

from inspector.widgets.batch_view import BatchView
from inspector.widgets.lab_view import LabView
from inspector.widgets.labels_view import LabelsView
from inspector.widgets.learning_view import LearningView
from inspector.widgets.predictions_view import PredictionsView
from inspector.widgets.training_view import TrainingView

VIEW_CLASSES: tuple[type[LabView], ...] = (LabelsView, TrainingView, PredictionsView, LearningView, BatchView)
