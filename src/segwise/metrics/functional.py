"""Pure functions for semantic segmentation metrics: binary Dice/IoU, confusion matrices, labels.

Every definition (empty masks, ignored pixels, absent classes) is written in ``docs/metrics.md``.
The streaming classes in :mod:`segwise.metrics.confusion` and :mod:`segwise.metrics.per_image`
are thin wrappers over these functions.
"""

from __future__ import annotations

import torch

from segwise._validation import as_enum
from segwise.labels import labels_from_logits
from segwise.metrics._checks import check_ignore_index, check_label_maps, check_num_classes
from segwise.metrics.options import MetricEmptyRule

__all__ = [
    "batch_confusion_matrix",
    "confusion_matrix",
    "dice_score",
    "iou_score",
    "labels_from_logits",
]

Dims = int | tuple[int, ...] | None


def _binary_counts(
    pred: torch.Tensor, target: torch.Tensor, dim: Dims
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(tp, fp, fn)`` counts (float64) of two binary masks reduced over ``dim``."""
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor mask; got {type(x).__name__}")
        if x.is_floating_point() or x.is_complex():
            raise ValueError(
                f"{name} has dtype {x.dtype}; expected a hard mask (bool, or integers 0/1). "
                "Threshold soft outputs first, e.g. labels_from_logits(logits, 'binary')"
            )
        if x.dtype != torch.bool and x.numel() and bool(((x != 0) & (x != 1)).any()):
            bad = int(x[(x != 0) & (x != 1)][0])
            raise ValueError(f"{name} contains the value {bad}; expected a mask of 0/1 or bool")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}; "
            "expected masks of the same shape (no broadcasting)"
        )
    p = pred.bool()
    t = target.bool()
    reduce = (
        (lambda x: x.sum(dtype=torch.float64))
        if dim is None
        else (lambda x: x.sum(dim=dim, dtype=torch.float64))
    )
    tp = reduce(p & t)
    fp = reduce(p & ~t)
    fn = reduce(~p & t)
    return tp, fp, fn


def _empty_fill(empty: MetricEmptyRule | str) -> float:
    return as_enum(empty, MetricEmptyRule, "empty").score


def dice_score(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    dim: Dims = None,
    empty: MetricEmptyRule | str = MetricEmptyRule.ONE,
) -> torch.Tensor:
    """Hard Dice coefficient of two binary masks: ``2|P∩T| / (|P| + |T|)``.

    Empty rule: if both masks are empty the Dice follows ``empty``
    (:class:`~segwise.metrics.MetricEmptyRule`): 1.0 by default (``one``: a perfect, correct
    "nothing here"), NaN (``exclude``) or 0.0 (``zero``); if exactly one is empty it is 0.0. No
    epsilon is added, so values are exact.

    Example: target ``1 0 0 1 0 0`` and prediction ``1 0 1 1 0 0`` give ``2*2/(3+2) = 0.8``.

    Args:
        pred: (...) predicted mask, bool or integers in {0, 1}.
        target: (...) target mask of the same shape and kind.
        dim: dimension(s) to reduce over; ``None`` (default) treats the whole tensor as one
            mask and returns a scalar. ``dim=(-2, -1)`` on ``(N, H, W)`` masks gives one Dice
            per image, shape ``(N,)``.
        empty: ``"one"`` (default), ``"exclude"`` (NaN) or ``"zero"`` for two empty masks.

    Returns:
        float64 tensor of the reduced shape (0-dim when ``dim`` is ``None``), values in [0, 1]
        (or NaN with ``empty="exclude"``).

    Raises:
        ValueError: on float masks, values other than 0/1, or mismatched shapes.
    """
    fill = _empty_fill(empty)
    tp, fp, fn = _binary_counts(pred, target, dim)
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.full_like(denom, fill))


def iou_score(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    dim: Dims = None,
    empty: MetricEmptyRule | str = MetricEmptyRule.ONE,
) -> torch.Tensor:
    """Hard IoU (Jaccard index) of two binary masks: ``|P∩T| / |P∪T|``.

    Same empty rule as :func:`dice_score`: both empty gives 1.0 by default (``empty``);
    exactly one empty gives 0.0.
    ``IoU = Dice / (2 - Dice)``; the worked example of :func:`dice_score` gives 2/3.

    Args:
        pred: (...) predicted mask, bool or integers in {0, 1}.
        target: (...) target mask of the same shape and kind.
        dim: dimension(s) to reduce over; ``None`` (default) reduces over everything.
        empty: ``"one"`` (default), ``"exclude"`` (NaN) or ``"zero"`` for two empty masks.

    Returns:
        float64 tensor of the reduced shape, values in [0, 1] (or NaN).

    Raises:
        ValueError: on float masks, values other than 0/1, or mismatched shapes.
    """
    fill = _empty_fill(empty)
    tp, fp, fn = _binary_counts(pred, target, dim)
    denom = tp + fp + fn
    return torch.where(denom > 0, tp / denom.clamp_min(1), torch.full_like(denom, fill))


def _bincount_confusion(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None
) -> torch.Tensor:
    """(N, C, C) int64 counts: ``out[n, t, p]`` = pixels of image n with target t and pred p."""
    n = target.shape[0]
    c = num_classes
    image = torch.arange(n, device=target.device).view(n, *(1,) * (target.ndim - 1))
    flat = (image * c + target) * c + pred  # (N, *spatial): one bin per (image, target, pred)
    bins = n * c * c
    if ignore_index is not None:  # ignored pixels go to one extra bin, dropped below
        flat = flat.masked_fill(target == ignore_index, bins)
    counts = torch.bincount(flat.reshape(-1), minlength=bins + 1)
    return counts[:bins].view(n, c, c)


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Confusion matrix of a batch of label maps, with one ``bincount`` of ``target*C + pred``.

    Pixels whose target equals ``ignore_index`` are left out entirely (whatever was predicted).

    Args:
        pred: (N, H, W) integer predicted class indices in ``[0, C)``.
        target: (N, H, W) integer target class indices in ``[0, C)`` or ``ignore_index``.
        num_classes: number of classes C.
        ignore_index: target value to leave out (e.g. 255), outside ``[0, C)``, or ``None``.

    Returns:
        (C, C) int64 counts; row = target class, column = predicted class (the orientation of
        torchmetrics and scikit-learn), on ``target``'s device.

    Raises:
        ValueError: on float inputs, shape mismatch, or values out of range.
    """
    check_num_classes(num_classes)
    check_ignore_index(ignore_index, num_classes)
    pred, target = check_label_maps(
        pred, target, num_classes=num_classes, ignore_index=ignore_index
    )
    c = num_classes
    flat = target * c + pred
    if ignore_index is not None:  # ignored pixels go to one extra bin, dropped below
        flat = flat.masked_fill(target == ignore_index, c * c)
    return torch.bincount(flat.reshape(-1), minlength=c * c + 1)[: c * c].view(c, c)


def batch_confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """One confusion matrix per image, for per-image metrics.

    Args:
        pred: (N, H, W) integer predicted class indices in ``[0, C)``.
        target: (N, H, W) integer target class indices in ``[0, C)`` or ``ignore_index``.
        num_classes: number of classes C.
        ignore_index: target value to leave out, outside ``[0, C)``, or ``None``.

    Returns:
        (N, C, C) int64 counts; ``out[n]`` is :func:`confusion_matrix` of image ``n``.
    """
    check_num_classes(num_classes)
    check_ignore_index(ignore_index, num_classes)
    pred, target = check_label_maps(
        pred, target, num_classes=num_classes, ignore_index=ignore_index
    )
    return _bincount_confusion(pred, target, num_classes, ignore_index)
