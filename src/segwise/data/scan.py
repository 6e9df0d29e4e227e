"""Reading what is needed to check and describe files, with a small cache.

A :class:`MaskScan` holds a mask's size and its label values with pixel counts (or colours,
or the float range, and the count of non-finite values); a :class:`ImageScan` holds an image's
size, channels, dtype and colour space (float images are decoded, to count their NaN / inf
pixels and find their range). Scans are cached by (path, size, mtime), so discovery followed by
inspection reads each file once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segwise.data.formats import grey_of_rgb, read_header, read_image, read_mask_raw, rgb_codes

__all__ = ["ImageScan", "MaskScan", "scan_image", "scan_mask"]

_CACHE: dict[tuple[str, str, int, int], object] = {}
_CACHE_LIMIT = 50_000


@dataclass(frozen=True)
class ImageScan:
    """An image's header: ``size (H, W)`` as displayed, ``channels`` after dropping alpha,
    ``alpha``, the EXIF ``orientation`` (1 = as stored; 5..8 swap H and W), the colour
    ``space`` (a :class:`~segwise.data.colorspace.ColorSpace` value); for float images also
    ``nonfinite`` (pixels with a NaN or +-inf channel) and ``value_range`` (finite min, max)."""

    size: tuple[int, int]
    channels: int
    dtype: str
    alpha: bool
    orientation: int = 1
    space: str = "rgb"
    nonfinite: int = 0
    value_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class MaskScan:
    """A mask's content summary.

    Attributes:
        size: ``(H, W)``.
        channels: 1 for label masks, 3 for colour masks, K for soft masks.
        dtype: the stored dtype name.
        values: unique label values (single channel integer masks) or colour codes
            ``r << 16 | g << 8 | b`` (RGB masks); empty for float masks.
        counts: pixel count per entry of ``values``.
        palette: the PNG palette for indexed PNGs.
        float_range: ``(min, max)`` for float masks.
        gray_rgb: an RGB mask whose three channels are equal (a grey mask saved as RGB).
        transparent: pixels made background because their alpha was < 128.
        nonfinite: NaN / +-inf values of a float mask.
    """

    size: tuple[int, int]
    channels: int
    dtype: str
    values: np.ndarray
    counts: np.ndarray
    palette: tuple[tuple[int, int, int], ...] | None = None
    float_range: tuple[float, float] | None = None
    gray_rgb: bool = False
    transparent: int = 0
    nonfinite: int = 0


def _key(kind: str, path: Path) -> tuple[str, str, int, int]:
    st = path.stat()
    return (kind, str(path), st.st_size, st.st_mtime_ns)


def _cached(kind: str, path: Path, fn):
    try:
        key = _key(kind, path)
    except OSError:
        return fn()
    hit = _CACHE.get(key)
    if hit is None:
        hit = fn()
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = hit
    return hit


def scan_image(path: str | Path) -> ImageScan:
    """Header scan of an image; float images are decoded (non-finite pixels, range).

    Raises:
        ValueError: naming the file (``ColorSpaceError`` for a refused colour space).
    """
    path = Path(path)

    def run() -> ImageScan:
        head = read_header(path)
        c = head.channels - 1 if head.alpha else head.channels
        nonfinite, value_range = 0, None
        if head.dtype.startswith("float"):
            arr = read_image(path)
            finite = np.isfinite(arr)
            nonfinite = int((~finite.all(axis=-1)).sum())
            if finite.any():
                value_range = (float(arr[finite].min()), float(arr[finite].max()))
        return ImageScan((head.height, head.width), c, head.dtype, head.alpha,
                         head.orientation, head.space.value, nonfinite, value_range)

    return _cached("image", path, run)


def scan_mask(path: str | Path) -> MaskScan:
    """Decode a mask and summarise it (values and counts). Raises ``ValueError`` naming the file."""
    path = Path(path)
    return _cached("mask", path, lambda: _scan_mask(path))


def _scan_mask(path: Path) -> MaskScan:
    raw = read_mask_raw(path)
    arr = raw.array
    palette = tuple(raw.palette) if raw.palette else None
    empty = np.zeros(0, np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.ndim == 3 and arr.shape[0] > arr.shape[-1]:
            arr = np.moveaxis(arr, -1, 0)  # (H, W, K) -> (K, H, W)
        if arr.ndim == 2:
            arr = arr[None]
        finite = np.isfinite(arr)
        lo = float(arr[finite].min()) if finite.any() else float("nan")
        hi = float(arr[finite].max()) if finite.any() else float("nan")
        return MaskScan((arr.shape[1], arr.shape[2]), arr.shape[0], arr.dtype.name, empty, empty,
                        float_range=(lo, hi), nonfinite=int((~finite).sum()))
    if arr.ndim == 3:
        grey = grey_of_rgb(arr)
        if grey is not None:
            values, counts = _bincount(grey)
            return MaskScan(arr.shape[:2], 1, arr.dtype.name, values, counts, gray_rgb=True,
                            transparent=raw.transparent)
        values, counts = np.unique(rgb_codes(arr), return_counts=True)
        return MaskScan(arr.shape[:2], 3, arr.dtype.name, values, counts,
                        transparent=raw.transparent)
    if arr.ndim != 2:
        raise ValueError(f"cannot read mask {path}: shape {arr.shape} is not (H, W) labels, "
                         "(H, W, 3) colours or float (K, H, W); re-export it")
    values, counts = _bincount(arr)
    return MaskScan(arr.shape, 1, arr.dtype.name, values, counts, palette=palette,
                    transparent=raw.transparent)


def _bincount(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if arr.dtype in (np.uint8, np.uint16):
        counts = np.bincount(arr.ravel())
        values = np.nonzero(counts)[0]
        return values.astype(np.int64), counts[values].astype(np.int64)
    values, counts = np.unique(arr.astype(np.int64), return_counts=True)
    return values, counts.astype(np.int64)
