"""Datasets of volumes: random training patches with forced foreground, whole volumes to score.

- :class:`VolumePatchDataset`: one random patch per volume per epoch (item ``i`` is a patch
  of volume ``i``); with probability ``foreground_fraction`` the patch is centred on a
  labelled voxel of a class drawn uniformly among the foreground classes the volume holds
  (nnU-Net's oversampling: a third of the patches, Isensee et al. 2021), else anywhere.
  Then :class:`~segwise.data.volume_augment.VolumeAugment`.
- :class:`VolumeDataset`: whole volumes, normalised, for validation (on the training grid)
  and ``segwise evaluate`` (on each file's own grid).

Both normalise with the data's rule (:func:`~segwise.data.volume_norm.normalize_volume`),
resample a volume whose voxel size differs from the run's (``DataInfo.spacing``) by more than
1 % to that spacing (:mod:`segwise.data.resample`: trilinear image, labels linear on one-hot;
``VolumeDataset(resample=False)`` keeps the file's grid), so patches and validation are in the
training spacing, and keep the volumes in memory when they fit in ``cache_bytes`` (MSD
Hippocampus: 190 volumes, ~50 MiB), else read them per item. Items follow the dataset
contract: ``image (C, D, H, W)`` float32, ``mask (D, H, W)`` int64, ``id``; whole volumes add
``spacing`` (mm per axis of the grid the item is on).
Parts of a patch outside the volume are padded: image 0 (the mean after normalisation),
labels ``info.labels.pad_value`` (left out of loss and metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from segwise.data.info import DataInfo, Sample
from segwise.data.resample import needs_resampling, resample_image, resample_labels, target_shape
from segwise.data.volume_norm import channels_first, normalize_volume
from segwise.data.volumes import read_labels, read_volume

__all__ = ["VolumeDataset", "VolumePatchDataset", "crop_padded", "load_pair"]

_CACHE_BYTES = 2 * 2**30  # keep the decoded set in memory up to this size
_FOREGROUND_SAMPLES = 10_000  # voxel positions kept per class and volume (nnU-Net's)


def load_pair(sample: Sample, info: DataInfo, *,
              resample: bool = True) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """One pair read, normalised and (by default) on the training grid.

    Args:
        sample: the image and (optional) label files.
        info: the run's data description (normalisation; ``spacing``, the training grid).
        resample: bring a volume whose spacing differs from ``info.spacing`` by more than 1 %
            (:func:`~segwise.data.resample.needs_resampling`) to that spacing; False keeps the
            file's grid.

    Returns:
        ``(image (C, D, H, W) float32 normalised, labels (D, H, W) int64 or None, volume)``:
        the arrays on ``info.spacing``'s grid when resampled, else on the file's; ``volume``
        is the :class:`~segwise.data.volumes.Volume` read (its own spacing and affine).
    """
    volume = read_volume(sample.image_path)
    image = normalize_volume(channels_first(volume.array), info.normalization, mean=info.mean,
                             std=info.std, clip=info.clip)
    labels = None
    if sample.mask_path is not None:
        labels = np.asarray(read_labels(sample.mask_path).array, dtype=np.int64)
    if resample and needs_resampling(volume.spacing, info.spacing):
        shape = target_shape(image.shape[1:], volume.spacing, info.spacing)
        image = resample_image(image, shape)
        labels = None if labels is None else resample_labels(labels, shape)
    return image, labels, volume


def crop_padded(array: np.ndarray, start: tuple[int, ...], size: tuple[int, ...],
                fill: float) -> np.ndarray:
    """The box ``[start, start + size)`` of the last ``len(size)`` axes of ``array``; the part
    outside the array is ``fill``. ``start`` may be negative or run past the end."""
    lead = array.shape[: array.ndim - len(size)]
    out = np.full(lead + tuple(size), fill, dtype=array.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, array.shape[-len(size):], strict=True):
        lo, hi = max(s, 0), min(s + n, dim)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    ell = (slice(None),) * len(lead)
    out[ell + tuple(dst)] = array[ell + tuple(src)]
    return out


class _Volumes:
    """The volumes of a split, decoded (and resampled, with ``resample``) once when they fit in
    memory. Each is ``(image, labels, spacing)``, ``spacing`` the one of the arrays' grid."""

    def __init__(self, samples: list[Sample], info: DataInfo, cache_bytes: int, *,
                 resample: bool = True) -> None:
        self.samples = list(samples)
        self.info = info
        self.resample = resample
        voxels = sum(int(np.prod(info.median_size)) for _ in samples) * info.in_channels
        self.cached = voxels * 12 <= cache_bytes  # float32 image + int64 labels
        self._items = [self._read(i) for i in range(len(samples))] if self.cached else None

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray | None, tuple[float, ...]]:
        image, labels, volume = load_pair(self.samples[i], self.info, resample=self.resample)
        resampled = self.resample and needs_resampling(volume.spacing, self.info.spacing)
        return image, labels, tuple(self.info.spacing if resampled else volume.spacing)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray | None, tuple[float, ...]]:
        return self._items[i] if self._items is not None else self._read(i)


