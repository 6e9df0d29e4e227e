"""SOLOv2 prediction on images larger than the training crops: crop-sized overlapping tiles.

Why tiles: SOLOv2 finds *where* an instance is through its CoordConv channels (paper section
3.2), two coordinate maps normalised to [-1, 1] over the network's input (`head.coord_channels`,
in the kernel branch and in the mask feature branch). A model trained on ``R x R`` crops has
learned masks whose extent and position are functions of those coordinates at a slope of
``2 / R`` per pixel. Decoded on a whole ``696 x 520`` image, the same coordinate range spans
5.4 x 4.1 times more pixels: measured on a checkpoint trained on 128 px DSB 2018 crops, the top
cells' masks were thousands of pixels wide and centred near the image centre whatever the cell
(AP50 0.009 on the 16 benchmark images, docs/benchmarks.md, "Instance segmentation"). The paper
never meets this, since it trains and tests on whole images resized to one scale.

So an image larger than the tile in either side is decoded in overlapping ``tile x tile``
windows, each exactly the geometry of training (``tile`` = the training crops' side, the
method's ``grid_reference``):

1. Tile starts along an axis (`tile_starts`): ``0, stride, 2 stride, ...`` with
   ``stride = tile - round(overlap * tile)``, the last tile moved back to end at the image edge.
2. Each tile owns a *core* (`tile_cores`): the half-open span between the middles of its
   overlaps with the previous and the next tile (the image edge for the first / last tile);
   the cores of one axis partition ``[0, size)``.
3. An instance found in a tile is kept only when the centroid of its mask (pixel centres,
   image coordinates) lies in that tile's core, so an object seen by two tiles is kept once.
   An object wider than the overlap may be cut at a tile border: raise ``tile_overlap``.
4. The kept masks are painted in descending score into one label map (where masks overlap,
   the higher score wins the pixel, as `InstancePrediction.from_masks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from segwise.instance.representation import InstancePrediction

__all__ = ["predict_tiled", "tile_cores", "tile_starts"]

#: tiles decoded in one forward pass
_TILES_PER_BATCH = 8


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start of each tile along one axis of ``size`` px (module docstring, step 1).

    Args:
        size: the image side.
        tile: the tile side (a side ``<= tile`` gets one tile at 0).
        overlap: share of the tile shared with the next one, in ``[0, 1)``.

    Returns:
        Increasing starts; the last one is ``size - tile`` when ``size > tile``.
    """
    if size <= tile:
        return [0]
    stride = max(1, tile - round(overlap * tile))
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def tile_cores(starts: Sequence[int], tile: int, size: int) -> list[tuple[float, float]]:
    """The core ``[lo, hi)`` of each tile along one axis (module docstring, step 2).

    The border between tiles ``k`` and ``k + 1`` is the middle of their overlap,
    ``(starts[k + 1] + starts[k] + tile) / 2``; the first core starts at 0, the last ends at
    ``size``. Example: ``size 300, tile 128, starts (0, 96, 172)``: cores ``[0, 112)``,
    ``[112, 198)``, ``[198, 300)``.
    """
    borders = [(starts[k + 1] + starts[k] + tile) / 2 for k in range(len(starts) - 1)]
    return list(zip([0.0, *borders], [*borders, float(size)], strict=True))


def predict_tiled(
    decode: Callable[[Tensor], list[InstancePrediction]],
    image: Tensor,
    *,
    tile: int,
    overlap: float,
) -> InstancePrediction:
    """Instances of one image decoded tile by tile (module docstring).

    Args:
        decode: whole-input decoding, ``(B, C, h, w)`` -> one `InstancePrediction` per tile.
        image: ``(C, H, W)`` normalised image.
        tile: tile side in px (the training crops' side).
        overlap: share of a tile shared with its neighbour, in ``[0, 1)``.

    Returns:
        One `InstancePrediction` of shape ``(H, W)``.
    """
    h, w = image.shape[-2:]
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    cores_y, cores_x = tile_cores(ys, tile, h), tile_cores(xs, tile, w)
    windows = [(y, x, cy, cx) for y, cy in zip(ys, cores_y, strict=True)
               for x, cx in zip(xs, cores_x, strict=True)]
    kept: list[tuple[float, int, int, int, np.ndarray]] = []  # score, label, y0, x0, mask
    for first in range(0, len(windows), _TILES_PER_BATCH):
        chunk = windows[first : first + _TILES_PER_BATCH]
        batch = torch.stack([image[:, y : y + tile, x : x + tile] for y, x, _, _ in chunk])
        for (y, x, (ylo, yhi), (xlo, xhi)), pred in zip(chunk, decode(batch), strict=True):
            for rec in pred.instances():
                rows, cols = np.nonzero(rec.mask)
                cy, cx = y + rows.mean() + 0.5, x + cols.mean() + 0.5  # pixel centres
                if ylo <= cy < yhi and xlo <= cx < xhi:
                    kept.append((rec.score, rec.label, y, x, rec.mask))
    kept.sort(key=lambda k: -k[0])  # stable: equal scores keep tile order
    inst = np.zeros((h, w), dtype=np.int32)
    labels, scores = {}, {}
    for i, (score, label, y, x, mask) in enumerate(kept, start=1):
        th, tw = mask.shape
        window = inst[y : y + th, x : x + tw]
        window[mask & (window == 0)] = i
        labels[i], scores[i] = label, score
    present = [int(i) for i in np.unique(inst) if i]
    return InstancePrediction.from_label_map(  # IDs 1..K in descending score, as from_masks
        inst, labels={i: labels[i] for i in present},
        scores={i: scores[i] for i in present}).relabel()
