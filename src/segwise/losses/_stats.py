"""Per (image, class) Dice sums ``I, P, G`` from prepared inputs (private).

Index targets are never one-hot encoded: ``I`` per class is a gather of ``p`` at the target
class and a ``scatter_add`` by class, ``G`` a ``bincount``. Multiclass logits with index targets
go through the fused softmax of :mod:`segwise.losses._fused`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from segwise.losses._fused import softmax_index_sums
from segwise.losses._inputs import Prepared

__all__ = ["DiceStatistics", "check_finite", "fused_sums", "statistics"]


@dataclass(frozen=True)
class DiceStatistics:
    """Per (image, class) sums over the valid pixels; every field is (N, C).

    Attributes:
        intersection: ``I``, ``sum(min(p, g))`` (``sum(p * g)`` when squared).
        pred_sum: ``P``, ``sum(p)`` (``sum(p**2)`` when squared).
        target_sum: ``G``, ``sum(g)`` (``sum(g**2)`` when squared).
        count: number of valid (not ignored) pixels.
    """

    intersection: Tensor
    pred_sum: Tensor
    target_sum: Tensor
    count: Tensor


def _target_sums(labels: Tensor, n_classes: int, has_ignored: bool, dtype) -> Tensor:
    """G (N, C): per-image bincount of the class indices (the ignore bin C dropped)."""
    n = labels.shape[0]
    width = n_classes + 1 if has_ignored else n_classes
    offsets = torch.arange(n, device=labels.device).unsqueeze(1) * width
    counts = torch.bincount((labels + offsets).reshape(-1), minlength=n * width)
    return counts.view(n, width)[:, :n_classes].to(dtype)


def _counts(prep: Prepared, n: int, c: int, length: int, ref: Tensor) -> Tensor:
    """Valid pixels per (image, class), (N, C), in the dtype and device of ``ref``."""
    dtype = ref.dtype
    if prep.valid is None:
        return ref.new_full((n, c), float(length))
    dims = 1 if prep.valid.ndim == 2 else 2
    return prep.valid.sum(dims).to(dtype).reshape(n, -1).expand(n, c)


def check_finite(psum: Tensor) -> None:
    if not bool(torch.isfinite(psum).all()):
        raise ValueError(
            "input contains NaN or infinite values; expected finite logits or probabilities"
        )


def fused_sums(prep: Prepared, ce_weight: Tensor | None, with_ce: bool) -> tuple:
    """(DiceStatistics, ce numerator) for multiclass logits with index targets."""
    z = prep.logits
    n, c, length = z.shape
    valid = None if prep.valid is None else prep.valid.to(z.dtype)
    inter, psum, ce = softmax_index_sums(z, prep.labels, valid, ce_weight, with_ce)
    check_finite(psum)
    tsum = _target_sums(prep.labels, c, prep.valid is not None, z.dtype)
    stats = DiceStatistics(intersection=inter, pred_sum=psum, target_sum=tsum,
                           count=_counts(prep, n, c, length, z))
    return stats, ce


def statistics(prep: Prepared, *, squared: bool) -> DiceStatistics:
    if prep.probs is None:
        return fused_sums(prep, None, False)[0]
    p = prep.probs  # (N, C, L)
    n, c, length = p.shape
    if prep.labels is not None:  # index targets: no one-hot
        lab = prep.labels  # (N, L) in [0, C], C = ignored
        width = c if prep.valid is None else c + 1  # extra bin collects the ignored pixels
        idx = lab if prep.valid is None else lab.clamp(max=c - 1)
        p_true = p.gather(1, idx.unsqueeze(1)).squeeze(1)  # (N, L) p of the target class
        inter = p.new_zeros(n, width).scatter_add_(1, lab, p_true)[:, :c]
        tsum = _target_sums(lab, c, prep.valid is not None, p.dtype)
        pp = p * p if squared else p
        if prep.valid is None:
            psum = pp.sum(2)
        else:  # sum over the valid pixels only
            psum = torch.bmm(pp, prep.valid.to(p.dtype).unsqueeze(2)).squeeze(2)
    else:
        g = prep.dense  # (N, C, L), ignored entries already 0
        if prep.valid is not None:
            p = p * prep.valid
        if squared:
            inter, psum, tsum = (p * g).sum(2), (p * p).sum(2), (g * g).sum(2)
        else:
            inter, psum, tsum = torch.minimum(p, g).sum(2), p.sum(2), g.sum(2)
    check_finite(psum)
    count = _counts(prep, n, c, length, p)
    return DiceStatistics(intersection=inter, pred_sum=psum, target_sum=tsum, count=count)
