"""Training targets for semantic-to-instance methods, from an instance label map.

- `three_class_target`: background (0) / interior (1) / boundary (2) per pixel;
- `distance_target`: each instance's Euclidean distance transform, scaled to [0, 1] per instance;
- `border_weight_map`: the U-Net paper's weight map
  ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``;
- `unet_targets_from_item`: the first and the third for one dataset item, as tensors;

The first three take ``instance_map: (H, W)`` integers, 0 = background, and are pure
numpy/scipy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from segwise._validation import as_enum, check_positive
from segwise.instance.methods.unet_watershed.options import ClassBalance
from segwise.instance.representation import InstancePrediction

__all__ = [
    "BOUNDARY",
    "INTERIOR",
    "ClassBalance",
    "border_weight_map",
    "distance_target",
    "instance_map_from_item",
    "three_class_target",
    "unet_targets_from_item",
]

#: class indices of `three_class_target`
INTERIOR, BOUNDARY = 1, 2


def _check_map(instance_map: np.ndarray) -> np.ndarray:
    inst = np.asarray(instance_map)
    if inst.ndim != 2 or not np.issubdtype(inst.dtype, np.integer):
        raise ValueError(
            f"instance_map has shape {inst.shape} and dtype {inst.dtype}; expected an integer "
            "(H, W) label map"
        )
    return inst


def three_class_target(instance_map: np.ndarray, *, width: int = 1) -> np.ndarray:
    """Background / interior / boundary classes from an instance map.

    A foreground pixel is *boundary* when a pixel within ``width`` of it (square neighbourhood,
    chessboard distance) has a different ID: background, or another instance (so touching
    instances are separated by boundary on both sides). Pixels beyond the image edge count as
    the same instance (mode ``nearest``): the image edge is not a boundary.

    Args:
        instance_map: ``(H, W)`` integer instance map, 0 = background.
        width: boundary thickness in pixels, >= 1.

    Returns:
        ``int64 (H, W)`` with 0 = background, 1 = interior, 2 = boundary.
    """
    from scipy import ndimage

    inst = _check_map(instance_map)
    if int(width) != width or width < 1:
        raise ValueError(f"width={width!r} is not valid; expected an integer >= 1")
    size = 2 * int(width) + 1
    lo = ndimage.minimum_filter(inst, size=size, mode="nearest")
    hi = ndimage.maximum_filter(inst, size=size, mode="nearest")
    out = np.zeros(inst.shape, dtype=np.int64)
    fg = inst > 0
    out[fg] = np.where((lo[fg] == inst[fg]) & (hi[fg] == inst[fg]), INTERIOR, BOUNDARY)
    return out


def distance_target(instance_map: np.ndarray) -> np.ndarray:
    """Per-instance distance to the instance's edge, scaled to a maximum of 1 per instance.

    Each instance's Euclidean distance transform (distance to the nearest pixel outside the
    instance, so 1 on its outermost pixels; the image edge counts as outside) is computed in its
    bounding window padded by one pixel (cost ``O(sum of window areas)``), then divided by its
    maximum. Background is 0.

    Returns:
        ``float32 (H, W)`` in [0, 1].
    """
    from scipy import ndimage

    inst = _check_map(instance_map)
    out = np.zeros(inst.shape, dtype=np.float32)
    for sl, label in _windows(inst, pad=1):
        own = inst[sl] == label
        # a False frame makes the image edge count as the instance's edge
        dist = ndimage.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
        out[sl][own] = (dist[own] / dist.max()).astype(np.float32)
    return out


def border_weight_map(
    instance_map: np.ndarray,
    *,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: ClassBalance | str = ClassBalance.BALANCED,
    truncate: float = 6.0,
    background_only: bool = True,
) -> np.ndarray:
    """The U-Net border weight map (Ronneberger et al. 2015, eq. 2).

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))`` where ``d1``/``d2`` are
    the distances from ``x`` to the nearest and second-nearest instance (distance to an instance
    = distance to its nearest pixel, 0 inside it). The border term is added on background
    pixels only by default (the gaps between touching cells, as in the paper's figure 3d);
    ``background_only=False`` adds it everywhere.

    Complexity: the term is below ``w0 * exp(-truncate**2 / 2)`` once ``d1 + d2 > R =
    truncate * sigma``, so each instance's distance transform is computed only in its bounding
    box grown by ``R``, and ``d1``, ``d2`` are kept as running minima. Cost
    ``O(sum_k (h_k + 2R)(w_k + 2R))`` instead of ``O(K * H * W)``; pixels with fewer than two
    instances within ``R`` get no border term (error < ``w0 * exp(-truncate**2 / 2)``, 1.5e-7
    with the defaults).

    Args:
        instance_map: ``(H, W)`` integer instance map, 0 = background.
        w0: border weight, >= 0.
        sigma: border width in pixels, > 0.
        class_balance: the ``w_c`` term, a `ClassBalance` (foreground vs background).
        truncate: cut-off radius in units of ``sigma``, > 0.
        background_only: add the border term on background pixels only.

    Returns:
        ``float32 (H, W)`` weights (all ``w_c`` for an image without instances).
    """
    from scipy import ndimage

    inst = _check_map(instance_map)
    check_positive(w0, "w0", allow_zero=True)
    check_positive(sigma, "sigma")
    check_positive(truncate, "truncate")
    balance = as_enum(class_balance, ClassBalance, "class_balance")

    fg = inst > 0
    weights = np.ones(inst.shape, dtype=np.float64)
    if balance is ClassBalance.BALANCED:
        n_fg = int(fg.sum())
        n_bg = fg.size - n_fg
        present = (n_fg > 0) + (n_bg > 0)
        if n_fg:
            weights[fg] = fg.size / (present * n_fg)
        if n_bg:
            weights[~fg] = fg.size / (present * n_bg)

    radius = float(truncate) * float(sigma)
    d1 = np.full(inst.shape, np.inf)
    d2 = np.full(inst.shape, np.inf)
    for sl, label in _windows(inst, pad=int(np.ceil(radius))):
        d = ndimage.distance_transform_edt(inst[sl] != label)
        a, b = d1[sl], d2[sl]  # views into d1, d2
        closer = d < a
        b[:] = np.where(closer, a, np.minimum(b, d))
        a[:] = np.where(closer, d, a)
    total = d1 + d2
    term = np.where(np.isfinite(total) & (total <= radius), 0.0, -1.0)
    ok = term == 0
    term[ok] = w0 * np.exp(-(total[ok] ** 2) / (2.0 * sigma**2))
    term[~ok] = 0.0
    if background_only:
        term[fg] = 0.0
    return (weights + term).astype(np.float32)


def _windows(inst: np.ndarray, *, pad: int):
    """Yield ``(slices, label)`` for each instance: its bounding box grown by ``pad``, clipped.

    ``label`` is the instance's value in ``inst``; windows index ``inst`` itself.
    """
    from scipy import ndimage

    h, w = inst.shape
    compact, values = inst, None
    if inst.max(initial=0) > 4 * inst.size:  # huge sparse IDs: find_objects allocates max ID
        values, compact = np.unique(inst, return_inverse=True)
        compact = compact.reshape(inst.shape)
        if values[0] != 0:  # keep index 0 for background
            values, compact = np.concatenate([[0], values]), compact + 1
    for index, sl in enumerate(ndimage.find_objects(compact), start=1):
        if sl is None:
            continue
        ys, xs = sl
        yield (
            (
                slice(max(ys.start - pad, 0), min(ys.stop + pad, h)),
                slice(max(xs.start - pad, 0), min(xs.stop + pad, w)),
            ),
            index if values is None else int(values[index]),
        )


def instance_map_from_item(item: Mapping[str, Any]) -> np.ndarray:
    """``int32 (H, W)`` instance map from an Instance item's ``"instances"``.

    IDs are the item's ``"ids"`` (else ``k + 1``); where masks overlap the earlier one wins.
    """
    return InstancePrediction.from_target(item["instances"]).instance_map


def unet_targets_from_item(
    item: Mapping[str, Any],
    *,
    boundary_width: int = 1,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: ClassBalance | str = ClassBalance.BALANCED,
) -> dict[str, Any]:
    """Targets of a ``unet_watershed`` model for one Instance item.

    Returns:
        ``{"mask": int64 (H, W)`` 0 background / 1 interior / 2 boundary, ``"pixel_weights":
        float32 (H, W)`` the U-Net border weight map (for ``DiceCELoss(pixel_weights=...)``)}.
    """
    import torch

    inst = instance_map_from_item(item)
    return {
        "mask": torch.from_numpy(three_class_target(inst, width=boundary_width)),
        "pixel_weights": torch.from_numpy(
            border_weight_map(inst, w0=w0, sigma=sigma, class_balance=class_balance)
        ),
    }
