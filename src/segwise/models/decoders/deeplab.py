"""DeepLab v3 (Chen et al. 2017) and v3+ (Chen et al. 2018): ASPP and the v3+ decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segwise._validation import as_enum
from segwise.models.blocks import Norm, conv_norm_act, norm_layer, resize
from segwise.models.init import init_relu_convs

__all__ = ["ASPP", "DeepLabV3Decoder", "DeepLabV3PlusDecoder", "default_atrous_rates"]

BASE_RATES = (6, 12, 18)  # the paper's rates at output stride 16


def default_atrous_rates(output_stride: int) -> tuple[int, ...]:
    """(6, 12, 18) at output stride 16, doubled at 8 (12, 24, 36), halved at 32 (3, 6, 9)."""
    return tuple(max(1, r * 16 // output_stride) for r in BASE_RATES)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image pooling (DeepLab v3, section 3.3).

    Branches: 1x1 conv; one 3x3 conv per atrous rate; global average pooling -> 1x1 conv ->
    ReLU -> broadcast. They are concatenated, projected by a 1x1 conv, and dropped out (0.5).

    Image pooling sees a 1x1 map, so BatchNorm there fails in training with batch 1 (one value
    per channel). With ``norm="batch"`` that branch therefore has no norm and a conv bias
    instead (256 fewer parameters than torchvision's ASPP); with ``norm="group"`` it uses
    GroupNorm like every other conv.

    Args:
        in_channels: channels of the deepest encoder feature.
        out_channels: channels of each branch and of the output (256).
        atrous_rates: dilation of the 3x3 branches.
        norm: :class:`Norm`.
        separable: depthwise-separable 3x3 branches (DeepLab v3+ with Xception).
        dropout: dropout after the projection (0.5 in the paper and torchvision).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        *,
        atrous_rates: Sequence[int],
        norm: Norm | str = Norm.BATCH,
        separable: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        norm = as_enum(norm, Norm, "norm")
        if not atrous_rates or min(atrous_rates) < 1:
            raise ValueError(
                f"atrous_rates={tuple(atrous_rates)!r} is not valid; expected positive integers"
            )
        branches = [conv_norm_act(in_channels, out_channels, 1, norm=norm)]
        branches += [
            conv_norm_act(in_channels, out_channels, 3, norm=norm, dilation=r, separable=separable)
            for r in atrous_rates
        ]
        self.branches = nn.ModuleList(branches)
        pool_norm = Norm.GROUP if norm is Norm.GROUP else Norm.NONE
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=pool_norm is Norm.NONE),
            norm_layer(pool_norm, out_channels),
            nn.ReLU(inplace=True),
        )
        self.project = nn.Sequential(
            conv_norm_act((len(branches) + 1) * out_channels, out_channels, 1, norm=norm),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, in_channels, h, w)`` -> ``(N, out_channels, h, w)``."""
        pooled = self.pooling(x).expand(-1, -1, *x.shape[-2:])  # (N, C_out, h, w)
        return self.project(torch.cat([*(b(x) for b in self.branches), pooled], dim=1))


class DeepLabV3Decoder(nn.Module):
    """torchvision's ``DeepLabHead`` minus the classifier: ASPP -> 3x3 conv -> norm -> ReLU.

    Args:
        in_channels: channels of the deepest encoder feature.
        atrous_rates: ASPP rates (see :func:`default_atrous_rates`).
        channels: ASPP and output width (256).
        norm: :class:`Norm`.
        separable: depthwise-separable 3x3 convs in ASPP and after it.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        atrous_rates: Sequence[int],
        channels: int = 256,
        norm: Norm | str = Norm.BATCH,
        separable: bool = False,
    ) -> None:
        super().__init__()
        self.aspp = ASPP(
            in_channels, channels, atrous_rates=atrous_rates, norm=norm, separable=separable
        )
        self.block = conv_norm_act(channels, channels, 3, norm=norm, separable=separable)
        self.out_channels = channels
        init_relu_convs(self)  # every conv feeds a ReLU: see segwise.models.init

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """-> ``(N, channels, H / os, W / os)`` from the deepest feature."""
        return self.block(self.aspp(features[-1]))


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP on the deepest feature, upsampled to the stride-4 feature and fused with it.

    The low-level (stride 4) feature is reduced to ``low_level_channels`` (48) by a 1x1 conv,
    concatenated with the upsampled ASPP output, and refined by two 3x3 convs (Chen et al.
    2018, figure 2). The model's head then classifies and upsamples x4.

    Args:
        encoder_channels: the encoder's ``out_channels``.
        encoder_reductions: the encoder's ``reductions``; one must be 4 (else the shallowest
            feature with reduction >= 4 is used).
        atrous_rates: ASPP rates.
        channels: ASPP and decoder width (256).
        low_level_channels: width the low-level feature is reduced to (48).
        norm: :class:`Norm`.
        separable: depthwise-separable 3x3 convs in ASPP and the decoder.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_reductions: Sequence[int],
        *,
        atrous_rates: Sequence[int],
        channels: int = 256,
        low_level_channels: int = 48,
        norm: Norm | str = Norm.BATCH,
        separable: bool = False,
    ) -> None:
        super().__init__()
        candidates = [i for i, r in enumerate(encoder_reductions) if r >= 4]
        self.low_index = candidates[0]
        self.aspp = ASPP(
            encoder_channels[-1],
            channels,
            atrous_rates=atrous_rates,
            norm=norm,
            separable=separable,
        )
        self.reduce = conv_norm_act(
            encoder_channels[self.low_index], low_level_channels, 1, norm=norm
        )
        self.fuse = nn.Sequential(
            conv_norm_act(
                channels + low_level_channels, channels, 3, norm=norm, separable=separable
            ),
            conv_norm_act(channels, channels, 3, norm=norm, separable=separable),
        )
        self.out_channels = channels
        init_relu_convs(self)  # every conv feeds a ReLU: see segwise.models.init

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """-> ``(N, channels, H / 4, W / 4)``."""
        low = self.reduce(features[self.low_index])  # (N, 48, H/4, W/4)
        high = resize(self.aspp(features[-1]), low.shape[-2:])  # (N, 256, H/4, W/4)
        return self.fuse(torch.cat([high, low], dim=1))
