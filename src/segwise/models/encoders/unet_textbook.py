"""The contracting path of the textbook U-Net (Ronneberger et al. 2015), written here."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from segwise.models.blocks import Norm, double_conv
from segwise.models.init import Distribution, init_relu_convs

__all__ = ["UNetTextbookEncoder"]


class UNetTextbookEncoder(nn.Module):
    """Double 3x3 conv, then ``depth`` times (2x2 max-pool, double 3x3 conv doubling width).

    With the defaults: ``out_channels = (64, 128, 256, 512, 1024)`` at ``reductions =
    (1, 2, 4, 8, 16)``. Convs use ``padding=1`` (the paper used unpadded convs and cropped the
    skips; padding keeps output = input size, which every modern re-implementation does).

    Args:
        in_channels: input channels.
        base_width: channels of the first level (64 in the paper).
        depth: number of max-pools (4 in the paper); ``divisor = 2 ** depth``.
        norm: normalisation after each conv (the paper had none; BATCH is the common choice;
            INSTANCE is MONAI ``BasicUNet``'s and nnU-Net's: :class:`segwise.models.blocks.Norm`).

    Init (:mod:`segwise.models.init`): the paper's He Gaussian ``N(0, 2 / fan_in)`` (section 3)
    for every conv, with any ``norm``.
    """

    native_prefix = ""

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_width: int = 64,
        depth: int = 4,
        norm: Norm | str = Norm.BATCH,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth={depth!r} is not valid; expected an integer >= 1")
        if base_width < 1:
            raise ValueError(f"base_width={base_width!r} is not valid; expected an integer >= 1")
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.stem = double_conv(in_channels, widths[0], norm=norm)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), double_conv(c_in, c_out, norm=norm))
            for c_in, c_out in itertools.pairwise(widths)
        )
        self.out_channels: tuple[int, ...] = tuple(widths)
        self.reductions: tuple[int, ...] = tuple(2**i for i in range(depth + 1))
        self.divisor = 2**depth
        # the paper's Gaussian N(0, 2 / N) (section 3), before a norm too (segwise.models.init)
        init_relu_convs(self, distribution=Distribution.NORMAL)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: (N, in_channels, H, W)`` -> ``depth + 1`` maps, from ``(N, 64, H, W)`` down."""
        features = [self.stem(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        return features
