"""Reductions shared by the losses (private): per-unit and per-pixel terms -> what is returned."""

from __future__ import annotations

import torch
from torch import Tensor

from segwise.losses.options import Reduction

__all__ = ["reduce_pixels", "reduce_units", "safe_ratio"]


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0 (no NaN in the value or the gradient)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def reduce_units(
    loss: Tensor, scored: Tensor, weights: Tensor | None, reduction: Reduction
) -> Tensor:
    """Reduce per-unit losses of a region loss (Dice, Jaccard, Tversky, Lovasz).

    Args:
        loss: (U, K) loss of each unit: U = 1 (batch scope) or N (image scope), K scored classes.
        scored: (U, K) bool, the units that enter the reduction.
        weights: (K,) class weights of the scored classes, or None (all 1).
        reduction: ``MEAN``: ``sum(w * loss) / sum(w)`` over scored units (0 if none);
            ``SUM``: ``sum(w * loss)``; ``NONE``: ``w * loss`` with unscored units 0, shape
            (K,) for batch scope (U = 1) and (N, K) for image scope.
    """
    w = scored.to(loss.dtype)
    if weights is not None:
        w = w * weights.to(device=loss.device, dtype=loss.dtype)
    terms = torch.where(scored, loss, torch.zeros_like(loss)) * w
    if reduction is Reduction.NONE:
        return terms
    if reduction is Reduction.SUM:
        return terms.sum()
    total = w.sum()
    return terms.sum() / torch.where(total > 0, total, torch.ones_like(total))


def reduce_pixels(terms: Tensor, mass: Tensor, reduction: Reduction) -> Tensor:
    """Reduce per-pixel terms of a pixel loss (focal): mean = ``sum(terms) / sum(mass)``.

    Args:
        terms: per-pixel (or per-element) loss, already weighted; 0 on ignored pixels.
        mass: the weight mass of the same pixels (class weight x target), whose sum is the
            denominator of the mean (0 for a loss with nothing to score: the mean is then 0).
        reduction: ``MEAN``, ``SUM`` or ``NONE`` (``terms`` returned as is).
    """
    if reduction is Reduction.NONE:
        return terms
    if reduction is Reduction.SUM:
        return terms.sum()
    return safe_ratio(terms.sum(), mass.sum().to(terms.dtype))
