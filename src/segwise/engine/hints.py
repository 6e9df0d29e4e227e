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

__all__ = ["DOMINANT_PREDICTED_SHARE", "DOMINANT_TRUE_SHARE", "degenerate_prediction_hint"]

#: a class that takes more than this share of the predicted pixels ...
DOMINANT_PREDICTED_SHARE = 0.95
#: ... while it is less than this share of the ground-truth pixels is "everywhere"
DOMINANT_TRUE_SHARE = 0.60
#: names of a class 0 that is background rather than a real class (CamVid's Sky is real)
_BACKGROUND_NAMES = frozenset({"background", "_background_", "bg", "void", "unlabeled",
                               "unlabelled", "none", "class_0"})

_ADVICE = "the model is undertrained: train longer (more epochs or steps) or check --lr"
_LOSS = "check that the loss falls (loss in metrics.jsonl, curves.png)"
_SEMANTIC_ADVICE = (f"the model has not learnt to tell the classes apart yet: train longer "
                    f"(more epochs or steps), {_LOSS}, and if one class dominates the data try "
                    f"--class-weights median_frequency")
_INSTANCE_ADVICE = (f"the model cannot tell objects from background yet: train longer (more "
                    f"epochs or steps), {_LOSS}, or lower --lr")


def degenerate_prediction_hint(
    census: Mapping[str, Any] | None, class_names: Sequence[str] = ()
) -> str | None:
    """A one-line hint when the validation predictions are degenerate, else None.

    The cases, first match wins:

    - semantic, no pixel of any class but class 0, when class 0 is background (by its name:
      ``background``, ``bg``, ``void``, ...; or no names given): *background everywhere*;
    - semantic, every predicted pixel in one class: *one class everywhere*;
    - semantic, one class ``c`` takes more than :data:`DOMINANT_PREDICTED_SHARE` (95 %) of
      the predicted pixels while it is less than :data:`DOMINANT_TRUE_SHARE` (60 %) of the
      ground-truth pixels: *one class almost everywhere* (a CamVid model painting Road on
      every pixel; Road is about a quarter of CamVid's pixels). For binary data (classes
      ``background, foreground``) and instance runs this reads *foreground everywhere* when
      ``c`` is the foreground;
    - instance, no object in any image; at most one object per image where the masks hold
      more; then, with pixel counts, the 95 % / 60 % rule on (background, objects) pixels.

    The advice says what the case means and what to try: train longer, check that the loss
    falls, and for semantic runs ``--class-weights median_frequency`` (class weights are
    refused for instance runs, so they are not suggested there).

    Args:
        census: what the adapter counted during validation (``ValidationResult.census``), one
            of:
            ``{"pixels_per_class": [C], "true_pixels_per_class": [C]}`` (semantic: predicted
            and ground-truth pixels per class, class 0 first) or
            ``{"objects_per_image": [N], "true_objects_per_image": [N]}`` (instance), which may
            also hold ``pixels_per_class`` and ``true_pixels_per_class`` over two classes,
            background and objects (any class); None when the adapter counts nothing.
        class_names: names for the classes of a semantic census.

    Returns:
        e.g. ``"predicts background everywhere (no foreground pixel); ..."``, or None.
    """
    if not census:
        return None
    if "objects_per_image" in census:
        return _instance(census) or _dominant(census, ["background", "foreground"],
                                              _INSTANCE_ADVICE)
    if "pixels_per_class" in census:
        names = list(class_names)
        return _semantic(census, names) or _dominant(census, names, _SEMANTIC_ADVICE)
    return None


def _name(c: int, names: list[str]) -> str:
    return f"class {c} ({names[c]})" if c < len(names) else f"class {c}"


def _is_background(c: int, names: list[str]) -> bool:
    """Class 0 is background unless its name says it is a real class (CamVid's Sky)."""
    return c == 0 and (not names or names[0].strip().lower() in _BACKGROUND_NAMES)


def _counts(census: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    return ([int(v) for v in census.get("pixels_per_class", [])],
            [int(v) for v in census.get("true_pixels_per_class", [])])


def _semantic(census: Mapping[str, Any], names: list[str]) -> str | None:
    pred, true = _counts(census)
    predicted = [c for c, n in enumerate(pred) if n > 0]
    present = [c for c, n in enumerate(true) if n > 0]
    if not predicted or len(present) < 2:
        return None  # no pixels, or nothing to tell apart
    if predicted == [0] and _is_background(0, names):
        return f"predicts background everywhere (no foreground pixel); {_ADVICE}"
    if len(predicted) == 1:
        return (f"predicts one class everywhere ({_name(predicted[0], names)}) although the "
                f"masks hold {len(present)}; {_ADVICE}")
    return None


def _dominant(census: Mapping[str, Any], names: list[str], advice: str) -> str | None:
    """The 95 % / 60 % rule (see :func:`degenerate_prediction_hint`)."""
    pred, true = _counts(census)
    total, total_true = sum(pred), sum(true)
    if not total or not total_true or len(pred) != len(true) or sum(n > 0 for n in true) < 2:
        return None
    c = max(range(len(pred)), key=lambda k: pred[k])
    share, true_share = pred[c] / total, true[c] / total_true
    if share <= DOMINANT_PREDICTED_SHARE or true_share >= DOMINANT_TRUE_SHARE:
        return None
    numbers = (f"on {_percent(share)} of the pixels, where the masks have "
               f"{_percent(true_share)}")
    if _is_background(c, names):
        what = f"predicts background almost everywhere ({numbers})"
    elif len(names) == 2 and _is_background(0, names) and c == 1:
        what = f"predicts foreground almost everywhere ({numbers})"
    else:
        what = f"predicts one class almost everywhere ({_name(c, names)} {numbers})"
    return f"{what}; {advice}"


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %" if 0.01 <= share <= 0.99 or share in (0, 1) else (
        f"{100 * share:.1f} %")


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
