"""Semantic-to-instance decoding: from U-Net outputs to an `InstancePrediction`.

Two kinds of network output are decoded (targets: `.targets`):

- three-class probabilities (background / interior / boundary): `decode_three_class`, and
  ``unet_watershed``'s logits through it (`decode_unet_logits`);
- a distance map (each instance's distance transform, scaled to [0, 1]): `decode_distance`.

Each has two decodings (`Decoding`): marker-based watershed (scikit-image, imported lazily) or
plain connected components (scipy only). Foreground components that receive no marker become
instances of their own, so no foreground pixel is lost. Definitions: ``docs/instance.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segwise._validation import as_enum, check_positive, check_probability
from segwise.instance.methods.unet_watershed.options import (
    UNET_NUM_CLASSES,
    Decoding,
    UNetWatershedOptions,
)
from segwise.instance.representation import InstancePrediction

__all__ = ["decode_distance", "decode_three_class", "decode_unet_logits"]


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value)


def decode_three_class(
    probs: Any,
    *,
    decoding: Decoding | str = Decoding.WATERSHED,
    foreground_threshold: float = 0.5,
    interior_threshold: float = 0.5,
    min_area: int = 0,
    grow: int = 1,
    label: int = 1,
) -> InstancePrediction:
    """Instances from background / interior / boundary probabilities.

    Foreground = ``1 - p_background > foreground_threshold``; markers = connected components of
    ``p_interior > interior_threshold`` within the foreground. Watershed floods the elevation
    ``1 - p_interior`` from the markers, restricted to the foreground.

    Args:
        probs: ``(3, H, W)`` probabilities (channel 0 background, 1 interior, 2 boundary; numpy
            or tensor), or an ``(H, W)`` integer class map with those classes.
        decoding: a `Decoding`.
        foreground_threshold: in [0, 1].
        interior_threshold: in [0, 1].
        min_area: instances with fewer pixels are removed.
        grow: connected-components decoding only: growth radius in pixels, chessboard distance
            (the boundary width of the training target); ``None``: the whole foreground
            component.
        label: class label given to every instance (one foreground class).

    Returns:
        An `InstancePrediction`; each score is the mean foreground probability over the
        instance's pixels.
    """
    from scipy import ndimage

    decoding = as_enum(decoding, Decoding, "decoding")
    check_probability(foreground_threshold, "foreground_threshold")
    check_probability(interior_threshold, "interior_threshold")
    p = _to_numpy(probs)
    if p.ndim == 2 and np.issubdtype(p.dtype, np.integer):
        p = (p[None] == np.arange(3)[:, None, None]).astype(np.float32)
    if p.ndim != 3 or p.shape[0] != 3:
        raise ValueError(
            f"probs has shape {p.shape}; expected (3, H, W) probabilities (background, interior, "
            "boundary) or an (H, W) integer class map"
        )
    fg_prob = 1.0 - p[0]
    fg = fg_prob > foreground_threshold
    markers, _ = ndimage.label((p[1] > interior_threshold) & fg)
    return _finish(
        markers,
        fg,
        fg_prob,
        elevation=1.0 - p[1],
        decoding=decoding,
        grow=grow,
        min_area=min_area,
        label=label,
    )


def decode_distance(
    distance: Any,
    *,
    foreground: Any | None = None,
    decoding: Decoding | str = Decoding.WATERSHED,
    foreground_threshold: float = 0.5,
    marker_height: float = 0.3,
    marker_threshold: float = 0.5,
    min_area: int = 0,
    grow: int | None = None,
    label: int = 1,
) -> InstancePrediction:
    """Instances from a predicted distance map.

    Foreground = ``foreground > foreground_threshold`` when a foreground probability map is
    given, else ``distance > 0`` after rounding below ``1e-3`` to 0. Markers: watershed uses the
    distance map's regional maxima of dynamic >= ``marker_height`` (h-maxima, robust to
    plateaus); connected components use ``distance > marker_threshold``.

    Args:
        distance: ``(H, W)`` predicted distance, per instance scaled to [0, 1].
        foreground: optional ``(H, W)`` foreground probability.
        decoding: a `Decoding`.
        foreground_threshold: in [0, 1], used with ``foreground``.
        marker_height: h of the h-maxima markers (watershed), > 0.
        marker_threshold: in [0, 1], marker level (connected components).
        min_area: instances with fewer pixels are removed.
        grow: connected-components decoding only: growth radius in pixels (chessboard);
            ``None``: grow over the whole foreground component.
        label: class label of every instance.

    Returns:
        An `InstancePrediction`; scores are the mean foreground probability over each instance
        (1.0 without ``foreground``).
    """
    from scipy import ndimage

    decoding = as_enum(decoding, Decoding, "decoding")
    check_probability(foreground_threshold, "foreground_threshold")
    check_probability(marker_threshold, "marker_threshold")
    check_positive(marker_height, "marker_height")
    d = _to_numpy(distance).astype(np.float64)
    if d.ndim != 2:
        raise ValueError(f"distance has shape {d.shape}; expected (H, W)")
    if foreground is None:
        fg_prob = np.ones_like(d)
        fg = d > 1e-3
    else:
        fg_prob = _to_numpy(foreground).astype(np.float64)
        if fg_prob.shape != d.shape:
            raise ValueError(f"foreground has shape {fg_prob.shape}; expected {d.shape}")
        fg = fg_prob > foreground_threshold
    if decoding is Decoding.WATERSHED:
        from skimage.morphology import h_maxima

        peaks = h_maxima(np.where(fg, d, 0.0), marker_height).astype(bool) & fg
        markers, _ = ndimage.label(peaks, structure=np.ones((3, 3)))
    else:
        markers, _ = ndimage.label((d > marker_threshold) & fg)
    return _finish(
        markers,
        fg,
        fg_prob,
        elevation=-d,
        decoding=decoding,
        grow=grow,
        min_area=min_area,
        label=label,
    )


def _finish(
    markers: np.ndarray,
    fg: np.ndarray,
    fg_prob: np.ndarray,
    *,
    elevation: np.ndarray,
    decoding: Decoding,
    grow: int | None,
    min_area: int,
    label: int,
) -> InstancePrediction:
    from scipy import ndimage

    if grow is not None and (int(grow) != grow or grow < 0):
        raise ValueError(f"grow={grow!r} is not valid; expected None or an integer >= 0")
    if int(min_area) != min_area or min_area < 0:
        raise ValueError(f"min_area={min_area!r} is not valid; expected an integer >= 0")
    if int(label) != label or label < 1:
        raise ValueError(f"label={label!r} is not valid; expected an integer >= 1")
    components, n_components = ndimage.label(fg)
    if decoding is Decoding.WATERSHED:
        from skimage.segmentation import watershed

        inst = watershed(elevation, markers=markers, mask=fg) if markers.any() else markers
    else:
        inst = markers.copy()
        if (grow is None or grow > 0) and markers.any():
            # nearest marker pixel (chessboard distance), within the same foreground component
            dist, (iy, ix) = ndimage.distance_transform_cdt(
                markers == 0, metric="chessboard", return_indices=True
            )
            reach = fg & (markers == 0) & (components[iy, ix] == components)
            if grow is not None:
                reach &= dist <= grow
            inst[reach] = markers[iy[reach], ix[reach]]
    # foreground components holding no marker at all become one instance each
    if n_components:
        has_marker = np.zeros(n_components + 1, dtype=bool)
        has_marker[components[markers > 0]] = True
        orphan = ~has_marker[components] & (components > 0)
        inst = np.where(orphan, components + int(inst.max()), inst)
    inst = inst.astype(np.int64)
    if min_area > 0 and inst.any():
        areas = np.bincount(inst.ravel())
        inst[areas[inst] < min_area] = 0
    ids = np.unique(inst)
    ids = ids[ids != 0]
    if len(ids):
        sums = ndimage.sum_labels(fg_prob, inst, index=ids)
        counts = ndimage.sum_labels(np.ones_like(fg_prob), inst, index=ids)
        scores = np.clip(sums / counts, 0.0, 1.0)
    else:
        scores = np.zeros(0)
    return InstancePrediction.from_label_map(inst, labels=int(label), scores=scores)


def decode_unet_logits(
    logits: Any, *, options: UNetWatershedOptions | None = None
) -> list[InstancePrediction]:
    """Decode ``unet_watershed`` logits.

    Args:
        logits: ``(N, 3, H, W)`` unnormalised scores (background, interior, boundary).
        options: decoding options; default `UNetWatershedOptions()`.
    """
    options = options or UNetWatershedOptions()
    if logits.ndim != 4 or logits.shape[1] != UNET_NUM_CLASSES:
        raise ValueError(
            f"logits has shape {tuple(logits.shape)}; expected (N, 3, H, W) (background, "
            "interior, boundary)"
        )
    probs = logits.detach().float().softmax(dim=1).cpu().numpy()
    return [
        decode_three_class(
            p,
            decoding=options.decoding,
            foreground_threshold=options.foreground_threshold,
            interior_threshold=options.interior_threshold,
            min_area=options.min_area,
            grow=options.boundary_width,
        )
        for p in probs
    ]
