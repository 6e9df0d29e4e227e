"""The geometry of the training preset as ONE affine map per item, shared by the CPU pipeline
(:class:`segwise.data.transforms.RandomAffineCrop`, warped with OpenCV) and the device pipeline
(:mod:`segwise.data.device_augment`, warped with ``grid_sample``).

The preset's four geometric steps, in the order of the former step-by-step pipeline
(``RandomScale -> RandomCrop(pad_if_needed) -> flips -> RandomRotation``), compose into one
matrix, so image and masks are resampled once (one interpolation instead of three: less blur
and about 4x less work, docs/benchmarks.md "Data"). Pixel centres sit at integer coordinates;
with ``(x, y)`` a source pixel:

1. scale ``s``, log-uniform in ``scale``: ``x1 = s (x + 1/2) - 1/2`` (what a resize does);
2. crop window of ``crop = (ch, cw)`` at offset ``o`` in the scaled image: ``x2 = x1 - o``,
   ``o_x`` uniform in ``[min(0, s W - cw), max(0, s W - cw)]``, rounded to whole pixels (the
   window lies inside the scaled image when it is larger, else the image lies inside the
   window, padded around; at ``s = 1`` without rotation the warp is an exact copy);
3. flips: ``x3 = (cw - 1) - x2`` with probability 1/2 (same for ``y`` when ``vflip``);
4. rotation by ``a`` degrees, uniform in ``[-rotation, rotation]``, about the crop's centre
   ``c = ((cw - 1)/2, (ch - 1)/2)``: ``x4 = R(a) (x3 - c) + c`` (counter-clockwise on screen
   for ``a > 0``, as ``torchvision``'s ``RandomRotation``).

:func:`output_to_source` returns the inverse map (output pixel -> source pixel), which is what
both ``cv2.warpAffine(..., WARP_INVERSE_MAP)`` and ``grid_sample`` need. Randomness is drawn
from torch's RNG (the global one, or a given generator), so ``torch.manual_seed`` and the
loader's per-worker seeds govern it as before.

Note: scaling down (``s < 1``) samples bilinearly without an antialiasing filter, as
albumentations' ``Affine``/``RandomScale`` (``cv2`` ``INTER_LINEAR``) do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["AffineParams", "AffineRanges", "output_to_source", "sample_affine", "warp"]


@dataclass(frozen=True)
class AffineRanges:
    """The geometric randomness of the training preset (see the module docstring)."""

    crop_size: tuple[int, int]  # output (H, W)
    scale: tuple[float, float] = (1.0, 1.0)  # (min, max) factors, drawn log-uniformly
    rotation: float = 0.0  # max degrees; angles uniform in [-rotation, rotation]
    hflip: bool = False  # horizontal flip with p = 1/2
    vflip: bool = False  # vertical flip with p = 1/2


@dataclass(frozen=True)
class AffineParams:
    """Per-item draws, each a tensor of shape ``(N,)`` (``offset``: ``(N, 2)`` as ``(y, x)``)."""

    scale: torch.Tensor  # factors
    angle: torch.Tensor  # degrees
    hflip: torch.Tensor  # bool
    vflip: torch.Tensor  # bool
    offset: torch.Tensor  # uniform in [0, 1): position of the crop window in its range


def sample_affine(n: int, ranges: AffineRanges, *, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> AffineParams:
    """Draw ``n`` items' geometric parameters from torch's RNG (``generator`` or the global one).

    One ``torch.rand(n, 6)`` call (columns: scale, angle, h/v flip, y/x offset), so that a
    seed fixes the result and per-item draws cost one RNG call.
    """
    u = torch.rand(n, 6, dtype=torch.float64, generator=generator, device=device)
    lo, hi = math.log(ranges.scale[0]), math.log(ranges.scale[1])
    return AffineParams(
        scale=torch.exp(lo + (hi - lo) * u[:, 0]),
        angle=(u[:, 1] * 2 - 1) * float(ranges.rotation),
        hflip=(u[:, 2] < 0.5) & ranges.hflip,
        vflip=(u[:, 3] < 0.5) & ranges.vflip,
        offset=u[:, 4:6],
    )


def output_to_source(params: AffineParams, sizes: np.ndarray, crop_size: tuple[int, int]
                     ) -> np.ndarray:
    """The inverse maps, output pixel -> source pixel, as ``(N, 2, 3)`` float64 matrices.

    Computed on the host in NumPy (a few dozen scalar operations per item), also for the
    device pipeline, which moves the ``(N, 2, 3)`` result to the device in one copy.

    Args:
        params: the draws of :func:`sample_affine` (on the CPU).
        sizes: ``(N, 2)`` source ``(H, W)`` per item.
        crop_size: output ``(H, W)``.

    Returns:
        ``A`` with ``(x_src, y_src) = A[:, :, :2] @ (x_out, y_out) + A[:, :, 2]``.
    """
    ch, cw = crop_size
    s = params.scale.cpu().numpy()
    sizes = np.asarray(sizes, dtype=np.float64)
    u = params.offset.cpu().numpy()
    room_y, room_x = sizes[:, 0] * s - ch, sizes[:, 1] * s - cw
    # whole pixels: at s = 1 the warp is a plain copy
    off_y = np.round(np.minimum(room_y, 0) + u[:, 0] * np.abs(room_y))
    off_x = np.round(np.minimum(room_x, 0) + u[:, 1] * np.abs(room_x))
    # invert steps 4 -> 1 of the module docstring, output (u, v) -> source (x, y):
    a = np.deg2rad(params.angle.cpu().numpy())
    cos, sin = np.cos(a), np.sin(a)
    cx, cy = (cw - 1) / 2, (ch - 1) / 2
    # 4. un-rotate: x3 = R(a)^T (x4 - c) + c with R(a) = (cos, sin; -sin, cos)
    m = np.stack([np.stack([cos, -sin, cx - cos * cx + sin * cy], -1),
                  np.stack([sin, cos, cy - sin * cx - cos * cy], -1)], 1)  # (N, 2, 3)
    # 3. un-flip: x2 = (cw - 1) - x3 (a flip is its own inverse)
    fx = params.hflip.cpu().numpy()
    fy = params.vflip.cpu().numpy()
    m[fx, 0] *= -1
    m[fx, 0, 2] += cw - 1
    m[fy, 1] *= -1
    m[fy, 1, 2] += ch - 1
    # 2. un-crop: x1 = x2 + o;  1. un-scale: x = (x1 + 1/2) / s - 1/2
    m /= s[:, None, None]
    m[:, 0, 2] += (off_x + 0.5) / s - 0.5
    m[:, 1, 2] += (off_y + 0.5) / s - 0.5
    return m


_MAX_CHANNELS = 128  # the most channels OpenCV's Python binding takes in one array (5.0)


def _cv2() -> Any:
    """OpenCV on one thread: per-item work is parallelised by loader processes instead."""
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    return cv2


def warp(array: np.ndarray, inverse: np.ndarray, crop_size: tuple[int, int], *,
         nearest: bool, fill: float | tuple[float, ...]) -> np.ndarray:
    """Resample ``array`` once with OpenCV's ``warpAffine``.

    Args:
        array: ``(H, W)`` or ``(H, W, C)``, dtype uint8, uint16, int16 or float32.
        inverse: ``(2, 3)`` output -> source map (:func:`output_to_source`).
        crop_size: output ``(H, W)``.
        nearest: nearest-neighbour (labels) instead of bilinear (images).
        fill: value of pixels mapped from outside the source, one per channel or one for all.

    Returns:
        ``(crop_h, crop_w)`` or ``(crop_h, crop_w, C)`` of ``array``'s dtype.
    """
    cv2 = _cv2()
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    size = (int(crop_size[1]), int(crop_size[0]))
    fills = tuple(float(f) for f in fill) if isinstance(fill, tuple | list) else None
    channels = 1 if array.ndim == 2 else array.shape[2]
    uniform = fills is None or len(set(fills)) == 1
    if channels <= (_MAX_CHANNELS if uniform else 4):
        value = (fills[0],) * 4 if fills is not None and uniform else (
            fills[:4] if fills is not None else (float(fill),) * 4)
        out = cv2.warpAffine(array, inverse, size, flags=flags,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=value)
        return out[..., None] if array.ndim == 3 and out.ndim == 2 else out
    # OpenCV repeats a 4-value border beyond 4 channels (warp groups of 4 with their own fill)
    # and refuses arrays of more than 128 channels (e.g. instance masks of crowded images)
    step = _MAX_CHANNELS if uniform else 4
    per = fills if fills is not None else (float(fill),) * channels
    parts = [warp(np.ascontiguousarray(array[..., i:i + step]), inverse, crop_size,
                  nearest=nearest, fill=tuple(per[i:i + step]))
             for i in range(0, channels, step)]
    return np.concatenate(parts, axis=-1)
