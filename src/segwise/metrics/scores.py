"""Dataset-level semantic segmentation scores derived from one confusion matrix.

Definitions (written out with a worked example in ``docs/metrics.md``), for class c with
``TP_c = M[c, c]``, ``FP_c = sum_t M[t, c] - TP_c``, ``FN_c = sum_p M[c, p] - TP_c``:

- Dice_c = 2 TP / (2 TP + FP + FN); IoU_c = TP / (TP + FP + FN)
- precision_c = TP / (TP + FP); recall_c (per-class accuracy) = TP / (TP + FN)
- a ratio whose denominator is 0 is NaN ("undefined"), never 0 or 1;
- every mean is over the classes whose value is defined (NaN left out);
- pixel accuracy = trace(M) / sum(M); frequency-weighted IoU = sum_c (support_c / sum(M)) IoU_c
  over classes with support_c > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from segwise._validation import as_enum
from segwise.metrics._checks import check_class_names
from segwise.metrics.options import Average, MetricEmptyRule

__all__ = ["SegmentationScores", "scores_from_confusion"]


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class SegmentationScores:
    """Dataset-level scores of a semantic segmentation, all derived from one confusion matrix.

    Per-class values are tuples of length ``num_classes`` (index = class id); NaN marks a value
    that is undefined because its denominator is 0 (see ``docs/metrics.md``).

    Attributes:
        num_classes: number of classes C.
        dice: per-class Dice, ``2TP / (2TP + FP + FN)``; NaN for a class absent from both the
            target and the prediction.
        iou: per-class IoU, ``TP / (TP + FP + FN)``; NaN in the same case as ``dice``.
        precision: per-class ``TP / (TP + FP)``; NaN for a class never predicted.
        recall: per-class ``TP / (TP + FN)`` (per-class accuracy); NaN for a class absent from
            the target.
        support: per-class number of counted target pixels (``TP + FN``).
        num_pixels: number of counted pixels (ignored pixels excluded).
        pixel_accuracy: ``trace / num_pixels`` (global accuracy); NaN if nothing was counted.
        mean_accuracy: mean of the defined ``recall`` values.
        mean_dice: mean of the defined ``dice`` values.
        mean_iou: mean of the defined ``iou`` values.
        frequency_weighted_iou: ``sum_c support_c / num_pixels * iou_c`` over classes with
            ``support_c > 0``; NaN if nothing was counted.
        class_names: optional names, one per class.
    """

    num_classes: int
    dice: tuple[float, ...]
    iou: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    support: tuple[int, ...]
    num_pixels: int
    pixel_accuracy: float
    mean_accuracy: float
    mean_dice: float
    mean_iou: float
    frequency_weighted_iou: float
    class_names: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (builtin types only; every NaN becomes ``None``).

        Keys: the scalar fields by name, ``"class_names"`` (list or ``None``) and
        ``"per_class"``: ``{"dice": [...], "iou": [...], "precision": [...], "recall": [...],
        "support": [...]}`` with one entry per class.
        """
        out: dict[str, Any] = {
            "num_classes": self.num_classes,
            "num_pixels": self.num_pixels,
        }
        for name in (
            "pixel_accuracy",
            "mean_accuracy",
            "mean_dice",
            "mean_iou",
            "frequency_weighted_iou",
        ):
            out[name] = _none_if_nan(getattr(self, name))
        out["class_names"] = None if self.class_names is None else list(self.class_names)
        per_class: dict[str, list[Any]] = {
            name: [_none_if_nan(v) for v in getattr(self, name)]
            for name in ("dice", "iou", "precision", "recall")
        }
        per_class["support"] = list(self.support)
        out["per_class"] = per_class
        return out

    def average(self, name: str = "dice", how: Average | str = Average.MACRO) -> float:
        """One number from the per-class ``name`` values (``dice``, ``iou``, ``precision``,
        ``recall``).

        Args:
            name: which per-class score.
            how: :class:`~segwise.metrics.Average`: ``macro`` (mean of the defined values;
                ``average("dice")`` is ``mean_dice``), ``weighted`` (weights = support, over
                classes with support > 0 and a defined value; ``average("iou", "weighted")``
                is ``frequency_weighted_iou``), ``sum`` (sum of the defined values).

        Returns:
            The average; NaN when no value is defined.
        """
        if name not in ("dice", "iou", "precision", "recall"):
            raise ValueError(
                f"name={name!r} is not valid; expected one of: 'dice', 'iou', 'precision', "
                "'recall'"
            )
        how = as_enum(how, Average, "how")
        values = torch.tensor(getattr(self, name), dtype=torch.float64)
        defined = ~values.isnan()
        if how is Average.MACRO:
            return _nanmean(values)
        if how is Average.SUM:
            return float(values[defined].sum()) if bool(defined.any()) else math.nan
        support = torch.tensor(self.support, dtype=torch.float64)
        keep = defined & (support > 0)
        total = float(support[keep].sum())
        return float((support[keep] * values[keep]).sum()) / total if total > 0 else math.nan


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den elementwise in float64, NaN where den == 0."""
    num = num.double()
    den = den.double()
    return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(den, math.nan))


def _nanmean(x: torch.Tensor) -> float:
    defined = x[~x.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


def scores_from_confusion(
    confmat: torch.Tensor,
    *,
    class_names: Any = None,
    empty: MetricEmptyRule | str = MetricEmptyRule.EXCLUDE,
) -> SegmentationScores:
    """Derive every dataset-level score from a confusion matrix.

    Args:
        confmat: (C, C) non-negative integer counts; row = target class, column = prediction.
        class_names: optional sequence of C strings.
        empty: Dice and IoU of a class absent from both target and prediction:
            ``exclude`` (NaN, left out of the means; default), ``one`` or ``zero``
            (:class:`~segwise.metrics.MetricEmptyRule`). Precision and recall stay NaN where
            undefined.

    Returns:
        The :class:`SegmentationScores` (float64 arithmetic, values as Python floats).

    Raises:
        ValueError: if ``confmat`` is not a square non-negative integer matrix, or
            ``class_names`` does not hold C strings.
    """
    if (
        not isinstance(confmat, torch.Tensor)
        or confmat.ndim != 2
        or confmat.shape[0] != confmat.shape[1]
        or confmat.shape[0] < 1
        or confmat.is_floating_point()
        or confmat.is_complex()
        or bool((confmat < 0).any())
    ):
        desc = tuple(confmat.shape) if isinstance(confmat, torch.Tensor) else type(confmat)
        raise ValueError(
            f"confmat={desc} is not valid; expected a (C, C) tensor of non-negative integer counts"
        )
    c = confmat.shape[0]
    names = check_class_names(class_names, c)
    empty = as_enum(empty, MetricEmptyRule, "empty")
    m = confmat.detach().to("cpu", torch.int64)
    tp = m.diagonal()
    support = m.sum(dim=1)  # TP + FN: target pixels of each class
    predicted = m.sum(dim=0)  # TP + FP: predicted pixels of each class
    fp = predicted - tp
    fn = support - tp
    total = int(m.sum())

    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    iou = _ratio(tp, tp + fp + fn)
    if empty is not MetricEmptyRule.EXCLUDE:  # absent from both: the rule's value instead of NaN
        fill = empty.score
        dice = torch.where(dice.isnan(), torch.full_like(dice, fill), dice)
        iou = torch.where(iou.isnan(), torch.full_like(iou, fill), iou)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    if total > 0:
        pixel_accuracy = float(tp.sum()) / total
        weights = support.double() / total
        present = support > 0  # IoU is defined wherever support > 0
        fw_iou = float((weights[present] * iou[present]).sum())
    else:
        pixel_accuracy = math.nan
        fw_iou = math.nan

    def as_tuple(x: torch.Tensor) -> tuple[float, ...]:
        return tuple(float(v) for v in x.tolist())

    return SegmentationScores(
        num_classes=c,
        dice=as_tuple(dice),
        iou=as_tuple(iou),
        precision=as_tuple(precision),
        recall=as_tuple(recall),
        support=tuple(int(v) for v in support.tolist()),
        num_pixels=total,
        pixel_accuracy=pixel_accuracy,
        mean_accuracy=_nanmean(recall),
        mean_dice=_nanmean(dice),
        mean_iou=_nanmean(iou),
        frequency_weighted_iou=fw_iou,
        class_names=names,
    )
