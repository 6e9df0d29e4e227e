"""Fast NMS (YOLACT, Bolya et al., ICCV 2019, section 3.3): suppression as one matrix operation.

For each class, the top ``n`` detections (sorted by descending score) get their pairwise IoU
matrix ``X`` (``(c, n, n)``). ``X`` is made upper triangular with a zero diagonal (``X[i, j] = 0``
for ``i >= j``: only a higher-scored detection can suppress a lower-scored one), and the column
maximum ``K_j = max_i X[i, j]`` is the largest IoU of detection ``j`` with any higher-scored
detection of its class. Detection ``j`` is kept when ``K_j <= iou_threshold``.

Unlike greedy NMS, a detection that is itself suppressed still suppresses the ones below it
(the paper's stated approximation, which "performs only slightly worse" and needs no loop).
Everything is tensor algebra with fixed shapes (top-k, triangular mask, max, top-k), so it traces
and exports to ONNX.

Matrix NMS (SOLOv2) lives in `segwise.instance.matrix_nms`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["fast_nms_keep", "multiclass_fast_nms", "pairwise_iou"]


def pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair of boxes, batched; 0 (not NaN) for two boxes with zero area.

    Args:
        boxes1: ``(..., n, 4)`` ``x1, y1, x2, y2`` boxes.
        boxes2: ``(..., m, 4)`` boxes, same leading dimensions.

    Returns:
        ``(..., n, m)`` IoU in [0, 1].
    """
    area1 = (boxes1[..., 2] - boxes1[..., 0]).clamp(min=0) * (
        boxes1[..., 3] - boxes1[..., 1]
    ).clamp(min=0)
    area2 = (boxes2[..., 2] - boxes2[..., 0]).clamp(min=0) * (
        boxes2[..., 3] - boxes2[..., 1]
    ).clamp(min=0)
    top_left = torch.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    bottom_right = torch.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[..., :, None] + area2[..., None, :] - inter
    return inter / union.clamp(min=torch.finfo(inter.dtype).tiny)


def fast_nms_keep(boxes: Tensor, *, iou_threshold: float) -> Tensor:
    """Which detections Fast NMS keeps (paper section 3.3; module docstring).

    Args:
        boxes: ``(..., n, 4)`` ``x1, y1, x2, y2`` boxes of each group (class), SORTED by
            descending score along ``n``.
        iou_threshold: a detection is removed when its IoU with a higher-scored one exceeds it.

    Returns:
        ``bool (..., n)``: True where the detection survives (the first of each group always
        does).
    """
    iou = pairwise_iou(boxes, boxes)  # (..., n, n)
    # X[i, j] kept only for i < j (strict upper triangle): i has the higher score
    iou = torch.triu(iou, diagonal=1)
    max_iou = iou.amax(dim=-2)  # column max K_j, (..., n)
    return max_iou <= iou_threshold


def multiclass_fast_nms(
    boxes: Tensor,
    scores: Tensor,
    *,
    iou_threshold: float,
    top_k: int,
    max_detections: int,
    score_threshold: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Class-wise Fast NMS over class-agnostic boxes, with fixed-size outputs (traceable).

    As YOLACT's ``Detect``: per class, scores below ``score_threshold`` are zeroed, the ``top_k``
    best candidates are Fast-NMS'd (`fast_nms_keep`), and the best ``max_detections`` of all
    classes' survivors are returned. Slots without a surviving detection have score 0, label 0
    and index 0 (fewer survivors than slots). Leading batch dimensions ``...`` are allowed.

    Args:
        boxes: ``(..., A, 4)`` ``x1, y1, x2, y2`` box of each candidate (shared by all classes).
        scores: ``(..., A, C)`` score of each candidate for each foreground class, in [0, 1].
        iou_threshold: Fast NMS IoU threshold (YOLACT: 0.5).
        top_k: candidates per class entering Fast NMS (YOLACT: 200).
        max_detections: output slots ``D`` (YOLACT: 100).
        score_threshold: candidates scoring below it are dropped (YOLACT: 0.05).

    Returns:
        ``scores (..., D)`` descending, ``labels (..., D) int64`` in ``1..C`` (0 for an empty
        slot) and ``indices (..., D) int64`` into ``A`` (0 for an empty slot).
    """
    num_classes = scores.shape[-1]
    # pad with top_k zero-score candidates so that top-k never asks for more than there are
    # (an image with fewer than top_k anchors) without a data-dependent k
    scores = F.pad(scores, (0, 0, 0, top_k))
    boxes = F.pad(boxes, (0, 0, 0, top_k))
    scores = torch.where(scores >= score_threshold, scores, torch.zeros_like(scores))
    cls_scores, idx = scores.transpose(-1, -2).topk(top_k, dim=-1)  # (..., C, T) descending
    flat_idx = idx.flatten(-2)  # (..., C * T)
    candidates = torch.stack([boxes[..., j].gather(-1, flat_idx) for j in range(4)], dim=-1)
    candidates = candidates.unflatten(-2, (num_classes, top_k))  # (..., C, T, 4)
    keep = fast_nms_keep(candidates, iou_threshold=iou_threshold)
    flat_scores = (cls_scores * keep).flatten(-2)  # (..., C * T)
    labels = torch.arange(1, num_classes + 1, device=scores.device).repeat_interleave(top_k)
    pad = max(max_detections - num_classes * top_k, 0)  # static: known at build time
    if pad:
        flat_scores = F.pad(flat_scores, (0, pad))
        flat_idx = F.pad(flat_idx, (0, pad))
        labels = F.pad(labels, (0, pad))
    out_scores, order = flat_scores.topk(max_detections, dim=-1)
    present = out_scores > 0
    out_labels = torch.where(present, labels[order], torch.zeros_like(order))
    out_idx = torch.where(present, flat_idx.gather(-1, order), torch.zeros_like(order))
    return out_scores, out_labels, out_idx
