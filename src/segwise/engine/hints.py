"""Plain words for a model that predicts nothing useful (an undertrained or broken run).

A validation score alone does not say *why* it is low: a model that paints every pixel
background, or finds one object per image, scores near 0 and is still marked ``* best`` on
its first validation. :func:`degenerate_prediction_hint` reads what the model predicted over
the validation set (its *census*, returned by the task adapter's ``validate`` in its
``ValidationResult``) and says it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["degenerate_prediction_hint"]

_ADVICE = "the model is undertrained: train longer (more epochs or steps) or check --lr"


def degenerate_prediction_hint(
    census: Mapping[str, Any] | None, class_names: Sequence[str] = ()
) -> str | None:
    """A one-line hint when the validation predictions are degenerate, else None.

    Args:
        census: what the adapter counted during validation (``ValidationResult.census``), one
            of:
            ``{"pixels_per_class": [C], "true_pixels_per_class": [C]}`` (semantic: predicted
            and ground-truth pixels per class, class 0 = background) or
            ``{"objects_per_image": [N], "true_objects_per_image": [N]}`` (instance); None
            when the adapter counts nothing.
        class_names: names for the classes of a semantic census.

    Returns:
        e.g. ``"predicts background everywhere on the 12 validation images ..."``, or None.
    """
    if not census:
        return None
    if "pixels_per_class" in census:
        return _semantic(census, list(class_names))
    if "objects_per_image" in census:
        return _instance(census)
    return None


def _name(c: int, names: list[str]) -> str:
    return f"class {c} ({names[c]})" if c < len(names) else f"class {c}"


def _semantic(census: Mapping[str, Any], names: list[str]) -> str | None:
    pred = [int(v) for v in census["pixels_per_class"]]
    true = [int(v) for v in census.get("true_pixels_per_class", [])]
    predicted = [c for c, n in enumerate(pred) if n > 0]
    present = [c for c, n in enumerate(true) if n > 0]
    if not predicted or len(present) < 2:
        return None  # no pixels, or nothing to tell apart
    if predicted == [0]:
        return f"predicts background everywhere (no foreground pixel); {_ADVICE}"
    if len(predicted) == 1:
        return (f"predicts one class everywhere ({_name(predicted[0], names)}) although the "
                f"masks hold {len(present)}; {_ADVICE}")
    return None


def _instance(census: Mapping[str, Any]) -> str | None:
    pred = [int(v) for v in census["objects_per_image"]]
    true = [int(v) for v in census.get("true_objects_per_image", [])]
    if not pred:
        return None
    if max(pred) == 0:
        return f"finds no object in any of the {len(pred)} validation images; {_ADVICE}"
    if max(pred) == 1 and true and max(true) > 1:
        return (f"finds at most one object per image (the masks hold up to {max(true)}); "
                f"{_ADVICE}")
    return None
