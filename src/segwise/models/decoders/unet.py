"""U-Net decoder (Ronneberger et al. 2015) on any encoder, and the textbook U-Net."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segwise._validation import as_enum
from segwise.models.blocks import Norm, Upsampling, double_conv
from segwise.models.init import init_relu_convs

__all__ = ["UNetBlock", "UNetDecoder"]

DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)


class UNetBlock(nn.Module):
    """Upsample by ``scale`` -> concatenate the skip -> double 3x3 conv.

    With ``TRANSPOSED`` upsampling the learned 2x2 (``scale``x``scale``) transposed conv also
    halves the channels, as in the paper; interpolation keeps them.

    Args:
        in_channels: channels of the deeper input.
        skip_channels: channels of the skip connection (0 for none).
        out_channels: channels after the double conv.
        scale: resolution ratio between the input and the skip (1 when dilation kept it).
        upsampling: how to upsample.
        norm: normalisation inside the double conv.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        scale: int,
        upsampling: Upsampling,
        norm: Norm | str,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.mode = upsampling.value
        self.up: nn.Module | None = None
        if scale > 1 and upsampling is Upsampling.TRANSPOSED:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, scale, stride=scale)
            in_channels //= 2
        self.convs = double_conv(in_channels + skip_channels, out_channels, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        """``x: (N, C_in, h, w)``, ``skip: (N, C_skip, h*scale, w*scale)`` or None."""
        if self.up is not None:
            x = self.up(x)
        elif self.scale > 1:
            x = F.interpolate(x, scale_factor=self.scale, mode=self.mode)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)  # (N, C_in' + C_skip, H', W')
        return self.convs(x)


class UNetDecoder(nn.Module):
    """One :class:`UNetBlock` per skip, deepest first, then blocks without skip up to stride 1.

    Args:
        encoder_channels: the encoder's ``out_channels``.
        encoder_reductions: the encoder's ``reductions``.
        decoder_channels: output channels of each block, deepest first; its length must be the
            number of skips plus one when the shallowest feature is not at stride 1. ``None``
            takes the first entries of ``(256, 128, 64, 32, 16)``.
        upsampling: :class:`Upsampling` (``"transposed"``, ``"bilinear"``, ``"nearest"``).
        norm: :class:`Norm` inside each block.

    ``forward(features) -> (N, decoder_channels[-1], H, W)`` at stride 1. Init
    (:mod:`segwise.models.init`): He (fan-in, uniform) for every conv, before a norm or not,
    ``N(0, 1/fan_in)`` for transposed convs.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_reductions: Sequence[int],
        *,
        decoder_channels: Sequence[int] | None = None,
        upsampling: Upsampling | str = Upsampling.NEAREST,
        norm: Norm | str = Norm.BATCH,
    ) -> None:
        super().__init__()
        upsampling = as_enum(upsampling, Upsampling, "upsampling")
        # (in reduction, skip index or None, scale) for each block, deepest first
        plan: list[tuple[int | None, int]] = []
        for i in range(len(encoder_reductions) - 2, -1, -1):
            plan.append((i, encoder_reductions[i + 1] // encoder_reductions[i]))
        if encoder_reductions[0] > 1:
            plan.append((None, encoder_reductions[0]))
        if decoder_channels is None:
            decoder_channels = DEFAULT_DECODER_CHANNELS[: len(plan)]
        decoder_channels = tuple(decoder_channels)
        if len(decoder_channels) != len(plan) or min(decoder_channels) < 1:
            raise ValueError(
                f"decoder_channels={decoder_channels!r} is not valid for this encoder; "
                f"expected {len(plan)} positive integers (one per decoder block)"
            )
        blocks, in_ch = [], encoder_channels[-1]
        for (skip, scale), out_ch in zip(plan, decoder_channels, strict=True):
            skip_ch = 0 if skip is None else encoder_channels[skip]
            blocks.append(
                UNetBlock(in_ch, skip_ch, out_ch, scale=scale, upsampling=upsampling, norm=norm)
            )
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self._skips = tuple(skip for skip, _ in plan)
        self.out_channels = decoder_channels[-1]
        init_relu_convs(self)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """``features``: the encoder's list, high to low resolution."""
        x = features[-1]
        for block, skip in zip(self.blocks, self._skips, strict=True):
            x = block(x, None if skip is None else features[skip])
        return x
