"""Anchor boxes on FPN levels, with sizes derived from the training data's object sizes.

An anchor of size ``s`` and aspect ratio ``r`` (``height / width``, the convention of
`segwise.instance.methods.base.ObjectStats`) has ``w = s / sqrt(r)``, ``h = s * sqrt(r)`` (area
``s**2``), centred on every cell ``(i, j)`` of its level: ``((j + 0.5) * stride, (i + 0.5) *
stride)`` in input pixels (SSD/YOLACT place anchors at cell centres). A level may carry several
sizes, its size times each of ``scales`` (RetinaNet's and YOLACT++'s ``2^0, 2^(1/3), 2^(2/3)``).

Detectors tuned on COCO put one size per level at a fixed multiple of its stride (YOLACT: 24,
48, 96, 192, 384 px on P3-P7 of a 550 px image). For data whose objects are all ~10 px (the
dsb2018 nuclei) those anchors match nothing, so the sizes are derived from the training objects'
``sqrt(w * h)`` instead, two ways:

- `anchor_sizes_by_stride` (YOLACT): each level's size is the median of the objects nearest its
  nominal ``3 * stride`` (paper size where a level has none): anchors where the objects are,
  on levels whose stride can localise them;
- `anchor_sizes_from_stats` (Mask R-CNN): sizes spread geometrically from the 5th to the 95th
  percentile, smallest on the finest level.

The run banner prints what was derived; the options override it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["anchor_sizes_by_stride", "anchor_sizes_from_stats", "grid_anchors"]


def anchor_sizes_from_stats(
    sizes: np.ndarray, *, num_levels: int, low: float = 5.0, high: float = 95.0
) -> tuple[float, ...]:
    """One anchor size per pyramid level, spread over the training objects' sizes.

    ``size_l = q_low * (q_high / q_low) ** (l / (num_levels - 1))`` for ``l = 0 ..
    num_levels - 1`` (finest level first), where ``q_p`` is the ``p``-th percentile of
    ``sizes`` (at least 2 px; ``q_high >= q_low``). Rounded to 0.1 px.

    Args:
        sizes: ``float (K,)`` ``sqrt(box width * box height)`` of the training objects, px
            (`ObjectStats.sizes`).
        num_levels: number of pyramid levels.
        low: lower percentile.
        high: upper percentile.

    Returns:
        ``num_levels`` increasing sizes in px.

    Raises:
        ValueError: ``sizes`` is empty (no object in the training data).
    """
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if sizes.size == 0:
        raise ValueError(
            "cannot derive anchor sizes: the training data has no objects; pass anchor_sizes "
            "in the method options"
        )
    lo = max(float(np.percentile(sizes, low)), 2.0)
    hi = max(float(np.percentile(sizes, high)), lo)
    if num_levels == 1:
        return (round(math.sqrt(lo * hi), 1),)
    return tuple(
        round(lo * (hi / lo) ** (i / (num_levels - 1)), 1) for i in range(num_levels)
    )


def anchor_sizes_by_stride(
    sizes: np.ndarray, *, strides: Sequence[int], scale: float = 3.0
) -> tuple[float, ...]:
    """One anchor size per level: the median size of the training objects that level carries.

    A level of stride ``s`` nominally carries objects near ``scale * s`` px (YOLACT: 3, i.e. the
    paper's 24 px on P3 ... 384 px on P7). Each object goes to the level nearest in log scale,
    ``l = clip(round(log2(size / (scale * s_0))), 0, L - 1)`` (objects smaller than P3's range go
    to P3, larger than P7's to P7), and a level's anchor size is the median size of its objects,
    or ``scale * s`` when it has none. So the anchors sit where the data's objects are while each
    level keeps objects its stride can localise: on the dsb2018 training images (nuclei 7-53 px
    between the 5th and 95th percentiles, median 20 px) P3-P7 get 18, 47.3, 76, 192, 384 px,
    where `anchor_sizes_from_stats` gives 7.1, 11.7, 19.3, 31.8, 52.5 px (the median nucleus
    on stride 32). Rounded to 0.1 px, at least 2 px.

    Args:
        sizes: ``float (K,)`` ``sqrt(box width * box height)`` of the training objects, px.
        strides: stride of each level, finest first, each twice the previous.
        scale: nominal anchor size in strides.

    Returns:
        One size per level, px.
    """
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1)
    sizes = sizes[sizes > 0]
    levels = np.clip(np.round(np.log2(sizes / (scale * strides[0]))), 0, len(strides) - 1)
    out = []
    for i, stride in enumerate(strides):
        mine = sizes[levels == i]
        size = float(np.median(mine)) if mine.size else scale * stride
        out.append(round(max(size, 2.0), 1))
    return tuple(out)


def _level_anchors(
    height: int | Tensor,
    width: int | Tensor,
    stride: int,
    size: float,
    aspect_ratios: Sequence[float],
    device: torch.device,
    scales: Sequence[float] = (1.0,),
) -> Tensor:
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # (h, w) each
    half = torch.tensor(
        [
            [size * m / math.sqrt(r) / 2, size * m * math.sqrt(r) / 2]
            for m in scales
            for r in aspect_ratios
        ],
        device=device,
        dtype=torch.float32,
    )  # (a, 2): half width, half height; scale-major, aspect ratio fastest
    centre = torch.stack([cx, cy], dim=-1)[:, :, None, :]  # (h, w, 1, 2)
    boxes = torch.cat([centre - half, centre + half], dim=-1)  # (h, w, a, 4)
    return boxes.reshape(-1, 4)


def grid_anchors(
    feature_sizes: Sequence[tuple[int | Tensor, int | Tensor]],
    *,
    strides: Sequence[int],
    sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    device: torch.device | None = None,
    scales: Sequence[float] = (1.0,),
) -> Tensor:
    """Anchors of every level, in the order a dense head's outputs are flattened.

    Order: level, then row ``i``, column ``j``, then scale, then aspect ratio (fastest), i.e.
    the order of ``out.permute(0, 2, 3, 1).reshape(N, -1, X)`` for a head output ``(N, a * X,
    h, w)`` with ``a = len(scales) * len(aspect_ratios)``.

    Args:
        feature_sizes: ``(h, w)`` of each level's feature map (ints, or traced sizes).
        strides: stride of each level, px.
        sizes: anchor size of each level, px.
        aspect_ratios: ``height / width`` ratios, the same on every level.
        device: where to build them.
        scales: multipliers of each level's size (one anchor size per scale and level).

    Returns:
        ``float32 (A, 4)`` xyxy anchors in input pixels, ``A = sum(h * w) * a``.
    """
    return torch.cat(
        [
            _level_anchors(
                h, w, stride, size, aspect_ratios, device or torch.device("cpu"), scales
            )
            for (h, w), stride, size in zip(feature_sizes, strides, sizes, strict=True)
        ]
    )
