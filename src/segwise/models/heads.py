"""Heads: turn decoder features into class logits at the (padded) input resolution."""

from __future__ import annotations

import torch
from torch import nn

from segwise.models.blocks import Norm, conv_norm_act, resize
from segwise.models.init import init_classifier, init_relu_convs

__all__ = ["FCNHead", "ResizeHead", "SegmentationHead"]


class SegmentationHead(nn.Module):
    """``kernel_size`` conv to ``num_classes`` then bilinear resize to the target size.

    The classifier is Glorot-initialised with a zero bias (:func:`~segwise.models.init.
    init_classifier`, as smp's ``initialize_head``).

    Args:
        in_channels: channels of the decoder output.
        num_classes: output channels (logits).
        kernel_size: 1 (a per-pixel linear classifier: FCN, DeepLab, the textbook U-Net) or 3
            (smp's head, used by the U-Net on a timm encoder, whose last decoder block has only
            16 channels; see docs/models.md, "Initialisation").
    """

    def __init__(self, in_channels: int, num_classes: int, *, kernel_size: int = 1) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size, padding=kernel_size // 2)
        init_classifier(self.classifier)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``x: (N, in_channels, h, w)`` -> logits ``(N, num_classes, *size)``."""
        return resize(self.classifier(x), size)


class ResizeHead(nn.Module):
    """No parameters: for decoders that already emit class scores (FCN-8s/16s/32s)."""

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``x: (N, num_classes, h, w)`` -> ``(N, num_classes, *size)``."""
        return resize(x, size)


class FCNHead(nn.Module):
    """torchvision's ``FCNHead``: 3x3 conv to ``in/4`` -> norm -> ReLU -> dropout -> 1x1 conv.

    Used as the auxiliary head (on ResNet's layer3, stride 16 or 8) of FCN and DeepLab, exactly
    as torchvision's ``aux_loss=True`` builders do. Init (:mod:`segwise.models.init`): the 3x3
    conv as every conv that feeds a ReLU, Glorot for the classifier.

    Args:
        in_channels: channels of the feature map it reads.
        num_classes: output channels (logits).
        norm: normalisation after the 3x3 conv.
        dropout: dropout probability before the classifier (0.1 in torchvision).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        norm: Norm | str = Norm.BATCH,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.block = nn.Sequential(
            conv_norm_act(in_channels, in_channels // 4, 3, norm=norm), nn.Dropout(dropout)
        )
        self.classifier = nn.Conv2d(in_channels // 4, num_classes, 1)
        init_relu_convs(self.block)
        init_classifier(self.classifier)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``x: (N, in_channels, h, w)`` -> logits ``(N, num_classes, *size)``."""
        return resize(self.classifier(self.block(x)), size)
