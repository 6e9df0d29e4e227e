"""Enums shared across segwise (losses, metrics, data, engine).

Options are enums rather than free strings; every function also accepts the string value
(e.g. ``"multiclass"``) and converts it with :func:`segwise._validation.as_enum`.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Task"]


class Task(str, Enum):
    """What one pixel's label means.

    - ``BINARY``: one foreground class; the model emits 1 channel, probability = sigmoid.
    - ``MULTICLASS``: exactly one of C classes per pixel; C channels, probabilities = softmax.
    - ``MULTILABEL``: any subset of C classes per pixel; C channels, sigmoid per channel.
    """

    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
