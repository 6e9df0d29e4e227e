"""Resolve what a run uses from its config and the data: device, precision, derived defaults."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch

from segwise.engine.config import AmpMode, DataConfig

__all__ = [
    "check_batch_statistics",
    "derive_data_defaults",
    "resolve_amp",
    "seed_everything",
]

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

    - crop: the median image's shorter side, rounded down to a multiple of 32, in [64, 512]
      (images smaller than the crop are padded with the ignore label);
    - batch: a pixel budget per step (2^19 pixels on CPU, 2^22 on CUDA) divided by the crop
      area, clipped to [2, 32];
    - workers, pin_memory, persistent_workers, prefetch_factor: from the CPU count and the
      device, by :func:`segwise.data.loaders.loader_settings` (their one home).
    """
    crop = cfg.crop_size
    if crop is None:
        short = min(info.median_size) if info.median_size else 256
        crop = int(min(512, max(64, (short // 32) * 32)))
    batch = cfg.batch_size
    if batch is None:
        budget = 2**22 if device.type == "cuda" else 2**19
        batch = int(min(32, max(2, budget // (crop * crop))))
    from segwise.data.loaders import loader_settings

    loader = loader_settings(device, workers=cfg.workers, pin_memory=cfg.pin_memory,
                             persistent_workers=cfg.persistent_workers,
                             prefetch_factor=cfg.prefetch_factor)
    return dataclasses.replace(
        cfg, crop_size=crop, batch_size=batch, workers=loader.workers,
        pin_memory=loader.pin_memory, persistent_workers=loader.persistent_workers,
        prefetch_factor=loader.prefetch_factor,
    )


def check_batch_statistics(
    model: torch.nn.Module, *, batch_size: int, crop_size: int, in_channels: int
) -> None:
    """Refuse a configuration where a batch-norm layer would see one value per channel.

    In training mode batch norm needs more than one value per channel (batch x height x width);
    with batch 1, a map that is 1x1 at the encoder's deepest stage (a 32 px crop on a stride-32
    encoder) or a global-pooling branch (DeepLab's ASPP) has exactly one, and PyTorch stops at
    the first step. Only checked for ``batch_size == 1`` on a segmentation model with batch
    norm: one eval-mode forward of a ``(1, C, crop, crop)`` zero image on the CPU records the
    size each batch-norm layer sees.

    Raises:
        ValueError: naming the layer, the batch and crop size, and the fix.
    """
    from segwise.models import SegmentationModel

    bns = [(name, m) for name, m in model.named_modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if batch_size != 1 or not bns or not isinstance(model, SegmentationModel):
        return
    single = _single_value_layers(model, bns, crop_size, in_channels)
    if not single:
        return
    divisor = int(getattr(model.encoder, "divisor", 32))
    fix = "use --batch-size 2 or more"
    if crop_size <= divisor and not _single_value_layers(model, bns, 2 * divisor, in_channels):
        fix += f", or --crop-size {2 * divisor} or more"
    raise ValueError(
        f"batch size 1 with {crop_size} px crops gives batch-norm layer {single[0]!r} a single "
        f"value per channel ({len(single)} such layer(s)), which cannot be trained; {fix}"
    )


def _single_value_layers(model: torch.nn.Module, bns: list, size: int, channels: int) -> list:
    """Names of the batch-norm layers that see one value per channel on a 1-image batch."""
    seen: dict[str, int] = {}

    def record(name: str):
        def hook(_module, args) -> None:  # returns None: the input is left unchanged
            seen.setdefault(name, args[0][0, 0].numel())  # H x W of the first image
        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in bns]
    was_training = model.training
    try:
        model.eval()
        probe = torch.zeros(1, channels, size, size, device=next(model.parameters()).device)
        with torch.no_grad():
            model(probe)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [name for name, values in seen.items() if values == 1]
