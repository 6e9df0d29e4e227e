"""SOLOv2 training targets: which grid cells of which FPN level are each instance's (SOLO, Wang et
al., ECCV 2020, section 3.2/3.3.1; SOLOv2 keeps the same assignment).

For one image (padded to ``(H, W)``) and every level ``l`` with grid ``S_l`` and scale range
``[lo_l, hi_l]``:

1. An instance belongs to level ``l`` when its scale ``sqrt(box width * box height)`` (px, of the
   pixel-edge box of its mask) lies in ``[lo_l, hi_l]`` (both ends included; the default ranges
   overlap, so an instance may belong to two levels).
2. Its *centre region* is the box of half-size ``epsilon * (w/2, h/2)`` (``epsilon = 0.2``) around
   its centre of mass ``(cx, cy)`` (pixel centres at ``index + 0.5``). Grid cell ``(i, j)`` of
   an ``S_h x S_w`` grid covers ``[j W/S_w, (j+1) W/S_w) x [i H/S_h, (i+1) H/S_h)``; the
   positive cells are those the centre region touches, clipped to the 3 x 3 cells around the
   centre's own cell (as the authors' code does): 1 to 9 positive cells per level.
3. Where two instances claim a cell, the smaller one wins (instances are painted from the largest
   to the smallest; the authors' code lets the later instance of the annotation file win, an
   order that carries no meaning).

The mask target of a positive cell is its instance's mask at the mask-feature scale (1/4),
obtained by 4 x 4 average pooling: a soft target in [0, 1] (the fraction of each 4 x 4 block
inside the instance). The paper downsamples with a bilinear resize; averaging keeps objects of a
few pixels (10 px nuclei are 2.5 px at 1/4) from vanishing or shifting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from segwise.data.boxes import boxes_from_masks

__all__ = ["GridTargets", "assign_grid_targets", "instance_scales"]


@dataclass(frozen=True)
class GridTargets:
    """One image's SOLOv2 targets over all levels (cells numbered level by level, row-major).

    Attributes:
        categories: ``int64 (T,)`` class label of each cell, 0 = background (``T = sum over
            levels of S_h * S_w``).
        positive_cells: ``int64 (P,)`` the indices of the positive cells (sorted).
        positive_instances: ``int64 (P,)`` the instance (row of ``masks``) of each positive cell.
        masks: ``float32 (K, H/stride, W/stride)`` soft mask targets of the instances.
    """

    categories: Tensor
    positive_cells: Tensor
    positive_instances: Tensor
    masks: Tensor


def instance_scales(masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Scale, box and centre of mass of each mask.

    Args:
        masks: ``(K, H, W)`` binary masks (any dtype; non-zero = inside).

    Returns:
        ``(scales (K,), boxes (K, 4), centres (K, 2))``, float32: ``sqrt(w * h)`` of the
        pixel-edge box ``x1, y1, x2, y2`` (``x2 = last column + 1``), and ``(cx, cy)`` the mean
        of the pixel centres (``index + 0.5``). An empty mask gets scale 0 and a zero box.
    """
    h, w = masks.shape[-2:]
    inside = masks != 0
    xs = torch.arange(w, device=masks.device, dtype=torch.float32)
    ys = torch.arange(h, device=masks.device, dtype=torch.float32)
    boxes = boxes_from_masks(inside)
    scales = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
    weight = inside.float()
    area = weight.sum((1, 2)).clamp(min=1)
    cx = (weight.sum(1) * (xs + 0.5)).sum(1) / area
    cy = (weight.sum(2) * (ys + 0.5)).sum(1) / area
    return scales, boxes, torch.stack([cx, cy], 1)


def assign_grid_targets(
    masks: Tensor,
    labels: Tensor,
    *,
    grids: Sequence[int | tuple[int, int]],
    scale_ranges: Sequence[tuple[float, float]],
    center_sampling: float = 0.2,
    mask_stride: int = 4,
) -> GridTargets:
    """SOLOv2 targets of one image (module docstring).

    Args:
        masks: ``(K, H, W)`` instance masks of the PADDED image (H, W multiples of
            ``mask_stride``); empty masks are never positive.
        labels: ``(K,)`` class labels in ``[1, num_classes]``.
        grids: the grid of each level: ``S`` (``S x S`` cells) or ``(S_h, S_w)``.
        scale_ranges: ``(lo, hi)`` of each level, in px of ``sqrt(box area)``.
        center_sampling: ``epsilon``, the centre region's share of the box (paper: 0.2).
        mask_stride: the mask features' stride (4: P2).

    Returns:
        `GridTargets`.
    """
    if len(grids) != len(scale_ranges):
        raise ValueError(f"{len(grids)} grids but {len(scale_ranges)} scale ranges; expected one "
                         "range per level")
    k, h, w = masks.shape
    device = masks.device
    scales, boxes, centres = instance_scales(masks)
    order = torch.argsort(scales, descending=True, stable=True).tolist()  # largest first
    # python floats once (one device sync per image, not one per instance and level)
    scale_list, box_list, centre_list = scales.tolist(), boxes.tolist(), centres.tolist()
    label_cpu = labels.cpu().long()
    categories, cells, owners = [], [], []
    offset = 0
    for grid, (lo, hi) in zip(grids, scale_ranges, strict=True):
        sh, sw = (int(grid), int(grid)) if isinstance(grid, int) else (int(v) for v in grid)
        owner = torch.full((sh, sw), -1, dtype=torch.long)

        def cell(v: float, size: int, n: int) -> int:
            return min(max(int(v / size * n), 0), n - 1)

        for idx in order:
            scale = scale_list[idx]
            if scale <= 0 or not lo <= scale <= hi:
                continue
            x1, y1, x2, y2 = box_list[idx]
            cx, cy = centre_list[idx]
            half_w = 0.5 * (x2 - x1) * center_sampling
            half_h = 0.5 * (y2 - y1) * center_sampling
            ci, cj = cell(cy, h, sh), cell(cx, w, sw)
            top = max(cell(cy - half_h, h, sh), ci - 1)
            down = min(cell(cy + half_h, h, sh), ci + 1)
            left = max(cell(cx - half_w, w, sw), cj - 1)
            right = min(cell(cx + half_w, w, sw), cj + 1)
            owner[top : down + 1, left : right + 1] = idx
        flat = owner.flatten()
        positive = torch.nonzero(flat >= 0).flatten()
        cat = torch.zeros(sh * sw, dtype=torch.long)
        if k:
            cat[positive] = label_cpu[flat[positive]]
        categories.append(cat)
        cells.append(positive + offset)
        owners.append(flat[positive])
        offset += sh * sw
    pooled = F.avg_pool2d(masks[:, None].float(), mask_stride)[:, 0] if k else masks.new_zeros(
        (0, h // mask_stride, w // mask_stride), dtype=torch.float32)
    return GridTargets(
        categories=torch.cat(categories).to(device),
        positive_cells=torch.cat(cells).to(device),
        positive_instances=torch.cat(owners).to(device),
        masks=pooled,
    )
