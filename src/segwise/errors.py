"""Errors that more than one layer raises, defined once at the bottom floor.

Layer-specific errors live with their layer (``DataError`` in :mod:`segwise.data`,
``CheckpointError`` in :mod:`segwise.runs`); an error raised by a lower package and caught or
re-raised by a higher one is defined here, so no package imports upward to name it.
"""

from __future__ import annotations

__all__ = ["ExportError"]


class ExportError(ValueError):
    """An export failed, or its artefact does not reproduce PyTorch (the message names the file,
    the input size and what to do). Raised by the exporters (:mod:`segwise.inference`) and by
    instance methods that cannot be exported (:mod:`segwise.instance.methods`)."""
