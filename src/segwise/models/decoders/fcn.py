"""FCN (Long et al. 2015): the FCN-32s/16s/8s decoders and torchvision's FCN head decoder."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import torch
from torch import nn

from segwise.models.blocks import Norm, conv_norm_act
from segwise.models.init import init_classifier, init_relu_convs, init_zero

__all__ = ["FCNDecoder", "FCNSkipDecoder", "FCNVariant", "bilinear_kernel"]


class FCNVariant(str, Enum):
    """Which skips FCN fuses: none (32s), pool4 (16s), pool4 and pool3 (8s)."""

    FCN32S = "32s"
    FCN16S = "16s"
    FCN8S = "8s"


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """``(channels, channels, k, k)`` weight making a transposed conv a bilinear upsampler.

    This is the ``upsample_filt`` initialisation of the original Caffe FCN (surgery.py).
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt
    return weight


def _upscore(num_classes: int, factor: int) -> nn.ConvTranspose2d:
    """Learned x``factor`` upsampling (kernel 2*factor, no bias), initialised bilinear."""
    up = nn.ConvTranspose2d(
        num_classes, num_classes, 2 * factor, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(num_classes, 2 * factor))
    return up


def _score(in_channels: int, num_classes: int) -> nn.Conv2d:
    """Score layer for a skip, zero-initialised as in the paper (the net starts as FCN-32s)."""
    score = nn.Conv2d(in_channels, num_classes, 1)
    init_zero(score)
    return score


class FCNSkipDecoder(nn.Module):
    """FCN-32s/16s/8s on a stride-32 encoder with stride-8 and stride-16 features (VGG-16).

    fc6 (7x7 conv, ``fc_channels``) -> ReLU -> dropout 0.5 -> fc7 (1x1) -> ReLU -> dropout 0.5
    -> score_fr (1x1 to classes); then, for 16s/8s, x2 upsampling fused by summation with
    score_pool4 (and x2 again with score_pool3 for 8s), and a final learned upsampling (x32,
    x16 or x8) back to stride 1. Upsampling layers start bilinear, skip score layers start at
    zero (the net starts as FCN-32s), fc6/fc7 get He init (fan-in) and score_fr Glorot (the
    paper zero-initialises it too, section 4.1, which with random fc layers would keep
    gradients from fc7 and the encoder for the first step).
    Differences from the Caffe original: fc6 uses padding 3 instead of the 100-pixel input
    padding and crops (the model pads to a multiple of 32 instead), fc6/fc7 are not initialised
    from VGG's classifier, and there is no pool3/pool4 scaling (that was the "at-once" variant).

    Args:
        encoder_channels: the encoder's ``out_channels``.
        encoder_reductions: the encoder's ``reductions``; must contain 8, 16 and end at 32.
        num_classes: classes scored.
        variant: :class:`FCNVariant`.
        fc_channels: width of fc6/fc7 (4096 in the paper).

    ``forward(features) -> (N, num_classes, H, W)``: scores at stride 1.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_reductions: Sequence[int],
        *,
        num_classes: int,
        variant: FCNVariant,
        fc_channels: int = 4096,
    ) -> None:
        super().__init__()
        reductions = list(encoder_reductions)
        if reductions[-1] != 32 or 8 not in reductions or 16 not in reductions:
            raise ValueError(
                f"FCN-{variant.value} needs an encoder at output_stride 32 with stride-8 and "
                f"stride-16 features; got reductions {tuple(reductions)} (use output_stride=32)"
            )
        self.variant = variant
        self.pool3 = reductions.index(8)
        self.pool4 = reductions.index(16)
        self.fc = nn.Sequential(
            nn.Conv2d(encoder_channels[-1], fc_channels, 7, padding=3),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(fc_channels, fc_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        )
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self.out_channels = num_classes
        init_relu_convs(self.fc)  # He et al. 2015 (fan-in): fc6/fc7 feed ReLUs
        init_classifier(self.score_fr)  # Glorot, like every classifier (segwise.models.init)
        if variant is FCNVariant.FCN32S:
            self.upscore = _upscore(num_classes, 32)
            return
        self.upscore2 = _upscore(num_classes, 2)
        self.score_pool4 = _score(encoder_channels[self.pool4], num_classes)
        if variant is FCNVariant.FCN16S:
            self.upscore = _upscore(num_classes, 16)
            return
        self.upscore_pool4 = _upscore(num_classes, 2)
        self.score_pool3 = _score(encoder_channels[self.pool3], num_classes)
        self.upscore = _upscore(num_classes, 8)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """``features``: pool1..pool5, high to low resolution."""
        score = self.score_fr(self.fc(features[-1]))  # (N, K, H/32, W/32)
        if self.variant is FCNVariant.FCN32S:
            return self.upscore(score)
        score = self.upscore2(score) + self.score_pool4(features[self.pool4])  # H/16
        if self.variant is FCNVariant.FCN16S:
            return self.upscore(score)
        score = self.upscore_pool4(score) + self.score_pool3(features[self.pool3])  # H/8
        return self.upscore(score)  # (N, K, H, W)


class FCNDecoder(nn.Module):
    """torchvision's FCN head minus its classifier: 3x3 conv to ``in/4`` -> norm -> ReLU ->
    dropout 0.1, on the last (deepest) feature. The 1x1 classifier is the model's head.

    Args:
        in_channels: channels of the deepest feature (2048 for ResNet-50).
        norm: :class:`Norm` after the conv.
        dropout: dropout probability (0.1 in torchvision).
    """

    def __init__(
        self, in_channels: int, *, norm: Norm | str = Norm.BATCH, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.block = nn.Sequential(
            conv_norm_act(in_channels, in_channels // 4, 3, norm=norm), nn.Dropout(dropout)
        )
        self.out_channels = in_channels // 4
        init_relu_convs(self)  # see segwise.models.init

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """-> ``(N, in_channels // 4, H / os, W / os)``."""
        return self.block(features[-1])
