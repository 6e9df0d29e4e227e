"""Tiling maths for sliding-window inference: pure functions, no model, no I/O.

The tile grid and the Gaussian importance map are the same as MONAI's
(``monai.data.utils.dense_patch_slices``, ``monai.inferers.utils._get_scan_interval`` and
``monai.data.utils.compute_importance_map``), so that our sliding window and MONAI's give the same
result for the same model, tile size, overlap and blending mode. Per axis:

- an image shorter than the tile is padded to the tile size, ``(tile - size) // 2`` before and the
  rest after;
- the stride is ``int(tile * (1 - overlap))`` (at least 1), or ``tile`` when the tile covers the
  axis exactly;
- tiles start at ``0, stride, 2 * stride, ...`` until one reaches the end; the last start is
  pulled back to ``size - tile`` so no tile sticks out of the image (tiles near the end may then
  overlap more than ``overlap``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from segwise.inferers.options import Blend

__all__ = [
    "MIN_DEFAULT_TILE",
    "TileGrid",
    "default_tile_size",
    "importance_map",
    "pad_amounts",
    "tile_grid",
    "tile_starts",
]

#: Smallest default sliding-window tile, pixels per side.
MIN_DEFAULT_TILE = 512


def default_tile_size(crop_size: int | tuple[int, ...] | list[int] | None) -> int:
    """The one default sliding-window tile: twice the training crop, at least 512.

    Validation, ``evaluate`` and ``predict`` (semantic and instance) all use it, so a model is
    scored and used on the same tiles. Twice the crop keeps the context the model was trained
    with while halving the number of tile borders; 512 keeps small-crop models from running
    on many tiny tiles.

    Args:
        crop_size: the training crop (an int, or ``(H, W)`` whose larger side counts), or
            ``None`` when unknown.

    Returns:
        The tile side in pixels.
    """
    if crop_size is None:
        return MIN_DEFAULT_TILE
    side = max(crop_size) if isinstance(crop_size, tuple | list) else int(crop_size)
    return max(2 * side, MIN_DEFAULT_TILE)


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of the tiles along one axis, in increasing order.

    Args:
        size: length of the axis after padding (``>= tile``).
        tile: tile length along the axis.
        overlap: fraction of the tile shared by neighbouring tiles, in ``[0, 1)``.

    Returns:
        Starts ``s`` with ``0 <= s <= size - tile``; the first is 0 and the last is
        ``size - tile``, so the tiles cover the axis.

    Raises:
        ValueError: if ``tile > size``, ``tile < 1`` or ``overlap`` is outside ``[0, 1)``.
    """
    if tile < 1:
        raise ValueError(f"tile={tile!r} is not valid; expected an integer >= 1")
    if tile > size:
        raise ValueError(f"tile={tile} is larger than size={size}; pad the axis first")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap!r} is not valid; expected a number in [0, 1)")
    stride = tile if tile == size else max(int(tile * (1 - overlap)), 1)
    count = 1
    while (count - 1) * stride + tile < size:
        count += 1
    return [min(i * stride, size - tile) for i in range(count)]


def pad_amounts(size: int, tile: int) -> tuple[int, int]:
    """Padding ``(before, after)`` that brings an axis shorter than the tile up to the tile.

    Args:
        size: length of the axis.
        tile: tile length along the axis.

    Returns:
        ``(0, 0)`` when ``size >= tile``; else ``((tile - size) // 2, rest)``, as MONAI pads.
    """
    diff = max(tile - size, 0)
    return diff // 2, diff - diff // 2


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles go on one image ``(H, W)`` or volume ``(D, H, W)``.

    Attributes:
        tile: ``(tile_h, tile_w)``, or ``(tile_d, tile_h, tile_w)``.
        pad: ``(before, after)`` per axis in axis order, ``(top, bottom, left, right)`` for an
            image, applied to every tile cut from the image (only non-zero on an axis shorter
            than the tile).
        starts: per axis, the tile starts in padded coordinates, increasing.
    """

    tile: tuple[int, ...]
    pad: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]

    @property
    def ys(self) -> tuple[int, ...]:
        """Tile start rows (the second-last axis) in padded coordinates."""
        return self.starts[-2]

    @property
    def xs(self) -> tuple[int, ...]:
        """Tile start columns (the last axis) in padded coordinates."""
        return self.starts[-1]

    def __len__(self) -> int:
        return math.prod(len(s) for s in self.starts)

    def positions(self) -> list[tuple[int, ...]]:
        """Tile starts ``(y, x)`` (``(z, y, x)``) in padded coordinates, row-major: the last
        axis varies fastest, so all tiles of a row (of a slab) come first."""
        return list(itertools.product(*self.starts))


def tile_grid(
    image_size: Sequence[int], tile_size: Sequence[int], *, overlap: float
) -> TileGrid:
    """The tile grid for an image or volume: padding and tile starts on every axis.

    Args:
        image_size: ``(H, W)`` of the image, or ``(D, H, W)`` of a volume.
        tile_size: the tile per axis, as many entries as ``image_size``.
        overlap: fraction of a tile shared with its neighbour, in ``[0, 1)``.

    Returns:
        The :class:`TileGrid`.
    """
    if len(image_size) != len(tile_size):
        raise ValueError(
            f"tile_size={tuple(tile_size)} does not match image_size={tuple(image_size)}; "
            "expected one tile side per axis"
        )
    pads = [pad_amounts(size, tile) for size, tile in zip(image_size, tile_size, strict=True)]
    starts = tuple(
        tuple(tile_starts(size + before + after, tile, overlap))
        for size, tile, (before, after) in zip(image_size, tile_size, pads, strict=True)
    )
    return TileGrid(tuple(tile_size), tuple(v for pair in pads for v in pair), starts)


def importance_map(
    tile_size: Sequence[int],
    *,
    blend: Blend = Blend.GAUSSIAN,
    sigma_scale: float = 0.125,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Per-pixel weight of a tile's prediction when tiles are blended.

    Args:
        tile_size: ``(tile_h, tile_w)``, or ``(tile_d, tile_h, tile_w)``.
        blend: :class:`Blend` mode.
        sigma_scale: Gaussian sigma as a fraction of the tile side (``GAUSSIAN`` only).
        device: where to create the map.

    Returns:
        ``tile_size`` float32, positive. For ``GAUSSIAN``: the outer product of
        ``exp(-x^2 / (2 sigma^2))`` with ``x`` the offset from the tile centre, clamped below at
        ``max(min value, 1e-3)``, so every pixel keeps some weight (MONAI's definition).
    """
    size = tuple(int(s) for s in tile_size)
    if blend == Blend.CONSTANT:
        return torch.ones(size, dtype=torch.float32, device=device)
    if not sigma_scale > 0 or math.isinf(sigma_scale):
        raise ValueError(f"sigma_scale={sigma_scale!r} is not valid; expected a number > 0")
    weights: torch.Tensor | None = None
    for side in size:
        sigma = side * sigma_scale
        x = torch.arange(
            -(side - 1) / 2.0, (side - 1) / 2.0 + 1, dtype=torch.float32, device=device
        )
        g = torch.exp(x**2 / (-2 * sigma**2))
        weights = g if weights is None else weights.unsqueeze(-1) * g
    assert weights is not None
    floor = max(weights.min().item(), 1e-3)
    return weights.clamp(min=floor)
