"""Mask R-CNN's decoding: torchvision's detections (eval mode) as `InstancePrediction`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segwise.instance.representation import InstancePrediction

__all__ = ["predict_maskrcnn"]


@torch.inference_mode()
def predict_maskrcnn(
    model: nn.Module,
    images: torch.Tensor | Sequence[torch.Tensor],
    *,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
) -> list[InstancePrediction]:
    """Run Mask R-CNN in eval mode and convert each output to an `InstancePrediction`.

    The model is put in eval mode and left there.

    Args:
        model: a model from `build_maskrcnn`.
        images: ``(N, C, H, W)`` float tensor or a list of ``(C, H, W)`` tensors (any sizes),
            on the model's device.
        score_threshold: detections below this score are dropped.
        mask_threshold: mask probability above which a pixel belongs to a detection; overlaps go
            to the higher-score detection (see `InstancePrediction.from_masks`).

    Returns:
        One `InstancePrediction` per image, at the image's resolution.
    """
    model.eval()
    batch = list(images) if isinstance(images, Sequence) else list(images.unbind(0))
    outputs = model(batch)
    return [
        InstancePrediction.from_maskrcnn_output(
            out, score_threshold=score_threshold, mask_threshold=mask_threshold
        )
        if len(out["scores"])
        else InstancePrediction.empty(tuple(img.shape[-2:]))
        for img, out in zip(batch, outputs, strict=True)
    ]
