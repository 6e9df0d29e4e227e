"""The residual 3D U-Net of Kerfoot et al. (2018): strided residual units, cheap on a CPU.

Kerfoot, Clough, Oksuz, Lee, King, Schnabel, "Left-Ventricle Quantification Using Residual
U-Net" (STACOM 2018, LNCS 11395), Fig. 1. With ``channels = (c_0, ..., c_{n-1})``::

    x (N, C_in, D, H, W)
    level 0    ResUnit(C_in    -> c_0,     stride 2)  f_0 at 1/2  ------------------+
    level 1    ResUnit(c_0     -> c_1,     stride 2)  f_1 at 1/4  -------------+    |
    ...                                                                        |    |
    level n-2  ResUnit(c_{n-3} -> c_{n-2}, stride 2)  f_{n-2} at 1/2^(n-1) -+  |    |
    bottom     ResUnit(c_{n-2} -> c_{n-1}, stride 1)  at 1/2^(n-1)          |  |    |
    decoder    cat(f_{n-2}, .) -> Up(-> c_{n-3}) -> ResUnit(1 subunit)  <---+  |    |
    ...        cat(f_1, .)     -> Up(-> c_0)     -> ResUnit(1 subunit)  <------+    |
    head       cat(f_0, .)     -> Up(-> K)       -> ResUnit(1 subunit), logits  <---+

- ResUnit (the residual unit of He et al. 2016, the paper's building block): ``subunits``
  times conv3x3x3 -> norm -> PReLU (the first conv carries the stride), plus the input; the
  input passes through a conv where the shape changes (3x3x3 with the stride when the unit
  downsamples, 1x1x1 when only the width changes) and unchanged otherwise. No activation after
  the sum.
- Up: transposed conv3x3x3 with the level's stride -> norm -> PReLU.
- The last level's residual unit is a bare conv (no norm, no PReLU) plus its input: its
  output is the logits. There is no separate classifier.

Every conv runs at 1/2 resolution or coarser except the head's two ``K``-channel ones, which
is what makes it cheap: ``unet3d`` and ``resenc_unet3d`` run their first stage (``base_width``
channels, two or more convs) at full resolution, where this one's first level already
strides.

Choices the paper leaves open, made here as the other 3D models make them: convs followed by a
norm have no bias; ``norm`` as :func:`segwise.models.volumetric.unet3d.norm3d` (instance norm
with affine parameters by default); one PReLU slope per layer (``nn.PReLU()``, He et al.
2015's channel-shared form, initial slope 0.25); optional elementwise dropout after every
PReLU; strides per axis from the voxel spacing
(:func:`segwise.models.volumetric.plan.plan_stages`), kernels 3x3x3 on every axis.

Init (:mod:`segwise.models.init`), the other 3D models' policy: He Gaussian ``N(0, 2 /
fan_in)`` for every conv (for PReLU at its initial slope 0.25 He et al.'s eq. 15 gives a std
3 % smaller: not worth a rule of its own, and a norm follows every one of them), norms 1/0,
up-convolutions ``N(0, 1 / fan_in)``, the logits conv Glorot with zero bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from segwise._validation import as_enum
from segwise.models.blocks import Norm
from segwise.models.init import Distribution, init_classifier, init_relu_convs
from segwise.models.segmentation_model import SegmentationModel
from segwise.models.volumetric.plan import plan_stages
from segwise.models.volumetric.unet3d import (
    _check_own_encoder,
    _check_positive,
    norm3d,
)

__all__ = [
    "ResUNet3DDecoder",
    "ResUNet3DEncoder",
    "ResUNet3DHead",
    "ResidualUnit3D",
    "build_resunet3d",
]

Triple = tuple[int, int, int]
_ONE: Triple = (1, 1, 1)


def _norm_act(channels: int, *, norm: Norm, dropout: float) -> list[nn.Module]:
    """norm -> PReLU (-> dropout): what follows every conv of the paper but the last."""
    layers = [norm3d(norm, channels), nn.PReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers


class ResidualUnit3D(nn.Module):
    """``subunits`` x (conv3x3x3 -> norm -> PReLU), the first with ``stride``, plus the input.

    The input is added unchanged when stride and width are kept; otherwise through a conv
    (3x3x3 with ``stride`` when it downsamples, 1x1x1 when only the width changes), with a
    bias since no norm follows it.

    Args:
        in_channels: input width.
        out_channels: output width.
        stride: stride of the first conv per axis ``(D, H, W)`` (1 or 2).
        subunits: conv -> norm -> PReLU repetitions (>= 1).
        norm: normalisation after each conv.
        dropout: elementwise dropout probability after each PReLU (0: none).
        last_conv_only: the last subunit is a bare conv with a bias (the head's logits).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: Triple = _ONE,
        subunits: int,
        norm: Norm,
        dropout: float,
        last_conv_only: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for j in range(subunits):
            bare = last_conv_only and j == subunits - 1
            layers.append(nn.Conv3d(c_in, out_channels, 3, stride=stride if j == 0 else _ONE,
                                    padding=1, bias=bare or norm is Norm.NONE))
            if not bare:
                layers += _norm_act(out_channels, norm=norm, dropout=dropout)
            c_in = out_channels
        self.body = nn.Sequential(*layers)
        if stride != _ONE:
            self.skip: nn.Module = nn.Conv3d(in_channels, out_channels, 3, stride=stride,
                                             padding=1)
        elif in_channels != out_channels:
            self.skip = nn.Conv3d(in_channels, out_channels, 1)
        else:
            self.skip = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, in_channels, D, H, W)`` -> ``(N, out_channels, D/s_d, H/s_h, W/s_w)``."""
        return self.body(x) + self.skip(x)


def _up(in_channels: int, out_channels: int, stride: Triple, *, norm: Norm,
        dropout: float) -> nn.Sequential:
    """Transposed conv3x3x3 that multiplies each axis by its stride exactly -> norm -> PReLU."""
    conv = nn.ConvTranspose3d(
        in_channels, out_channels, 3, stride=stride, padding=1,
        output_padding=tuple(s - 1 for s in stride), bias=norm is Norm.NONE,
    )
    return nn.Sequential(conv, *_norm_act(out_channels, norm=norm, dropout=dropout))


class ResUNet3DEncoder(nn.Module):
    """The encode path: one residual unit per level, strided except the bottom one.

    ``out_channels = channels``; ``reductions`` per level and axis (the first already 2 on
    every downsampled axis, the bottom's equal to the level above it); ``divisor`` per axis
    ``(D, H, W)``, the product of the strides.

    Args:
        in_channels: input channels (modalities).
        channels: width per level, the last the bottom (>= 2 entries).
        strides: per level but the bottom, the stride per axis (``len(channels) - 1``).
        subunits: conv -> norm -> PReLU per residual unit.
        norm: normalisation; ``dropout``: after each PReLU.
    """

    native_prefix = ""

    def __init__(
        self,
        *,
        in_channels: int,
        channels: Sequence[int],
        strides: Sequence[Triple],
        subunits: int,
        norm: Norm,
        dropout: float,
    ) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        c_in = in_channels
        for width, stride in zip(channels, (*strides, _ONE), strict=True):
            self.levels.append(ResidualUnit3D(c_in, width, stride=stride, subunits=subunits,
                                              norm=norm, dropout=dropout))
            c_in = width
        self.strides = tuple(strides)
        self.out_channels = tuple(channels)
        reductions, current = [], _ONE
        for stride in (*strides, _ONE):
            current = tuple(c * s for c, s in zip(current, stride, strict=True))
            reductions.append(current)
        self.reductions = tuple(reductions)
        self.divisor = reductions[-1]
        init_relu_convs(self, distribution=Distribution.NORMAL)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: (N, in_channels, D, H, W)`` -> one map per level, high to low resolution."""
        features = []
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


class ResUNet3DDecoder(nn.Module):
    """The decode path down to level 0: per level, concatenate the skip, up, residual unit.

    Returns the last concatenation, ``(N, out_channels, D/2, H/2, W/2)`` (level 0's
    resolution): the up-step to the input's resolution is :class:`ResUNet3DHead`'s, since its
    output is the logits.

    Args:
        channels: the encoder's ``out_channels``.
        strides: the encoder's per-level strides (level ``i``'s up-step undoes ``strides[i]``).
        norm: normalisation; ``dropout``: after each PReLU.
    """

    def __init__(self, channels: Sequence[int], strides: Sequence[Triple], *, norm: Norm,
                 dropout: float) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.units = nn.ModuleList()
        deep = channels[-1]  # the bottom's width, at level n-2's resolution
        for i in range(len(channels) - 2, 0, -1):  # deepest first; level 0 is the head's
            self.ups.append(_up(channels[i] + deep, channels[i - 1], strides[i], norm=norm,
                                dropout=dropout))
            self.units.append(ResidualUnit3D(channels[i - 1], channels[i - 1], subunits=1,
                                             norm=norm, dropout=dropout))
            deep = channels[i - 1]
        self.out_channels = channels[0] + deep
        init_relu_convs(self, distribution=Distribution.NORMAL)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Features high to low resolution -> ``cat(features[0], decoded)`` at level 0."""
        x = features[-1]
        for up, unit, skip in zip(self.ups, self.units, features[-2:0:-1], strict=True):
            x = unit(up(torch.cat([skip, x], dim=1)))  # (N, c_{i-1}, ...) one level finer
        return torch.cat([features[0], x], dim=1)  # (N, out_channels, D/2, H/2, W/2)


class ResUNet3DHead(nn.Module):
    """The last decoder level: up to ``num_classes`` maps at the input's resolution, then a
    one-subunit residual unit whose bare conv (Glorot, zero bias) makes the logits.

    Args:
        in_channels: the decoder's ``out_channels``.
        num_classes: ``K``, the logits' channels.
        stride: level 0's stride per axis (undone here).
        norm: normalisation after the up-convolution; ``dropout``: after its PReLU.
    """

    def __init__(self, in_channels: int, num_classes: int, stride: Triple, *, norm: Norm,
                 dropout: float) -> None:
        super().__init__()
        self.up = _up(in_channels, num_classes, stride, norm=norm, dropout=dropout)
        self.unit = ResidualUnit3D(num_classes, num_classes, subunits=1, norm=norm,
                                   dropout=dropout, last_conv_only=True)
        init_relu_convs(self, distribution=Distribution.NORMAL)
        init_classifier(self.unit.body[0])

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """``x: (N, in_channels, D/2, H/2, W/2)`` -> logits ``(N, num_classes, *size)``."""
        return self.unit(self.up(x))


def _check_channels(channels: object) -> tuple[int, ...]:
    values = tuple(channels) if isinstance(channels, (list, tuple)) else ()
    if len(values) < 2 or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in values
    ):
        raise ValueError(
            f"channels={channels!r} is not valid; expected two or more integers >= 1, one "
            "width per level with the bottom last, e.g. (16, 32, 64, 128)"
        )
    return values


def _check_dropout(dropout: object) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
        0 <= dropout < 1
    ):
        raise ValueError(f"dropout={dropout!r} is not valid; expected a number in [0, 1)")
    return float(dropout)


def build_resunet3d(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    channels: Sequence[int] = (16, 32, 64, 128),
    subunits: int = 2,
    norm: Norm | str = Norm.INSTANCE,
    dropout: float = 0.0,
    spacing: Sequence[float] | None = None,
) -> SegmentationModel:
    """The residual 3D U-Net of Kerfoot et al. (2018); input ``(N, C, D, H, W)``.

    Every encoder level is a residual unit whose first conv has stride 2, so the network works
    at half resolution from its first layer; 1,188,345 parameters with 1 input, 3 classes and
    the defaults.

    Options:
        channels: width per level, the last the bottom (``(16, 32, 64, 128)``: three
            downsamplings, divisor 8); two or more.
        subunits: conv -> norm -> PReLU per encoder residual unit (2); the decoder's units
            have one.
        norm: ``"instance"`` (default), ``"batch"``, ``"group"`` or ``"none"``.
        dropout: elementwise dropout after every PReLU (0.0: none).
        spacing: voxel size ``(D, H, W)`` of the training data, or None (isotropic): an axis
            is strided at a level only where nnU-Net's plan downsamples it
            (:func:`segwise.models.volumetric.plan.plan_stages`); kernels stay 3x3x3.
    """
    _check_own_encoder("resunet3d", encoder, pretrained)
    widths = _check_channels(channels)
    _check_positive(subunits, "subunits")
    p = _check_dropout(dropout)
    norm = as_enum(norm, Norm, "norm")
    strides = plan_stages(spacing, len(widths) - 1).strides[1:]  # one per strided level
    enc = ResUNet3DEncoder(in_channels=in_channels, channels=widths, strides=strides,
                           subunits=subunits, norm=norm, dropout=p)
    dec = ResUNet3DDecoder(widths, strides, norm=norm, dropout=p)
    head = ResUNet3DHead(dec.out_channels, num_classes, strides[0], norm=norm, dropout=p)
    return SegmentationModel(enc, dec, head)
