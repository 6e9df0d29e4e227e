"""Box coding and anchor matching for single-stage detectors (SSD / YOLACT conventions).

Boxes are pixel-edge ``x1, y1, x2, y2`` (the convention of `segwise.instance.representation`).

- **Coding** (SSD, Liu et al., ECCV 2016, eq. 2, with the "variances" of its released code, also
  YOLACT's): for an anchor of centre ``(a_x, a_y)`` and size ``(a_w, a_h)`` and a box of centre
  ``(g_x, g_y)`` and size ``(g_w, g_h)``::

      t_x = (g_x - a_x) / (v_c * a_w)      t_w = log(g_w / a_w) / v_s
      t_y = (g_y - a_y) / (v_c * a_h)      t_h = log(g_h / a_h) / v_s

  with ``v_c = 0.1``, ``v_s = 0.2``. `decode_boxes` is the exact inverse.
- **Matching** (SSD section 2.2, YOLACT's ``match``): an anchor is positive for the ground-truth
  box it overlaps most when that IoU is ``>= positive_iou`` (0.5), negative (background) when
  its best IoU is ``< negative_iou`` (0.4), neutral (ignored by the class loss) in between; and
  every ground-truth box claims its best-overlapping anchors as positive whatever the IoU, so no
  object goes unmatched: all anchors tied at that best IoU, as torchvision's ``Matcher`` does
  with ``allow_low_quality_matches`` (Faster R-CNN), not one of them (SSD's ``argmax``, which
  made the others, identical in IoU, background: an object smaller than the anchors, centred
  between four cells, got one positive and three negatives of the same overlap).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert, box_iou

__all__ = ["BACKGROUND", "NEUTRAL", "VARIANCES", "decode_boxes", "encode_boxes", "match_anchors"]

#: SSD/YOLACT coding variances (centre, size)
VARIANCES = (0.1, 0.2)
#: `match_anchors` code of a background (negative) anchor
BACKGROUND = -1
#: `match_anchors` code of a neutral anchor (neither positive nor negative)
NEUTRAL = -2


def encode_boxes(
    boxes: Tensor, anchors: Tensor, *, variances: tuple[float, float] = VARIANCES
) -> Tensor:
    """Regression targets of ``boxes`` w.r.t. ``anchors`` (SSD coding, module docstring).

    Args:
        boxes: ``(A, 4)`` xyxy ground-truth box matched to each anchor (positive widths).
        anchors: ``(A, 4)`` xyxy anchors.
        variances: ``(v_c, v_s)``.

    Returns:
        ``(A, 4)`` ``t_x, t_y, t_w, t_h``.
    """
    g = box_convert(boxes, "xyxy", "cxcywh")
    a = box_convert(anchors, "xyxy", "cxcywh")
    centre = (g[:, :2] - a[:, :2]) / (variances[0] * a[:, 2:])
    size = torch.log(g[:, 2:] / a[:, 2:]) / variances[1]
    return torch.cat([centre, size], dim=1)


def decode_boxes(
    deltas: Tensor, anchors: Tensor, *, variances: tuple[float, float] = VARIANCES
) -> Tensor:
    """Boxes from regression outputs, the inverse of `encode_boxes`.

    Args:
        deltas: ``(..., A, 4)`` ``t_x, t_y, t_w, t_h``.
        anchors: ``(A, 4)`` xyxy anchors.
        variances: ``(v_c, v_s)``.

    Returns:
        ``(..., A, 4)`` xyxy boxes.
    """
    a = box_convert(anchors, "xyxy", "cxcywh")
    centre = a[:, :2] + deltas[..., :2] * variances[0] * a[:, 2:]
    # clamp as torchvision's BoxCoder does (log(1000 / 16)) so an untrained head cannot overflow
    size = a[:, 2:] * torch.exp((deltas[..., 2:] * variances[1]).clamp(max=4.135))
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def match_anchors(
    anchors: Tensor,
    gt_boxes: Tensor,
    *,
    positive_iou: float = 0.5,
    negative_iou: float = 0.4,
) -> Tensor:
    """Assign each anchor a ground-truth box, background or neutral (module docstring).

    Args:
        anchors: ``(A, 4)`` xyxy anchors.
        gt_boxes: ``(K, 4)`` xyxy ground-truth boxes with positive area (``K`` may be 0).
        positive_iou: IoU at or above which an anchor is positive.
        negative_iou: IoU below which an anchor is background (``<= positive_iou``).

    Returns:
        ``int64 (A,)``: the index in ``0..K-1`` of the matched box for a positive anchor,
        `BACKGROUND` (-1) or `NEUTRAL` (-2).
    """
    num_anchors = anchors.shape[0]
    if gt_boxes.shape[0] == 0:
        return torch.full((num_anchors,), BACKGROUND, dtype=torch.long, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # (K, A)
    best_iou, best_gt = iou.max(dim=0)  # per anchor
    # every ground truth claims its best anchors, ties included (later boxes win a shared
    # anchor, as in SSD); one anchor (the first best) when it overlaps no anchor at all
    num_gt = gt_boxes.shape[0]
    gt_best = iou.amax(dim=1, keepdim=True)  # (K, 1)
    is_best = (iou >= gt_best) & (gt_best > 0)  # (K, A)
    is_best[torch.arange(num_gt, device=anchors.device), iou.argmax(dim=1)] = True
    # the highest index claiming each anchor: the first True of the flipped (K, A) mask
    last = num_gt - 1 - is_best.flip(0).to(torch.uint8).argmax(dim=0)  # (A,)
    claimed = is_best.any(dim=0)
    claim = torch.where(claimed, last, torch.full_like(last, -1))
    best_gt = torch.where(claimed, claim, best_gt)
    best_iou = torch.where(claimed, torch.full_like(best_iou, 2.0), best_iou)
    matched = torch.where(
        best_iou >= positive_iou,
        best_gt,
        torch.where(best_iou < negative_iou, BACKGROUND, NEUTRAL),
    )
    return matched.long()
