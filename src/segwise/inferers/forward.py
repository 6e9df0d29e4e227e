"""One forward pass of a segmentation model over a batch, whole or tiled.

The step shared by training validation (:mod:`segwise.engine.evaluation`), the predictor
(:mod:`segwise.inference.predictor`) and instance methods that decode semantic logits
(U-Net + watershed): autocast, channels-last, and the sliding window for images larger
than the tile.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from segwise.inferers.sliding_window import sliding_window_inference

__all__ = ["forward_logits"]


def forward_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tile_size: int | tuple[int, ...] | None = None,
    overlap: float = 0.25,
) -> torch.Tensor:
    """Logits of ``model`` for ``images``, as float32 on the images' device.

    Args:
        model: a segwise model (eval mode is the caller's choice).
        images: ``(N, C, H, W)`` normalised images on the model's device, or volumes
            ``(N, C, D, H, W)``.
        amp_dtype: autocast dtype (bf16/fp16) or None for full precision.
        channels_last: feed the images in channels-last memory format (2D only).
        tile_size: when set and the image is larger than the tile along any axis, run
            Gaussian-blended sliding-window inference with this tile instead of one forward;
            one side for every axis, or one per spatial axis.
        overlap: fraction of a tile shared with its neighbour (sliding window only).

    Returns:
        ``(N, K, H, W)`` (``(N, K, D, H, W)``) float32 logits.
    """
    if channels_last and images.ndim == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    device_type = images.device.type
    autocast = (
        torch.autocast(device_type=device_type, dtype=amp_dtype) if amp_dtype else nullcontext()
    )
    spatial = tuple(images.shape[2:])
    tiles = (tile_size,) * len(spatial) if isinstance(tile_size, int) else tile_size
    with autocast:
        if tiles is not None and any(s > t for s, t in zip(spatial, tiles, strict=True)):
            logits = sliding_window_inference(
                model, images, tile_size=tile_size, overlap=overlap,
                **({} if images.ndim == 4 else {"channels_last": False}))  # 2D: its default
        else:
            logits = model(images)  # always a tensor: the one model output type
    return logits.float()
