"""Instance methods selectable by name, all returning `InstancePrediction` per image.

- ``InstanceMethod.MASKRCNN``: torchvision Mask R-CNN (`segwise.instance.maskrcnn`).
- ``InstanceMethod.UNET_WATERSHED``: a semantic model with 3 output classes (background /
  interior / boundary), trained on `unet_targets_from_item`, decoded by
  `segwise.instance.watershed.decode_three_class`.

The engine calls `predict_instances` (or `decode_unet_logits` when it already has logits,
e.g. after sliding-window inference) and evaluates with `segwise.metrics.instance`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import nn

from segwise._validation import as_enum, check_probability
from segwise.instance.representation import InstancePrediction
from segwise.instance.targets import ClassBalance, border_weight_map, three_class_target
from segwise.instance.watershed import Decoding, decode_three_class

__all__ = [
    "UNET_NUM_CLASSES",
    "InstanceDecodeConfig",
    "InstanceMethod",
    "decode_unet_logits",
    "instance_map_from_item",
    "predict_instances",
    "unet_targets_from_item",
]

#: output channels of a ``unet_watershed`` model: background, interior, boundary
UNET_NUM_CLASSES = 3


class InstanceMethod(str, Enum):
    """An instance-segmentation method (see module docstring)."""

    MASKRCNN = "maskrcnn"
    UNET_WATERSHED = "unet_watershed"


@dataclass(frozen=True)
class InstanceDecodeConfig:
    """How raw model outputs become instances (stored with the run config).

    Attributes:
        score_threshold: Mask R-CNN: detections below this score are dropped.
        mask_threshold: Mask R-CNN: mask probability above which a pixel is in a detection.
        decoding: U-Net: `Decoding` (watershed or connected components).
        foreground_threshold: U-Net: ``1 - p_background`` above which a pixel is foreground.
        interior_threshold: U-Net: ``p_interior`` above which a pixel seeds a marker.
        min_area: U-Net: instances with fewer pixels are removed.
        boundary_width: U-Net: boundary thickness of the training target (px), also the growth
            radius of connected-components decoding.
    """

    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    decoding: Decoding = Decoding.WATERSHED
    foreground_threshold: float = 0.5
    interior_threshold: float = 0.5
    min_area: int = 0
    boundary_width: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoding", as_enum(self.decoding, Decoding, "decoding"))
        for name in (
            "score_threshold",
            "mask_threshold",
            "foreground_threshold",
            "interior_threshold",
        ):
            check_probability(getattr(self, name), name)
        if self.min_area < 0 or self.boundary_width < 1:
            raise ValueError(
                f"min_area={self.min_area!r}, boundary_width={self.boundary_width!r}; expected "
                "min_area >= 0 and boundary_width >= 1"
            )


def instance_map_from_item(item: Mapping[str, Any]) -> np.ndarray:
    """``int32 (H, W)`` instance map from an Instance item's ``"instances"``.

    IDs are the item's ``"ids"`` (else ``k + 1``); where masks overlap the earlier one wins.
    """
    return InstancePrediction.from_target(item["instances"]).instance_map


def unet_targets_from_item(
    item: Mapping[str, Any],
    *,
    boundary_width: int = 1,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: ClassBalance | str = ClassBalance.BALANCED,
) -> dict[str, torch.Tensor]:
    """Targets of a ``unet_watershed`` model for one Instance item.

    Returns:
        ``{"mask": int64 (H, W)`` 0 background / 1 interior / 2 boundary, ``"pixel_weights":
        float32 (H, W)`` the U-Net border weight map (for ``DiceCELoss(pixel_weights=...)``)}.
    """
    inst = instance_map_from_item(item)
    return {
        "mask": torch.from_numpy(three_class_target(inst, width=boundary_width)),
        "pixel_weights": torch.from_numpy(
            border_weight_map(inst, w0=w0, sigma=sigma, class_balance=class_balance)
        ),
    }


def decode_unet_logits(
    logits: torch.Tensor, *, config: InstanceDecodeConfig | None = None
) -> list[InstancePrediction]:
    """Decode ``unet_watershed`` logits.

    Args:
        logits: ``(N, 3, H, W)`` unnormalised scores (background, interior, boundary).
        config: decoding options; default `InstanceDecodeConfig()`.
    """
    config = config or InstanceDecodeConfig()
    if logits.ndim != 4 or logits.shape[1] != UNET_NUM_CLASSES:
        raise ValueError(
            f"logits has shape {tuple(logits.shape)}; expected (N, 3, H, W) (background, "
            "interior, boundary)"
        )
    probs = torch.softmax(logits.detach().float(), dim=1).cpu().numpy()
    return [
        decode_three_class(
            p,
            decoding=config.decoding,
            foreground_threshold=config.foreground_threshold,
            interior_threshold=config.interior_threshold,
            min_area=config.min_area,
            grow=config.boundary_width,
        )
        for p in probs
    ]


@torch.inference_mode()
def predict_instances(
    model: nn.Module,
    images: torch.Tensor | Sequence[torch.Tensor],
    *,
    method: InstanceMethod | str,
    config: InstanceDecodeConfig | None = None,
) -> list[InstancePrediction]:
    """Predict the instances of a batch with either method; the model is left in eval mode.

    Args:
        model: a Mask R-CNN from `build_maskrcnn`, or a semantic model with 3 output classes.
        images: ``(N, C, H, W)`` float tensor (Mask R-CNN also takes a list of ``(C, H, W)``).
        method: an `InstanceMethod` or its name.
        config: decoding options.
    """
    method = as_enum(method, InstanceMethod, "method")
    config = config or InstanceDecodeConfig()
    model.eval()
    if method is InstanceMethod.MASKRCNN:
        from segwise.instance.maskrcnn import predict_maskrcnn

        return predict_maskrcnn(
            model,
            images,
            score_threshold=config.score_threshold,
            mask_threshold=config.mask_threshold,
        )
    if not isinstance(images, torch.Tensor):
        images = torch.stack(list(images))
    logits = model(images)  # always a tensor (N, 3, H, W)
    return decode_unet_logits(logits, config=config)
