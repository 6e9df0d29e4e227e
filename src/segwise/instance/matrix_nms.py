"""Matrix NMS (SOLOv2, Wang et al., NeurIPS 2020, section 3.3.3): parallel soft mask suppression.

Instead of removing masks greedily, every mask ``j`` gets its score multiplied by a decay

    decay_j = min over i with s_i > s_j of  f(iou_ij) / f(iou_{*, i}),
    iou_{*, i} = max over k with s_k > s_i of iou_ki          (paper eq. 6-7)

``f(iou_ij)`` penalises ``j`` for overlapping the higher-scored ``i``; dividing by ``f(iou_{*,i})``
compensates for ``i`` having been suppressed itself (a mask that is mostly gone should not
suppress others). Only pairs of the same class interact. Two kernels:

- `MatrixNMSKernel.LINEAR`: ``f(iou) = 1 - iou``;
- `MatrixNMSKernel.GAUSSIAN`: ``f(iou) = exp(-sigma * iou**2)``, ``sigma = 2`` by default. This is
  the authors' released code (SOLO repository, ``matrix_nms``); the paper's text writes
  ``exp(-iou**2 / sigma)``, i.e. the code's ``sigma = 2`` is the text's ``sigma = 0.5``.

Everything is matrix algebra over ``(K, K)`` (no data-dependent loop), so it traces and exports
to ONNX. The pure function here is used by SOLOv2's decoding.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import Tensor

from segwise._validation import as_enum

__all__ = ["MatrixNMSKernel", "mask_iou_matrix", "matrix_nms"]


class MatrixNMSKernel(str, Enum):
    """The decay function ``f(iou)`` of Matrix NMS (module docstring)."""

    GAUSSIAN = "gaussian"
    LINEAR = "linear"


def mask_iou_matrix(masks: Tensor, areas: Tensor | None = None) -> Tensor:
    """Pairwise IoU of flattened binary masks.

    Args:
        masks: ``(..., K, P)`` masks in {0, 1} over ``P`` pixels (flatten ``H, W`` first), any
            float or bool dtype.
        areas: ``(..., K)`` pixel count of each mask, or None to compute it.

    Returns:
        ``(..., K, K)`` float32 IoU ``|a & b| / |a | b|``; 0 where both masks are empty.
    """
    flat = masks.float()
    if areas is None:
        areas = flat.sum(-1)
    inter = flat @ flat.transpose(-1, -2)
    union = areas.unsqueeze(-1) + areas.unsqueeze(-2) - inter
    return inter / union.clamp(min=1e-6)


def matrix_nms(
    masks: Tensor,
    labels: Tensor,
    scores: Tensor,
    *,
    kernel: MatrixNMSKernel | str = MatrixNMSKernel.GAUSSIAN,
    sigma: float = 2.0,
    areas: Tensor | None = None,
) -> Tensor:
    """Decayed scores of Matrix NMS (module docstring: paper section 3.3.3, eq. 6-7).

    Masks are ranked by ``scores`` (descending; the order of equal scores is unspecified, as
    ``torch.topk``'s, which exports to ONNX) and the result is returned in the INPUT order, so
    callers need not sort first. A batch dimension in front is allowed (``(B, K, ...)``: each
    row is suppressed on its own).

    Args:
        masks: ``(K, H, W)`` or ``(B, K, H, W)`` binary masks (bool or float in {0, 1}).
        labels: ``(K,)`` / ``(B, K)`` integer class of each mask (only equal classes interact).
        scores: ``(K,)`` / ``(B, K)`` float scores.
        kernel: `MatrixNMSKernel` (``"gaussian"`` or ``"linear"``).
        sigma: the Gaussian kernel's ``sigma`` in ``exp(-sigma * iou**2)`` (> 0).
        areas: ``(K,)`` / ``(B, K)`` pixel count of each mask, or None to compute it.

    Returns:
        ``(K,)`` / ``(B, K)`` float32 decayed scores ``scores * decay`` (``decay`` in (0, 1]).
    """
    kernel = as_enum(kernel, MatrixNMSKernel, "kernel")
    if not sigma > 0:
        raise ValueError(f"sigma={sigma!r}; expected a positive number (the paper's code uses 2.0)")
    if masks.ndim not in (3, 4) or masks.shape[:-2] != scores.shape or labels.shape != scores.shape:
        raise ValueError(
            f"masks {tuple(masks.shape)}, labels {tuple(labels.shape)}, scores "
            f"{tuple(scores.shape)}; expected (K, H, W), (K,), (K,) or with a batch dim in front"
        )
    if scores.shape[-1] == 0:
        return scores.float().clone()
    batched = masks.ndim == 4
    if not batched:
        masks, labels, scores = masks[None], labels[None], scores[None]
        areas = None if areas is None else areas[None]
    scores = scores.float()
    order = torch.topk(scores, scores.shape[-1], dim=-1).indices  # (B, K), descending
    masks = torch.gather(masks, 1, order[:, :, None, None].expand_as(masks))
    labels = torch.gather(labels, 1, order)
    sorted_scores = torch.gather(scores, 1, order)
    flat = masks.flatten(2).float()  # (B, K, P)
    areas = flat.sum(-1) if areas is None else torch.gather(areas.float(), 1, order)
    iou = mask_iou_matrix(flat, areas)  # (B, K, K)
    k = iou.shape[-1]
    # only pairs (i, j) with i ranked above j (i < j) and the same class
    upper = torch.ones(k, k, dtype=torch.bool, device=iou.device).triu(diagonal=1)
    same = labels[:, :, None] == labels[:, None, :]
    decay_iou = torch.where(upper & same, iou, torch.zeros_like(iou))  # (B, K, K)
    # iou_{*, i}: the largest overlap of i with any mask ranked above it, placed on row i
    compensate = decay_iou.max(dim=1).values[:, :, None]  # (B, K, 1)
    if kernel is MatrixNMSKernel.GAUSSIAN:
        ratio = torch.exp(-sigma * (decay_iou**2 - compensate**2))
    else:
        ratio = (1.0 - decay_iou) / (1.0 - compensate).clamp(min=1e-6)
    decay = ratio.min(dim=1).values  # (B, K): min over the rows i
    out = torch.empty_like(sorted_scores).scatter(1, order, sorted_scores * decay)
    return out if batched else out[0]
