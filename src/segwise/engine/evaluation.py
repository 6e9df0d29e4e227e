"""Evaluation of a semantic model over a dataset: one code path for training, CLI and tests."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from segwise.enums import Task

__all__ = ["EvalResult", "evaluate_model", "forward_logits", "metric_classes"]


def metric_classes(task: Task, num_classes: int) -> int:
    """Classes the metrics count: a binary task scores background and foreground (2)."""
    return 2 if task is Task.BINARY else num_classes


@dataclass
class EvalResult:
    """Scores of one evaluation pass.

    Attributes:
        scores: dataset-level scores from the pooled confusion matrix.
        matrix: ``(C, C)`` int64 confusion matrix, rows = ground truth, columns = prediction.
        per_image: per-image Dice results (ids, per-class values, means).
        overlays: ``(id, rgb, target, pred)`` for the first few images, for pictures.
    """

    scores: Any
    matrix: np.ndarray
    per_image: Any
    overlays: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def _logits_of(output: Any) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


def forward_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tile_size: int | None = None,
) -> torch.Tensor:
    """Logits of ``model`` for ``images``, as float32 on the images' device.

    Args:
        model: a segwise model (eval mode is the caller's choice).
        images: ``(N, C, H, W)`` normalised images on the model's device.
        amp_dtype: autocast dtype (bf16/fp16) or None for full precision.
        channels_last: feed the images in channels-last memory format.
        tile_size: when set and the image is larger than the tile in either side, run
            Gaussian-blended sliding-window inference with this tile instead of one forward.

    Returns:
        ``(N, K, H, W)`` float32 logits.
    """
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    device_type = images.device.type
    autocast = (
        torch.autocast(device_type=device_type, dtype=amp_dtype) if amp_dtype else nullcontext()
    )
    h, w = images.shape[-2:]
    with autocast:
        if tile_size is not None and (h > tile_size or w > tile_size):
            from segwise.inference import sliding_window_inference

            logits = sliding_window_inference(
                lambda x: _logits_of(model(x)), images, tile_size=tile_size, overlap=0.25
            )
        else:
            logits = _logits_of(model(images))
    return logits.float()


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Any,
    *,
    task: Task,
    num_classes: int,
    ignore_index: int | None,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tile_size: int | None = None,
    class_names: list[str] | None = None,
    keep_overlays: int = 0,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
    indices: list[int] | None = None,
) -> EvalResult:
    """Run ``model`` over every item of ``dataset`` (one image at a time, any size).

    Args:
        model: the model; put in eval mode here.
        dataset: yields items per the dataset contract (``image``, ``mask``, ``id``).
        task: binary thresholds sigmoid at 0.5; multiclass takes the argmax.
        num_classes: the model's output classes (1 for binary).
        ignore_index: label excluded from every metric.
        device: where the model runs.
        amp_dtype: autocast dtype or None.
        channels_last: channels-last inputs.
        tile_size: sliding-window tile for images larger than it (None: whole image).
        class_names: names for the scores.
        keep_overlays: how many images to keep for pictures.
        mean: normalisation mean (to draw the images); std: normalisation std.
        indices: evaluate only these items (for sharding across processes).
    """
    from segwise.metrics import ConfusionMatrix, PerImageDice, labels_from_logits
    from segwise.viz import denormalize

    model.eval()
    k = metric_classes(task, num_classes)
    confusion = ConfusionMatrix(k, ignore_index=ignore_index)
    per_image = PerImageDice(k, ignore_index=ignore_index)
    overlays: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for i in indices if indices is not None else range(len(dataset)):
        item = dataset[i]
        image = item["image"].unsqueeze(0).to(device)
        target = item["mask"].unsqueeze(0)
        logits = forward_logits(
            model, image, amp_dtype=amp_dtype, channels_last=channels_last, tile_size=tile_size
        )
        pred = labels_from_logits(logits, task).cpu()
        confusion.update(pred, target)
        per_image.update(pred, target, ids=[item["id"]])
        if len(overlays) < keep_overlays:
            rgb = denormalize(item["image"].numpy(), mean, std)
            overlays.append((item["id"], rgb, target[0].numpy(), pred[0].numpy()))
    scores = confusion.compute(class_names=class_names)
    return EvalResult(
        scores=scores,
        matrix=confusion.matrix.cpu().numpy(),
        per_image=per_image,
        overlays=overlays,
    )
