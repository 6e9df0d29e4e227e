"""U-Net + watershed: a semantic model predicting background / interior / boundary, whose
interior seeds a watershed over the foreground (the DSB 2018 winners' recipe).

- Model: any segwise semantic architecture (``arch``, default ``unet``) on any segwise encoder,
  with 3 outputs.
- Targets (`unet_targets_from_item`): `segwise.instance.targets.three_class_target` and the
  U-Net border weight map (Ronneberger et al. 2015, eq. 2).
- Loss: Dice + cross-entropy over the 3 classes, the CE weighted per pixel by that map.
- Decoding (`decode_unet_logits`): `segwise.instance.watershed.decode_three_class`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from segwise._validation import as_enum, check_probability
from segwise.instance.methods.base import ObjectStats
from segwise.instance.representation import InstancePrediction
from segwise.instance.targets import ClassBalance, border_weight_map, three_class_target
from segwise.instance.watershed import Decoding, decode_three_class

__all__ = [
    "UNET_IGNORE",
    "UNET_NUM_CLASSES",
    "UNetWatershed",
    "UNetWatershedOptions",
    "decode_unet_logits",
    "instance_map_from_item",
    "unet_targets_from_item",
]

#: output channels: background, interior, boundary
UNET_NUM_CLASSES = 3
#: target value of pixels the loss leaves out (padding, the data's ignore label)
UNET_IGNORE = 255


@dataclass(frozen=True)
class UNetWatershedOptions:
    """Options of ``unet_watershed`` (``--model-option KEY=VALUE``; stored in checkpoints).

    Attributes:
        arch: the semantic architecture (``segwise models``).
        arch_options: keyword arguments of that architecture, e.g. ``{base_width: 16}``.
        decoding: `Decoding` (``watershed`` or ``connected_components``).
        foreground_threshold: ``1 - p_background`` above which a pixel is foreground.
        interior_threshold: ``p_interior`` above which a pixel seeds a marker.
        min_area: instances with fewer pixels are removed.
        boundary_width: boundary thickness of the training target (px), also the growth
            radius of connected-components decoding.
        w0: border weight amplitude (U-Net paper: 10).
        sigma: border weight width in px (U-Net paper: 5).
        class_balance: the ``w_c`` term of the weight map (`ClassBalance`).
        dice_weight: weight of the Dice term of the loss.
        ce_weight: weight of the (border-weighted) cross-entropy term.
    """

    arch: str = "unet"
    arch_options: Mapping[str, Any] = field(default_factory=dict)
    decoding: Decoding = Decoding.WATERSHED
    foreground_threshold: float = 0.5
    interior_threshold: float = 0.5
    min_area: int = 0
    boundary_width: int = 1
    w0: float = 10.0
    sigma: float = 5.0
    class_balance: ClassBalance = ClassBalance.BALANCED
    dice_weight: float = 1.0
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoding", as_enum(self.decoding, Decoding, "decoding"))
        object.__setattr__(
            self, "class_balance", as_enum(self.class_balance, ClassBalance, "class_balance")
        )
        if not isinstance(self.arch_options, Mapping):
            raise ValueError(
                f"arch_options={self.arch_options!r}; expected a mapping of architecture "
                "options, e.g. arch_options='{base_width: 16}'"
            )
        object.__setattr__(self, "arch_options", dict(self.arch_options))
        check_probability(self.foreground_threshold, "foreground_threshold")
        check_probability(self.interior_threshold, "interior_threshold")
        if self.min_area < 0 or self.boundary_width < 1:
            raise ValueError(
                f"min_area={self.min_area!r}, boundary_width={self.boundary_width!r}; expected "
                "min_area >= 0 and boundary_width >= 1"
            )
        for name in ("w0", "sigma", "dice_weight", "ce_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected a value >= 0")


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
    logits: torch.Tensor, *, options: UNetWatershedOptions | None = None
) -> list[InstancePrediction]:
    """Decode ``unet_watershed`` logits.

    Args:
        logits: ``(N, 3, H, W)`` unnormalised scores (background, interior, boundary).
        options: decoding options; default `UNetWatershedOptions()`.
    """
    options = options or UNetWatershedOptions()
    if logits.ndim != 4 or logits.shape[1] != UNET_NUM_CLASSES:
        raise ValueError(
            f"logits has shape {tuple(logits.shape)}; expected (N, 3, H, W) (background, "
            "interior, boundary)"
        )
    probs = torch.softmax(logits.detach().float(), dim=1).cpu().numpy()
    return [
        decode_three_class(
            p,
            decoding=options.decoding,
            foreground_threshold=options.foreground_threshold,
            interior_threshold=options.interior_threshold,
            min_area=options.min_area,
            grow=options.boundary_width,
        )
        for p in probs
    ]


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

        return create_model(
            options.arch,
            encoder=encoder,
            in_channels=in_channels,
            num_classes=UNET_NUM_CLASSES,
            weights=weights,
            **options.arch_options,
        )

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
