"""``DataLoader`` settings that keep a GPU fed, with deterministic seeding.

- :func:`loader_settings` is the one home of the loader defaults (workers, pinned memory,
  persistent workers, prefetch), chosen from the CPU count and the device; each can be
  overridden, and :meth:`LoaderSettings.describe` is the line ``segwise train`` prints at start;
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "LoaderSettings",
    "loader_settings",
    "make_loader",
    "one_torch_thread",
    "pad_collate",
    "seed_worker",
    "usable_cpus",
]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class LoaderSettings:
    """How a ``DataLoader`` makes batches (see :func:`loader_settings` for the defaults)."""

    workers: int  # loader processes; 0 makes items in the main process
    pin_memory: bool  # page-locked batches: faster, asynchronous copies to a CUDA device
    persistent_workers: bool  # keep the worker processes between epochs
    prefetch_factor: int | None  # batches each worker loads ahead (None without workers)
    source: str = "given"  # how the values were chosen, for the start-of-run line

    def describe(self) -> str:
        """One line, e.g. ``workers=15 pin_memory=True persistent_workers=True
        prefetch_factor=4 (defaults for 16 CPUs, cuda)``."""
        return (f"workers={self.workers} pin_memory={self.pin_memory} "
                f"persistent_workers={self.persistent_workers} "
                f"prefetch_factor={self.prefetch_factor} ({self.source})")


def loader_settings(
    device: torch.device | str = "cpu",
    *,
    cpus: int | None = None,
    workers: int | None = None,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
) -> LoaderSettings:
    """The loader defaults for this machine; every argument given overrides its default.

    - workers: on CUDA ``min(16, CPUs - 1)`` (at least 1): the GPU consumes batches faster
      than one CPU augments them (docs/benchmarks.md, "Data"), and one CPU drives the GPU; on
      the CPU ``0`` with <= 2 CPUs (workers would take the cores the model computes on), else
      ``min(8, CPUs // 2)`` (half the cores for the model);
    - pin_memory: on for CUDA;
    - persistent_workers: on with workers (no restart cost per epoch);
    - prefetch_factor: 4 with workers (a deeper queue absorbs slow items), else None.

    Args:
        device: the training device.
        cpus: CPUs to plan for; None counts :func:`usable_cpus`.
        workers, pin_memory, persistent_workers, prefetch_factor: overrides (None: default).

    Raises:
        ValueError: naming a bad override.
    """
    device = torch.device(device)
    cpus = usable_cpus() if cpus is None else int(cpus)
    cuda = device.type == "cuda"
    given = [v is not None for v in (workers, pin_memory, persistent_workers, prefetch_factor)]
    if workers is None:
        workers = max(1, min(16, cpus - 1)) if cuda else (0 if cpus <= 2 else min(8, cpus // 2))
    workers = int(workers)
    if workers < 0:
        raise ValueError(f"workers={workers!r} is not valid; expected an integer >= 0")
    if prefetch_factor is not None and (workers == 0 or int(prefetch_factor) < 1):
        raise ValueError(
            f"prefetch_factor={prefetch_factor!r} is not valid with workers={workers}; "
            "expected an integer >= 1, and workers >= 1"
        )
    if persistent_workers and workers == 0:
        raise ValueError("persistent_workers=True needs workers >= 1")
    source = "defaults" if not any(given) else "given" if all(given) else "defaults + given"
    return LoaderSettings(
        workers=workers,
        pin_memory=cuda if pin_memory is None else bool(pin_memory),
        persistent_workers=workers > 0 if persistent_workers is None else persistent_workers,
        prefetch_factor=(4 if workers else None) if prefetch_factor is None
        else int(prefetch_factor),
        source=f"{source} for {cpus} CPUs, {device.type}",
    )


def seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread (restored after). Per-batch copies in the main
    process were ~20x slower with 2 intra-op threads on a busy 2-CPU machine (stacking 8
    CamVid items: 65 ms vs 3 ms), as per-item ops were (docs/benchmarks.md, Data)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pad_collate(batch: list[dict[str, Any]], *, mask_pad_value: int | None = None
                ) -> dict[str, Any]:
    """Collate Dataset items; images/masks of different sizes are padded bottom/right.

    Runs on one torch thread (:func:`one_torch_thread`); see :func:`_pad_collate`.
    """
    with one_torch_thread():
        return _pad_collate(batch, mask_pad_value=mask_pad_value)


def _pad_collate(batch: list[dict[str, Any]], *, mask_pad_value: int | None = None
                 ) -> dict[str, Any]:
    """Collate Dataset items; images/masks of different sizes are padded bottom/right.

    Args:
        batch: items with ``image (C, H, W)``, ``mask (H, W)`` or ``(K, H, W)``, ``id``.
        mask_pad_value: label for padded pixels of class-index masks (soft masks get 0):
            :attr:`segwise.labels.LabelSpace.pad_value`. Needed only when such masks of
            different sizes meet in one batch.

    Raises:
        ValueError: class-index masks need padding but ``mask_pad_value`` is ``None``.

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
            if fill is None:
                raise ValueError(
                    f"item {item.get('id')!r}: its class-index mask needs padding to "
                    f"{hmax}x{wmax} but no mask_pad_value was given; pass "
                    "mask_pad_value=info.labels.pad_value (a label that is no class)")
            mask = torch.nn.functional.pad(mask, (0, pw, 0, ph), value=fill)
        images.append(img)
        masks.append(mask)
    if all(img.dtype == torch.uint8 and img.permute(1, 2, 0).is_contiguous() for img in images):
        # 8-bit items as read (augmentation on the device) are views of (H, W, C) memory:
        # stacking that memory is a plain copy (stacking (C, H, W) views of it was ~10x
        # slower); the batch is (N, C, H, W) in channels-last layout
        out["image"] = torch.stack([img.permute(1, 2, 0) for img in images]).permute(0, 3, 1, 2)
    else:
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
    settings: LoaderSettings | None = None,
    workers: int | None = None,
    drop_last: bool = False,
    seed: int = 0,
    distributed: bool = False,
) -> DataLoader:
    """A ``DataLoader`` with the settings above.

    Args:
        dataset: e.g. a :class:`segwise.data.SegmentationDataset` (its ``info.labels.pad_value`` is
            used to pad masks).
        batch_size: items per batch (per process when ``distributed``).
        shuffle: reshuffle every epoch (seeded).
        settings: workers, pinning, persistence, prefetch; None: :func:`loader_settings` for
            CUDA when it is available, else for the CPU (with ``workers`` if given).
        workers: shortcut for the worker count when ``settings`` is None.
        drop_last: drop the last incomplete batch.
        seed: seed of the shuffling generator and the workers.
        distributed: shard with a ``DistributedSampler`` (call ``loader.sampler.set_epoch(e)``
            each epoch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not valid; expected an integer >= 1")
    if settings is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        settings = loader_settings(device, workers=workers)
    elif workers is not None and workers != settings.workers:
        raise ValueError(f"workers={workers} contradicts settings.workers={settings.workers}; "
                         "give one of them")
    info = getattr(dataset, "info", None)
    pad_value = info.labels.pad_value if info is not None else None  # the label space's pad label
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        shuffle = False
    extra: dict[str, Any] = {}
    if settings.workers > 0:
        extra = {"persistent_workers": settings.persistent_workers,
                 "prefetch_factor": settings.prefetch_factor, "worker_init_fn": seed_worker}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=settings.workers,
        collate_fn=partial(pad_collate, mask_pad_value=pad_value),
        pin_memory=settings.pin_memory,
        drop_last=drop_last,
        generator=generator,
        **extra,
    )
