"""U-Net + watershed: a semantic model predicting background / interior / boundary, whose
interior seeds a watershed over the foreground (the DSB 2018 winners' recipe).

- Model: any segwise semantic architecture (``arch``, default ``unet``) on any segwise encoder,
  with 3 outputs.
- Targets (`.targets.unet_targets_from_item`): `.targets.three_class_target` and the U-Net
  border weight map (Ronneberger et al. 2015, eq. 2).
- Loss: Dice + cross-entropy over the 3 classes, the CE weighted per pixel by that map.
- Decoding (`.decode.decode_unet_logits`): `.decode.decode_three_class`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import nn

from segwise.instance.methods.base import ObjectStats, as_instance_model
from segwise.instance.methods.unet_watershed.decode import decode_unet_logits
from segwise.instance.methods.unet_watershed.options import (
    UNET_IGNORE,
    UNET_NUM_CLASSES,
    UNetWatershedOptions,
)
from segwise.instance.methods.unet_watershed.targets import unet_targets_from_item
from segwise.instance.representation import InstancePrediction

__all__ = ["UNetWatershed"]


class UNetWatershed:
    """The ``unet_watershed`` instance method (protocol: `segwise.instance.methods.base`)."""

    name: ClassVar[str] = "unet_watershed"
    description: ClassVar[str] = (
        "a semantic model (default unet; --model-option arch=NAME, --encoder) predicting "
        "interior and border, objects split by watershed"
    )
    options_type: ClassVar[type] = UNetWatershedOptions
    exportable: ClassVar[bool] = False
    record_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __init__(self) -> None:
        self._losses: dict[tuple[float, float], nn.Module] = {}

    def resolve_options(
        self, options: UNetWatershedOptions, stats: ObjectStats | None
    ) -> UNetWatershedOptions:
        """Nothing is derived from the data (the border weights are per image)."""
        return options

    def derived_summary(self, options: UNetWatershedOptions) -> str:
        """One line for the run banner: what the data decided (nothing here)."""
        return "nothing derived from the data (targets and decoding are per image)"

    def build(
        self,
        *,
        encoder: str | None,
        in_channels: int,
        num_classes: int,
        options: UNetWatershedOptions,
        weights: str | None,
    ) -> nn.Module:
        """``create_model(arch, encoder, 3 outputs)``; ``num_classes`` is not used (the three
        outputs are background / interior / boundary; instances get label 1)."""
        from segwise.models import create_model

        model = create_model(
            options.arch,
            encoder=encoder,
            in_channels=in_channels,
            num_classes=UNET_NUM_CLASSES,
            weights=weights,
            **options.arch_options,
        )
        return as_instance_model(model, self, options)

    def prepare_item(
        self, item: dict[str, Any], *, options: UNetWatershedOptions, pad_value: int
    ) -> dict[str, Any]:
        """``"mask"`` becomes the 3-class target (padding / ignored pixels: `UNET_IGNORE`) and
        ``"pixel_weights" (H, W)`` the border weight map (0 where ignored)."""
        t = unet_targets_from_item(
            item, boundary_width=options.boundary_width, w0=options.w0, sigma=options.sigma,
            class_balance=options.class_balance,
        )
        invalid = item["mask"] == pad_value
        item["mask"] = torch.where(invalid, UNET_IGNORE, t["mask"])
        item["pixel_weights"] = torch.where(invalid, 0.0, t["pixel_weights"])
        return item

    def loss(
        self,
        model: nn.Module,
        images: torch.Tensor,
        targets: Sequence[Mapping[str, torch.Tensor]],
        *,
        options: UNetWatershedOptions,
        batch: Mapping[str, Any],
    ) -> dict[str, torch.Tensor]:
        """``{"dicece": ...}``: Dice + cross-entropy over background / interior / boundary
        (`segwise.losses.DiceCELoss`), the CE weighted per pixel by the border weight map."""
        from segwise.losses import create_loss

        key = (options.dice_weight, options.ce_weight)
        if key not in self._losses:
            self._losses[key] = create_loss(
                "dicece", task="multiclass", num_classes=UNET_NUM_CLASSES,
                ignore_index=UNET_IGNORE, dice_weight=options.dice_weight,
                ce_weight=options.ce_weight,
            )
        logits = model(images).float()  # (N, 3, H, W)
        target = batch["mask"].to(images.device, non_blocking=True)
        weights = torch.stack(list(batch["pixel_weights"])).to(images.device, non_blocking=True)
        return {"dicece": self._losses[key](logits, target, pixel_weights=weights)}

    def predict(
        self,
        model: nn.Module,
        images: torch.Tensor,
        *,
        options: UNetWatershedOptions,
        tile_size: int | None = None,
    ) -> list[InstancePrediction]:
        """Logits (sliding window beyond ``tile_size``), then `decode_unet_logits`."""
        from segwise.inferers.forward import forward_logits

        logits = forward_logits(model, images, tile_size=tile_size)
        return decode_unet_logits(logits, options=options)

    def export_module(
        self, model: nn.Module, *, options: UNetWatershedOptions, max_instances: int
    ) -> nn.Module:
        from segwise.errors import ExportError

        raise ExportError(
            "unet_watershed cannot be exported with its decoding: the watershed "
            "(scikit-image) is not a traceable tensor operation; export the semantic model "
            "and decode its 3-class logits with segwise.instance.decode_unet_logits"
        )
