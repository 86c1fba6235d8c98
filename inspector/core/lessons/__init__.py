"""The lessons: their model (read from lessons/*.md), the demos and their panels, the pitfalls, and the exported code."""
