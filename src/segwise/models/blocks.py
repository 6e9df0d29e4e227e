"""Small building blocks shared by encoders, decoders and heads, and the option enums.

Every option is an enum (strings are accepted and converted with
:func:`segwise._validation.as_enum`).
"""

from __future__ import annotations

import math
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from segwise._validation import as_enum

__all__ = [
    "Norm",
    "Upsampling",
    "conv_norm_act",
    "double_conv",
    "norm_layer",
    "resize",
]


class Norm(str, Enum):
    """Normalisation after each decoder convolution.

    - ``BATCH``: ``nn.BatchNorm2d`` (the papers' choice; needs batch > 1 in training for
      layers that see a 1x1 map, which is why the ASPP image-pooling branch has no norm then).
    - ``GROUP``: ``nn.GroupNorm`` with up to 32 groups; independent of the batch size.
    - ``INSTANCE``: ``nn.InstanceNorm2d(affine=True)``, statistics per image and channel, the
      same in training and evaluation (Ulyanov et al. 2016; nnU-Net's and MONAI
      ``BasicUNet``'s choice). Per-image statistics learn faster on data whose images differ
      in brightness and stain (dsb2018), slower on natural scenes whose absolute colour
      carries the class (CamVid): docs/benchmarks.md, "Textbook U-Net: the default norm".
      Every normalised map needs more than one pixel, in training and in evaluation.
    - ``NONE``: no normalisation; convolutions get a bias instead.
    """

    BATCH = "batch"
    GROUP = "group"
    INSTANCE = "instance"
    NONE = "none"


class Upsampling(str, Enum):
    """How a decoder doubles the resolution.

    - ``TRANSPOSED``: learned 2x2 transposed convolution that also halves the channels
      (the "up-convolution" of Ronneberger et al. 2015).
    - ``BILINEAR``: parameter-free bilinear interpolation (``align_corners=False``).
    - ``NEAREST``: parameter-free nearest-neighbour interpolation (smp's default).
    """

    TRANSPOSED = "transposed"
    BILINEAR = "bilinear"
    NEAREST = "nearest"


def norm_layer(norm: Norm | str, channels: int) -> nn.Module:
    """Return the normalisation layer for ``channels`` feature maps (``nn.Identity`` for NONE)."""
    norm = as_enum(norm, Norm, "norm")
    if norm is Norm.BATCH:
        return nn.BatchNorm2d(channels)
    if norm is Norm.GROUP:
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if norm is Norm.INSTANCE:
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    norm: Norm | str = Norm.BATCH,
    dilation: int = 1,
    separable: bool = False,
) -> nn.Sequential:
    """Conv (``same`` padding) -> norm -> ReLU; the conv has a bias only without a norm.

    With ``separable=True`` the conv is depthwise (``groups=in_channels``) followed by a 1x1
    pointwise conv, as in DeepLab v3+ (Chen et al. 2018, section 3.2).
    """
    norm = as_enum(norm, Norm, "norm")
    bias = norm is Norm.NONE
    padding = dilation * (kernel_size - 1) // 2
    if separable and kernel_size > 1:
        conv: nn.Module = nn.Sequential(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                padding=padding,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=bias),
        )
    else:
        conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=bias
        )
    return nn.Sequential(conv, norm_layer(norm, out_channels), nn.ReLU(inplace=True))


def double_conv(
    in_channels: int, out_channels: int, *, norm: Norm | str = Norm.BATCH
) -> nn.Sequential:
    """Two 3x3 conv -> norm -> ReLU, the unit of every U-Net level."""
    return nn.Sequential(
        conv_norm_act(in_channels, out_channels, 3, norm=norm),
        conv_norm_act(out_channels, out_channels, 3, norm=norm),
    )


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinearly resize ``x (N, C, h, w)`` to ``size``; a no-op when it already has that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
