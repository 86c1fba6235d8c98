"""The lab: the model, the examples and the strategies' bursts, shared by every front end."""

from inspector.core.lab.lab import Lab, Loaded, Predictions

__all__ = ["Lab", "Loaded", "Predictions"]
