"""``DataLoader`` settings that keep a GPU fed, with deterministic seeding.

- ``workers=None`` picks ``min(8, CPUs - 1)`` (0 on a 1-CPU machine);
- ``pin_memory`` when CUDA is available; ``persistent_workers`` and ``prefetch_factor=4`` with
  workers;
- a seeded ``torch.Generator`` for shuffling and a ``worker_init_fn`` seeding numpy/random per
  worker, so two runs with one seed see the same batches and the same augmentations (with
  ``workers=0`` the augmentations draw from the process's global torch RNG: seed it with
  ``torch.manual_seed``);
- :func:`pad_collate` stacks items of different sizes by padding (image with 0 = the mean after
  normalisation, mask with the dataset's pad value), so evaluation needs no resizing.
"""

from __future__ import annotations

import os
import random
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["default_workers", "make_loader", "pad_collate", "seed_worker"]


def default_workers() -> int:
    """``min(8, usable CPUs - 1)``, at least 0."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus - 1))


def seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def pad_collate(batch: list[dict[str, Any]], *, mask_pad_value: int = 255) -> dict[str, Any]:
    """Collate Dataset items; images/masks of different sizes are padded bottom/right.

    Args:
        batch: items with ``image (C, H, W)``, ``mask (H, W)`` or ``(K, H, W)``, ``id``.
        mask_pad_value: label for padded pixels of class-index masks (soft masks get 0).

    Returns:
        ``{"image": (N, C, Hmax, Wmax), "mask": (N, Hmax, Wmax) or (N, K, Hmax, Wmax),
        "id": list[str]}``; ``"instances"`` (if present) stays a list of per-item dicts.
    """
    hmax = max(item["image"].shape[-2] for item in batch)
    wmax = max(item["image"].shape[-1] for item in batch)
    out: dict[str, Any] = {}
    images = []
    masks = []
    for item in batch:
        img, mask = item["image"], item["mask"]
        ph, pw = hmax - img.shape[-2], wmax - img.shape[-1]
        if ph or pw:
            img = torch.nn.functional.pad(img, (0, pw, 0, ph), value=0.0)
            fill = mask_pad_value if mask.dtype == torch.int64 else 0.0
            mask = torch.nn.functional.pad(mask, (0, pw, 0, ph), value=fill)
        images.append(img)
        masks.append(mask)
    out["image"] = torch.stack(images)
    out["mask"] = torch.stack(masks)
    out["id"] = [item["id"] for item in batch]
    if "instances" in batch[0]:
        out["instances"] = [item["instances"] for item in batch]
    for key in batch[0]:
        if key not in out:
            out[key] = [item[key] for item in batch]
    return out


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    workers: int | None = None,
    drop_last: bool = False,
    seed: int = 0,
    distributed: bool = False,
) -> DataLoader:
    """A ``DataLoader`` with the settings above.

    Args:
        dataset: e.g. a :class:`segwise.data.SegmentationDataset` (its ``info.pad_value`` is
            used to pad masks).
        batch_size: items per batch (per process when ``distributed``).
        shuffle: reshuffle every epoch (seeded).
        workers: loader processes; ``None`` picks :func:`default_workers`.
        drop_last: drop the last incomplete batch.
        seed: seed of the shuffling generator and the workers.
        distributed: shard with a ``DistributedSampler`` (call ``loader.sampler.set_epoch(e)``
            each epoch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not valid; expected an integer >= 1")
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise ValueError(f"workers={workers!r} is not valid; expected >= 0 or None")
    info = getattr(dataset, "info", None)
    pad_value = info.pad_value if info is not None else 255
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        shuffle = False
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": 4,
                 "worker_init_fn": seed_worker}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=workers,
        collate_fn=partial(pad_collate, mask_pad_value=pad_value),
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        generator=generator,
        **extra,
    )
