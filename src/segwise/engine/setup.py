"""Resolve what a run uses from its config and the data: device, precision, derived defaults."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch

from segwise.engine.config import AmpMode, DataConfig

__all__ = ["derive_data_defaults", "resolve_amp", "seed_everything"]


def resolve_amp(mode: AmpMode, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Autocast dtype (or None) and whether a GradScaler is needed.

    AUTO: bf16 on CUDA devices that support it, fp16 + GradScaler on older CUDA devices, full
    precision on CPU (CPU bf16 autocast is slower than fp32 on most CPUs).
    """
    if mode is AmpMode.OFF:
        return None, False
    if mode is AmpMode.BF16:
        return torch.bfloat16, False
    if mode is AmpMode.FP16:
        if device.type != "cuda":
            raise ValueError("train.amp='fp16' needs a CUDA device; use 'bf16' or 'off' on CPU")
        return torch.float16, True
    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def derive_data_defaults(cfg: DataConfig, info: Any, device: torch.device) -> DataConfig:
    """Fill crop size, batch size and the loader settings that the user left unset.

    Volumes (``info.spatial_dims == 3``): ``patch_size`` and batch instead of crop and batch
    (:func:`_volume_defaults`).

    - crop: the median image's shorter side, rounded down to a multiple of 32, in [64, 512]
      (images smaller than the crop are padded with the ignore label);
    - batch: a pixel budget per step (2^19 pixels on CPU, 2^22 on CUDA) divided by the crop
      area, clipped to [2, 32];
    - workers, pin_memory, persistent_workers, prefetch_factor: from the CPU count and the
      device, by :func:`segwise.data.loaders.loader_settings` (their one home).
    """
    if getattr(info, "spatial_dims", 2) == 3:
        return _volume_defaults(cfg, info, device)
    crop = cfg.crop_size
    if crop is None:
        short = min(info.median_size) if info.median_size else 256
        crop = int(min(512, max(64, (short // 32) * 32)))
    batch = cfg.batch_size
    if batch is None:
        budget = 2**22 if device.type == "cuda" else 2**19
        batch = int(min(32, max(2, budget // (crop * crop))))
    return _with_loader(cfg, device, crop_size=crop, batch_size=batch)


#: a 3D patch side is a multiple of this (three poolings), at most _PATCH_MAX voxels
_PATCH_MULTIPLE, _PATCH_MAX = 8, 128


def _volume_defaults(cfg: DataConfig, info: Any, device: torch.device) -> DataConfig:
    """Volumes: the patch is the median volume shape rounded up to a multiple of 8 per axis,
    at most 128 (MSD Hippocampus: 35x50x35 -> 40x56x40, nnU-Net's own patch); the batch a
    voxel budget (2^19 voxels on CPU, 2^22 on CUDA) over the patch, clipped to [2, 16]."""
    patch = cfg.patch_size
    if patch is None:
        patch = tuple(int(min(_PATCH_MAX, max(_PATCH_MULTIPLE, -(-int(n) // _PATCH_MULTIPLE)
                                              * _PATCH_MULTIPLE))) for n in info.median_size)
    batch = cfg.batch_size
    if batch is None:
        budget = 2**22 if device.type == "cuda" else 2**19
        batch = int(min(16, max(2, budget // int(np.prod(patch)))))
    return _with_loader(dataclasses.replace(cfg, patch_size=tuple(patch)), device,
                        crop_size=cfg.crop_size, batch_size=batch)


def _with_loader(cfg: DataConfig, device: torch.device, *, crop_size: int | None,
                 batch_size: int) -> DataConfig:
    from segwise.data.loaders import loader_settings

    loader = loader_settings(device, workers=cfg.workers, pin_memory=cfg.pin_memory,
                             persistent_workers=cfg.persistent_workers,
                             prefetch_factor=cfg.prefetch_factor)
    return dataclasses.replace(
        cfg, crop_size=crop_size, batch_size=batch_size, workers=loader.workers,
        pin_memory=loader.pin_memory, persistent_workers=loader.persistent_workers,
        prefetch_factor=loader.prefetch_factor,
    )
