"""The lab's views, in their keys' order (F2 to F6): a new view is one file and one line here."""

from __future__ import annotations

from inspector.widgets.batch_view import BatchView
from inspector.widgets.lab_view import LabView
from inspector.widgets.labels_view import LabelsView
from inspector.widgets.learning_view import LearningView
from inspector.widgets.predictions_view import PredictionsView
from inspector.widgets.training_view import TrainingView

VIEW_CLASSES: tuple[type[LabView], ...] = (LabelsView, TrainingView, PredictionsView, LearningView, BatchView)