class VolumeDataset(Dataset):
    """Whole volumes, normalised (validation, ``segwise evaluate``).

    Args:
        samples: the pairs.
        info: the run's data description.
        resample: True (training validation): a volume whose spacing differs from
            ``info.spacing`` by more than 1 % is resampled to it, and is scored there, as
            training sees it. False (``segwise evaluate``): every volume on its file's own
            grid, scored with its own spacing (the predictor resamples and comes back).
        cache_bytes: keep decoded volumes in memory up to this many bytes.

    Items: ``{"image": (C, D, H, W) float32, "mask": (D, H, W) int64, "id": str,
    "spacing": (sd, sh, sw) mm}``, ``spacing`` the voxel size of the item's grid
    (``info.spacing`` for a resampled volume, else the file's).
    """

    def __init__(self, samples: list[Sample], info: DataInfo, *, resample: bool = True,
                 cache_bytes: int = _CACHE_BYTES) -> None:
        self.info = info
        self.samples = list(samples)
        self._volumes = _Volumes(samples, info, cache_bytes, resample=resample)

    def __len__(self) -> int:
        return len(self._volumes)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, labels, spacing = self._volumes[i]
        item: dict[str, Any] = {"image": torch.from_numpy(image), "id": self.samples[i].id,
                                "spacing": spacing}
        if labels is not None:
            item["mask"] = torch.from_numpy(labels)
        return item


class VolumePatchDataset(Dataset):
    """One random training patch per volume (module docstring), cut from the volume on the
    training grid (resampled to ``info.spacing`` when its spacing differs; the foreground
    positions are those of the resampled labels).

    Args:
        samples: the training pairs.
        info: the data's description (normalisation, pad label, spacing).
        patch_size: ``(D, H, W)`` voxels.
        foreground_fraction: probability that a patch is centred on a labelled voxel.
        augment: a :class:`~segwise.data.volume_augment.VolumeAugment` for ``patch_size``,
            or None: the box its ``draw()`` names is cut and it returns the patch.
        cache_bytes: keep decoded volumes in memory up to this many bytes.

    Randomness comes from NumPy's global generator (seeded per run and per loader worker).
    """

    def __init__(self, samples: list[Sample], info: DataInfo, *, patch_size: tuple[int, ...],
                 foreground_fraction: float = 1 / 3, augment: Any = None,
                 cache_bytes: int = _CACHE_BYTES) -> None:
        if len(patch_size) != 3:
            raise ValueError(f"patch_size={patch_size!r} is not valid; expected (D, H, W)")
        self.info = info
        self.samples = list(samples)
        self.patch_size = tuple(int(v) for v in patch_size)
        self.foreground_fraction = float(foreground_fraction)
        self.augment = augment
        self._volumes = _Volumes(samples, info, cache_bytes)
        self._foreground = [self._positions(i) for i in range(len(samples))] \
            if self._volumes.cached else None

    def _positions(self, i: int) -> dict[int, np.ndarray]:
        """Up to 10,000 voxel positions per foreground class of volume ``i``."""
        labels = self._volumes[i][1]
        rng = np.random.default_rng(i)
        out = {}
        for c in np.unique(labels):
            if c <= 0 or c == self.info.labels.pad_value:
                continue
            where = np.argwhere(labels == c).astype(np.int32)
            if len(where) > _FOREGROUND_SAMPLES:
                where = where[rng.choice(len(where), _FOREGROUND_SAMPLES, replace=False)]
            out[int(c)] = where
        return out

    def __len__(self) -> int:
        return len(self._volumes)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, labels, _ = self._volumes[i]
        assert labels is not None
        draw = self.augment.draw() if self.augment is not None else None
        size = draw.source_size if draw is not None else self.patch_size
        shape = labels.shape
        positions = (self._foreground[i] if self._foreground is not None
                     else self._positions(i))
        if positions and np.random.random() < self.foreground_fraction:
            cls = list(positions)[np.random.randint(len(positions))]
            centre = positions[cls][np.random.randint(len(positions[cls]))]
            start = [int(c) - s // 2 for c, s in zip(centre, size, strict=True)]
            start = [min(max(st, min(0, n - s)), max(0, n - s))
                     for st, n, s in zip(start, shape, size, strict=True)]
        else:
            start = [np.random.randint(min(0, n - s), max(0, n - s) + 1)
                     for n, s in zip(shape, size, strict=True)]
        patch = crop_padded(image, tuple(start), size, 0.0)
        target = crop_padded(labels, tuple(start), size, self.info.labels.pad_value)
        if self.augment is not None:
            patch, target = self.augment(patch, target, draw)
        return {"image": torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32)),
                "mask": torch.from_numpy(np.ascontiguousarray(target, dtype=np.int64)),
                "id": self.samples[i].id}
