"""Post-processing of label maps: remove small objects, fill holes, keep the largest component.

All functions take a label map ``(H, W)`` or a batch ``(N, H, W)`` of integer class indices, as a
NumPy array or a torch tensor, and return a new map of the same type, shape and dtype (the input
is never modified). With ``spatial_dims=3`` they take a label volume ``(D, H, W)`` or a batch
``(N, D, H, W)`` and work in 3D (components and holes through the volume, not slice by slice).
Connected components come from ``scipy.ndimage.label``; holes from
``scipy.ndimage.binary_fill_holes`` (both N-D). Pixels that a function removes become
``background``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from scipy import ndimage

from segwise._validation import as_enum
from segwise.inferers.options import Connectivity

__all__ = ["fill_holes", "keep_largest_component", "remove_small_objects"]


def _structure(connectivity: Connectivity | str, spatial_dims: int) -> np.ndarray:
    """Face neighbours (``FOUR``; 6 in 3D) or every neighbour (``EIGHT``; 26 in 3D)."""
    connectivity = as_enum(connectivity, Connectivity, "connectivity")
    _check_dims(spatial_dims)
    rank = 1 if connectivity == Connectivity.FOUR else spatial_dims
    return ndimage.generate_binary_structure(spatial_dims, rank)


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims={spatial_dims!r} is not valid; expected 2 (label maps) "
                         "or 3 (label volumes)")


def _apply(labels, fn: Callable[[np.ndarray], np.ndarray], spatial_dims: int = 2):
    """Run ``fn`` on each ``(H, W)`` (``(D, H, W)``) NumPy map of ``labels``; return the input's
    type."""
    _check_dims(spatial_dims)
    is_torch = type(labels).__module__.startswith("torch")
    array = labels.detach().cpu().numpy() if is_torch else np.asarray(labels)
    if array.ndim not in (spatial_dims, spatial_dims + 1) or not np.issubdtype(
            array.dtype, np.integer):
        shapes = "(H, W) or (N, H, W) label map" if spatial_dims == 2 else (
            "(D, H, W) or (N, D, H, W) label volume")
        raise ValueError(
            f"labels must be an integer {shapes}, got shape {array.shape} "
            f"and dtype {array.dtype}; take the argmax of probabilities first"
        )
    out = np.stack([fn(a) for a in array]) if array.ndim > spatial_dims else fn(array)
    if is_torch:
        import torch

        return torch.from_numpy(out).to(labels.device)
    return out


def _classes(array: np.ndarray, classes: Iterable[int] | None, background: int) -> list[int]:
    present = [int(c) for c in np.unique(array) if c != background]
    return present if classes is None else [c for c in classes if c in present]


def remove_small_objects(
    labels,
    *,
    min_size: int,
    background: int = 0,
    classes: Iterable[int] | None = None,
    connectivity: Connectivity | str = Connectivity.EIGHT,
    spatial_dims: int = 2,
):
    """Set connected components smaller than ``min_size`` pixels to ``background``.

    Args:
        labels: ``(H, W)`` or ``(N, H, W)`` integer class indices (NumPy or torch); with
            ``spatial_dims=3``, ``(D, H, W)`` or ``(N, D, H, W)``.
        min_size: components with fewer pixels than this are removed; must be >= 1.
        background: the label that is left alone and written into removed pixels.
        classes: the classes to clean (default: every class but ``background``).
        connectivity: :class:`Connectivity` of a component.
        spatial_dims: 2 for label maps, 3 for label volumes.

    Returns:
        A new label map of the same type, shape and dtype.
    """
    if not isinstance(min_size, int) or min_size < 1:
        raise ValueError(f"min_size={min_size!r} is not valid; expected an int >= 1")
    structure = _structure(connectivity, spatial_dims)

    def one(a: np.ndarray) -> np.ndarray:
        out = a.copy()
        for c in _classes(a, classes, background):
            comp, _ = ndimage.label(a == c, structure=structure)
            sizes = np.bincount(comp.ravel())
            small = sizes < min_size
            small[0] = False  # component 0 is "not this class"
            out[small[comp]] = background
        return out

    return _apply(labels, one, spatial_dims)


def fill_holes(
    labels,
    *,
    background: int = 0,
    classes: Iterable[int] | None = None,
    max_hole_size: int | None = None,
    spatial_dims: int = 2,
):
    """Fill background holes enclosed by a class with that class.

    A hole of class ``c`` is a connected region of pixels that are not ``c`` and cannot reach the
    image border without crossing ``c`` (``scipy.ndimage.binary_fill_holes``, edge connectivity).
    Only its ``background`` pixels are filled: pixels of other classes inside a hole are kept.

    Args:
        labels: ``(H, W)`` or ``(N, H, W)`` integer class indices (NumPy or torch); with
            ``spatial_dims=3``, ``(D, H, W)`` or ``(N, D, H, W)``.
        background: the label of pixels that may be filled.
        classes: the classes whose holes are filled (default: all but ``background``), in order.
        max_hole_size: fill only holes of at most this many pixels (default: any size).
        spatial_dims: 2 for label maps, 3 for label volumes.

    Returns:
        A new label map of the same type, shape and dtype.
    """
    if max_hole_size is not None and (not isinstance(max_hole_size, int) or max_hole_size < 1):
        raise ValueError(f"max_hole_size={max_hole_size!r} is not valid; expected an int >= 1")

    def one(a: np.ndarray) -> np.ndarray:
        out = a.copy()
        for c in _classes(a, classes, background):
            mask = out == c
            holes = ndimage.binary_fill_holes(mask) & ~mask
            if max_hole_size is not None:
                comp, _ = ndimage.label(holes)
                sizes = np.bincount(comp.ravel())
                big = sizes > max_hole_size
                big[0] = True
                holes &= ~big[comp]
            out[holes & (out == background)] = c
        return out

    return _apply(labels, one, spatial_dims)


def keep_largest_component(
    labels,
    *,
    background: int = 0,
    classes: Iterable[int] | None = None,
    connectivity: Connectivity | str = Connectivity.EIGHT,
    spatial_dims: int = 2,
):
    """Keep only the largest connected component of each class; the rest become ``background``.

    Ties between equally large components keep the one found first in row-major order.

    Args:
        labels: ``(H, W)`` or ``(N, H, W)`` integer class indices (NumPy or torch); with
            ``spatial_dims=3``, ``(D, H, W)`` or ``(N, D, H, W)``.
        background: the label that is left alone and written into removed pixels.
        classes: the classes to reduce (default: every class but ``background``).
        connectivity: :class:`Connectivity` of a component.
        spatial_dims: 2 for label maps, 3 for label volumes.

    Returns:
        A new label map of the same type, shape and dtype.
    """
    structure = _structure(connectivity, spatial_dims)

    def one(a: np.ndarray) -> np.ndarray:
        out = a.copy()
        for c in _classes(a, classes, background):
            comp, count = ndimage.label(a == c, structure=structure)
            if count > 1:
                sizes = np.bincount(comp.ravel())
                sizes[0] = 0
                out[(comp > 0) & (comp != int(sizes.argmax()))] = background
        return out

    return _apply(labels, one, spatial_dims)
