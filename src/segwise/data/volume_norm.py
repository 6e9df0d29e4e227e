"""Intensity normalisation of volumes (one rule for training, validation and prediction).

The rule and its numbers live in :class:`~segwise.data.DataInfo` (``normalization``, ``mean``,
``std``, ``clip``), stored in every checkpoint, so a prediction normalises exactly as training
did. The rules are nnU-Net's (Isensee et al., Nature Methods 2021, "Intensity normalization"):

- ``Normalization.ZSCORE``: ``(x - mean(x)) / max(std(x), 1e-8)`` per volume and channel
  (MRI and every modality without absolute units);
- ``Normalization.CT``: ``(clip(x, lo, hi) - mean) / std`` with ``(lo, hi)`` the 0.5 / 99.5
  percentiles and ``mean``/``std`` those of the training set's foreground voxels
  (:func:`ct_statistics`);
- ``Normalization.DATASET``: ``(x - mean) / std`` with the stored per-channel values.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from segwise.enums import Normalization

__all__ = ["channels_first", "ct_statistics", "normalize_volume"]

_EPS = 1e-8
_CT_SAMPLES = 10_000  # foreground voxels sampled per volume for the CT statistics (nnU-Net's)


def channels_first(array: np.ndarray) -> np.ndarray:
    """A read volume ``(X, Y, Z)`` or ``(X, Y, Z, C)`` as ``(C, D, H, W)`` (no copy when it
    can be avoided); the file's voxel order ``(i, j, k)`` is the models' ``(D, H, W)``."""
    array = np.asarray(array)
    if array.ndim == 3:
        return array[None]
    if array.ndim == 4:
        return np.moveaxis(array, 3, 0)
    if array.ndim == 5 and array.shape[3] == 1:  # NIfTI's (X, Y, Z, T=1, C)
        return np.moveaxis(array[:, :, :, 0], 3, 0)
    raise ValueError(f"a volume has shape {array.shape}; expected (X, Y, Z) or (X, Y, Z, C)")


def normalize_volume(
    image: np.ndarray,
    normalization: Normalization | str,
    *,
    mean: tuple[float, ...] = (),
    std: tuple[float, ...] = (),
    clip: tuple[float, float] | None = None,
) -> np.ndarray:
    """Normalise a ``(C, D, H, W)`` volume; returns float32 of the same shape.

    Args:
        image: the voxels, any numeric dtype (uint8 images are not rescaled to [0, 1]: the
            rules are scale-free for ZSCORE, absolute for CT).
        normalization: the rule (module docstring).
        mean, std: one value per channel (CT, DATASET).
        clip: the CT window ``(low, high)``.

    Raises:
        ValueError: CT without a clip window, or mean/std without one value per channel.
    """
    x = np.asarray(image, dtype=np.float32)
    rule = Normalization(normalization)
    if rule is Normalization.ZSCORE:
        axes = tuple(range(1, x.ndim))
        m = x.mean(axis=axes, keepdims=True, dtype=np.float64)
        s = x.std(axis=axes, keepdims=True, dtype=np.float64)
        return ((x - m) / np.maximum(s, _EPS)).astype(np.float32)
    if len(mean) != x.shape[0] or len(std) != x.shape[0]:
        raise ValueError(f"normalize_volume: {len(mean)} mean / {len(std)} std values for a "
                         f"volume of {x.shape[0]} channel(s); give one per channel")
    shape = (-1,) + (1,) * (x.ndim - 1)
    if rule is Normalization.CT:
        if clip is None:
            raise ValueError("normalize_volume: Normalization.CT needs clip=(low, high)")
        x = np.clip(x, clip[0], clip[1])
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.maximum(np.asarray(std, dtype=np.float32).reshape(shape), _EPS)
    return ((x - m) / s).astype(np.float32)


def ct_statistics(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, seed: int = 0
) -> tuple[tuple[float, float], float, float]:
    """The CT window and foreground statistics of a training set (nnU-Net's CTNormalization).

    Args:
        pairs: ``(image (C, D, H, W) with C == 1, labels (D, H, W))`` per training volume.
        seed: seed of the voxel sample (up to 10,000 foreground voxels per volume).

    Returns:
        ``((p0.5, p99.5), mean, std)`` of the sampled foreground intensities (std of the clipped
        values), in the image's units (HU).

    Raises:
        ValueError: no foreground voxel in any volume.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for image, labels in pairs:
        values = np.asarray(image)[0][np.asarray(labels) > 0]
        if values.size > _CT_SAMPLES:
            values = rng.choice(values, _CT_SAMPLES, replace=False)
        samples.append(values.astype(np.float64))
    every = np.concatenate(samples) if samples else np.zeros(0)
    if every.size == 0:
        raise ValueError("CT normalisation needs foreground voxels in the training labels; "
                         "none was found (use --normalization zscore)")
    low, high = (float(v) for v in np.percentile(every, [0.5, 99.5]))
    clipped = np.clip(every, low, high)
    return (low, high), float(clipped.mean()), float(max(clipped.std(), _EPS))
