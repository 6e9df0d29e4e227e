"""Any timm backbone with ``features_only=True`` (ResNet, aligned Xception, ConvNeXt, ...)."""

from __future__ import annotations

import torch
from torch import nn

from segwise.models.encoders.base import OUTPUT_STRIDES, check_output_stride

__all__ = ["TimmEncoder"]


class TimmEncoder(nn.Module):
    """Wrap ``timm.create_model(name, features_only=True, output_stride=...)``.

    Follows the Encoder contract (:mod:`segwise.models.encoders.base`): all feature levels timm
    exposes, ordered high to low resolution, with ``out_channels`` and ``reductions`` read from
    timm's ``feature_info``.

    Args:
        name: a timm model name, e.g. ``"resnet50"`` or ``"xception65"``.
        in_channels: input channels; with ``pretrained`` the first conv is adapted by timm.
        output_stride: 8, 16 or 32; below 32 the last stages use dilation instead of stride.
        pretrained: load timm's default ImageNet weights (see :mod:`segwise.models.weights`).
    """

    native_prefix = "backbone."

    def __init__(
        self, name: str, *, in_channels: int = 3, output_stride: int = 32, pretrained: bool = False
    ) -> None:
        super().__init__()
        import timm

        if not timm.is_model(name):
            raise ValueError(
                f"encoder='timm:{name}' is not valid: timm has no model {name!r} "
                "(see timm.list_models())"
            )
        check_output_stride(output_stride, name, OUTPUT_STRIDES)
        kwargs: dict = {"features_only": True, "in_chans": in_channels}
        if output_stride != 32:
            kwargs["output_stride"] = output_stride
        if pretrained:
            from segwise.models.weights import fetch_timm_weights

            kwargs["pretrained"] = True
            kwargs["pretrained_cfg_overlay"] = {"file": str(fetch_timm_weights(name))}
        try:
            self.backbone = timm.create_model(name, **kwargs)
        except (AssertionError, TypeError, RuntimeError) as err:
            raise ValueError(
                f"timm model {name!r} cannot be built with features_only=True and "
                f"output_stride={output_stride} ({type(err).__name__}: {err})"
            ) from err
        info = self.backbone.feature_info
        self.out_channels: tuple[int, ...] = tuple(info.channels())
        self.reductions: tuple[int, ...] = tuple(info.reduction())
        self.divisor = max(self.reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: (N, in_channels, H, W)`` -> feature maps, high to low resolution."""
        return list(self.backbone(x))
