"""The 3D U-Nets: the textbook one (Çiçek et al. 2016) and nnU-Net's residual-encoder U-Net.

Both are ``SegmentationModel(encoder, decoder, head)`` like the 2D models; the encoder's
``divisor`` is per axis ``(D, H, W)`` and the model pads every axis to it and crops back.

- ``unet3d`` (Çiçek et al. 2016, Fig. 1): per level two 3x3x3 conv -> norm -> ReLU, the first
  to ``base_width * 2**i`` channels, the second doubling them (32, 64 | 64, 128 | 128, 256 |
  256, 512 with the paper's ``base_width=32``), 2x2x2 max-pooling; the decoder up-convolves
  (2x2x2, stride 2, keeping the width), concatenates the skip and runs two 3x3x3 convs to the
  skip's width; a 1x1x1 classifier. BatchNorm before each ReLU as in the paper.
- ``resenc_unet3d`` (nnU-Net's ``ResidualEncoderUNet``, Isensee et al. 2021 and 2024):
  widths ``min(32 * 2**i, 320)``; a stem conv, then per stage residual blocks (conv -> norm ->
  LeakyReLU(0.01) -> conv -> norm, plus the input, average-pooled and 1x1-projected when the
  stride or width changes, -> LeakyReLU), the first block of a stage downsampling by a strided
  conv; instance norm; the decoder up-convolves to the skip's width, concatenates, one conv
  block per stage. nnU-Net's deep supervision heads are left out (one output, the contract).

Init (:mod:`segwise.models.init`), as the 2D models: He for every conv, in the Gaussian form
(the 2D textbook U-Net's; nnU-Net's ``InitWeights_He(1e-2)`` is He for LeakyReLU
with slope 0.01, a gain 0.005 % below ReLU's), norms scale 1 / shift 0, up-convolutions
``N(0, 1 / fan_in)``, Glorot classifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from segwise._validation import as_enum
from segwise.models.blocks import Norm
from segwise.models.init import Distribution, init_classifier, init_relu_convs
from segwise.models.segmentation_model import SegmentationModel
from segwise.models.volumetric.plan import StagePlan, plan_stages

__all__ = [
    "ResEncoder3D",
    "UNet3DDecoder",
    "UNet3DEncoder",
    "VolumeHead",
    "build_resenc_unet3d",
    "build_unet3d",
]

Triple = tuple[int, int, int]

#: nnU-Net's ResEnc U-Net blocks per encoder stage (ResEncUNet presets, 3d_fullres)
RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6)


def norm3d(norm: Norm | str, channels: int) -> nn.Module:
    """The 3D normalisation layer for ``channels`` feature maps (``nn.Identity`` for NONE)."""
    norm = as_enum(norm, Norm, "norm")
    if norm is Norm.BATCH:
        return nn.BatchNorm3d(channels)
    if norm is Norm.GROUP:
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if norm is Norm.INSTANCE:
        return nn.InstanceNorm3d(channels, affine=True)  # nnU-Net: eps 1e-5, affine
    return nn.Identity()


def _act(negative_slope: float) -> nn.Module:
    return nn.LeakyReLU(negative_slope, inplace=True) if negative_slope else nn.ReLU(inplace=True)


def conv_norm_act3d(
    in_channels: int,
    out_channels: int,
    kernel: Triple,
    *,
    stride: Triple = (1, 1, 1),
    norm: Norm | str,
    negative_slope: float = 0.0,
    act: bool = True,
) -> nn.Sequential:
    """Conv3d (``same`` padding) -> norm -> (Leaky)ReLU; a conv bias only without a norm."""
    norm = as_enum(norm, Norm, "norm")
    conv = nn.Conv3d(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=tuple(k // 2 for k in kernel),
        bias=norm is Norm.NONE,
    )
    layers = [conv, norm3d(norm, out_channels)]
    if act:
        layers.append(_act(negative_slope))
    return nn.Sequential(*layers)


class UNet3DEncoder(nn.Module):
    """Çiçek et al.'s analysis path: per stage (max-pool, two conv -> norm -> ReLU).

    ``out_channels = (2b, 4b, ..., 2**(depth+1) b)`` with ``b = base_width``, ``reductions``
    per axis from the plan, ``divisor`` per axis ``(D, H, W)``.
    """

    native_prefix = ""

    def __init__(self, *, in_channels: int, base_width: int, plan: StagePlan, norm: Norm | str):
        super().__init__()
        self.stages = nn.ModuleList()
        c_in = in_channels
        for i, (kernel, stride) in enumerate(zip(plan.kernels, plan.strides, strict=True)):
            first, second = base_width * 2**i, base_width * 2 ** (i + 1)
            pool = [nn.MaxPool3d(stride, stride)] if i else []
            self.stages.append(nn.Sequential(
                *pool,
                conv_norm_act3d(c_in, first, kernel, norm=norm),
                conv_norm_act3d(first, second, kernel, norm=norm),
            ))
            c_in = second
        self.out_channels = tuple(base_width * 2 ** (i + 1) for i in range(len(plan.strides)))
        self.reductions = plan.reductions
        self.divisor = plan.divisor
        init_relu_convs(self, distribution=Distribution.NORMAL)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: (N, in_channels, D, H, W)`` -> one map per stage, high to low resolution."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class ResidualBlock3D(nn.Module):
    """nnU-Net's ``BasicBlockD``: conv-norm-act-conv-norm plus the (pooled, projected) input."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple, *, norm: Norm
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_act3d(in_channels, out_channels, kernel, stride=stride, norm=norm,
                            negative_slope=0.01),
            conv_norm_act3d(out_channels, out_channels, kernel, norm=norm, act=False),
        )
        skip: list[nn.Module] = []
        if stride != (1, 1, 1):
            skip.append(nn.AvgPool3d(stride, stride))
        if in_channels != out_channels:
            skip.append(conv_norm_act3d(in_channels, out_channels, (1, 1, 1), norm=norm, act=False))
        self.skip = nn.Sequential(*skip)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResEncoder3D(nn.Module):
    """nnU-Net's residual encoder: stem conv, then per stage ``blocks[i]`` residual blocks,
    the first with the stage's stride (a strided conv, no pooling layer)."""

    native_prefix = ""

    def __init__(
        self,
        *,
        in_channels: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        plan: StagePlan,
        norm: Norm,
    ) -> None:
        super().__init__()
        self.stem = conv_norm_act3d(in_channels, widths[0], plan.kernels[0], norm=norm,
                                    negative_slope=0.01)
        self.stages = nn.ModuleList()
        c_in = widths[0]
        for width, n, kernel, stride in zip(widths, blocks, plan.kernels, plan.strides,
                                            strict=True):
            self.stages.append(nn.Sequential(*(
                ResidualBlock3D(c_in if j == 0 else width, width, kernel,
                                stride if j == 0 else (1, 1, 1), norm=norm)
                for j in range(n)
            )))
            c_in = width
        self.out_channels = tuple(widths)
        self.reductions = plan.reductions
        self.divisor = plan.divisor
        init_relu_convs(self, distribution=Distribution.NORMAL)  # nnU-Net's kaiming_normal_

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x: (N, in_channels, D, H, W)`` -> one map per stage, high to low resolution."""
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class UNet3DDecoder(nn.Module):
    """Up-convolve (kernel = stride), concatenate the skip, ``convs`` conv blocks, per stage.

    Args:
        channels: the encoder's ``out_channels``.
        plan: the encoder's :class:`StagePlan` (strides and kernels per stage).
        convs: conv blocks after each concatenation (2 textbook, 1 nnU-Net ResEnc).
        keep_width: the up-convolution keeps the deeper width (Çiçek et al.) instead of
            reducing it to the skip's (nnU-Net).
        norm: normalisation; ``negative_slope``: 0 for ReLU, 0.01 for nnU-Net's LeakyReLU.
    """

    def __init__(
        self,
        channels: Sequence[int],
        plan: StagePlan,
        *,
        convs: int,
        keep_width: bool,
        norm: Norm | str,
        negative_slope: float,
    ) -> None:
        super().__init__()
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        deep = channels[-1]
        for i in range(len(channels) - 2, -1, -1):  # deepest skip first
            skip, stride = channels[i], plan.strides[i + 1]
            up = deep if keep_width else skip
            self.ups.append(nn.ConvTranspose3d(deep, up, stride, stride=stride))
            self.blocks.append(nn.Sequential(*(
                conv_norm_act3d(up + skip if j == 0 else skip, skip, plan.kernels[i], norm=norm,
                                negative_slope=negative_slope)
                for j in range(convs)
            )))
            deep = skip
        self.out_channels = channels[0]
        init_relu_convs(self, distribution=Distribution.NORMAL)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Features high to low resolution -> ``(N, channels[0], D, H, W)`` at stage 0's size."""
        x = features[-1]
        for up, block, skip in zip(self.ups, self.blocks, features[-2::-1], strict=True):
            x = block(torch.cat([up(x), skip], dim=1))  # (N, up + skip, d, h, w)
        return x


class VolumeHead(nn.Module):
    """1x1x1 classifier (Glorot, zero bias); the decoder is already at the input's size."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Conv3d(in_channels, num_classes, 1)
        init_classifier(self.classifier)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """``x: (N, in_channels, D, H, W)`` -> logits ``(N, num_classes, D, H, W)``."""
        return self.classifier(x)


def _check_positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid; expected an integer >= 1")


def _check_own_encoder(name: str, encoder: str, pretrained: bool) -> None:
    if encoder != name:
        raise ValueError(
            f"encoder={encoder!r} is not valid for {name!r}; expected {name!r} (its own 3D "
            "encoder; the 2D encoders take (N, C, H, W) images)"
        )
    if pretrained:
        raise ValueError(
            f"weights='imagenet' is not valid for {name!r}; expected None or a local file"
        )


def build_unet3d(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    base_width: int = 32,
    depth: int = 3,
    norm: Norm | str = Norm.BATCH,
    spacing: Sequence[float] | None = None,
) -> SegmentationModel:
    """The 3D U-Net of Çiçek et al. (2016), padded convs; input ``(N, C, D, H, W)``.

    19,073,187 parameters with 3 inputs, 3 classes and the defaults. The paper's 19,069,955
    is the count with ``norm="none"`` (conv biases, no norm parameters: Caffe's BatchNorm
    learns none) less the 896 biases of the up-convolutions.

    Options:
        base_width: width of the first conv (32); level ``i`` has ``base_width * 2**i`` then
            ``base_width * 2**(i + 1)`` channels.
        depth: number of poolings (3).
        norm: ``"batch"`` (default, the paper's), ``"instance"``, ``"group"`` or ``"none"``.
        spacing: voxel size ``(D, H, W)`` of the training data, or None (isotropic): pooling
            and kernels per axis follow it as nnU-Net plans them
            (:func:`segwise.models.volumetric.plan.plan_stages`).
    """
    _check_own_encoder("unet3d", encoder, pretrained)
    _check_positive(base_width, "base_width")
    plan = plan_stages(spacing, depth)
    enc = UNet3DEncoder(in_channels=in_channels, base_width=base_width, plan=plan, norm=norm)
    dec = UNet3DDecoder(enc.out_channels, plan, convs=2, keep_width=True, norm=norm,
                        negative_slope=0.0)
    return SegmentationModel(enc, dec, VolumeHead(dec.out_channels, num_classes))


def build_resenc_unet3d(
    *,
    encoder: str,
    in_channels: int,
    num_classes: int,
    pretrained: bool,
    base_width: int = 32,
    max_width: int = 320,
    depth: int = 5,
    blocks_per_stage: Sequence[int] | None = None,
    norm: Norm | str = Norm.INSTANCE,
    spacing: Sequence[float] | None = None,
) -> SegmentationModel:
    """nnU-Net's residual-encoder 3D U-Net (instance norm, LeakyReLU 0.01, strided convs).

    Options:
        base_width: width of the first stage (32, nnU-Net's); stage ``i`` has
            ``min(base_width * 2**i, max_width)`` channels.
        max_width: the width cap (320, nnU-Net's for 3D).
        depth: number of downsamplings (5).
        blocks_per_stage: residual blocks per encoder stage, ``depth + 1`` numbers; default
            nnU-Net's ``(1, 3, 4, 6, 6, 6, ...)``.
        norm: ``"instance"`` (default, nnU-Net's), ``"batch"``, ``"group"`` or ``"none"``.
        spacing: voxel size ``(D, H, W)`` of the training data, or None (isotropic); strides
            and kernels per axis as nnU-Net plans them
            (:func:`segwise.models.volumetric.plan.plan_stages`).
    """
    _check_own_encoder("resenc_unet3d", encoder, pretrained)
    _check_positive(base_width, "base_width")
    _check_positive(max_width, "max_width")
    plan = plan_stages(spacing, depth)
    norm = as_enum(norm, Norm, "norm")
    if blocks_per_stage is None:
        blocks = tuple(RESENC_BLOCKS[: depth + 1]) + (6,) * max(0, depth + 1 - len(RESENC_BLOCKS))
    else:
        blocks = tuple(blocks_per_stage)
        if len(blocks) != depth + 1 or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in blocks
        ):
            raise ValueError(
                f"blocks_per_stage={blocks_per_stage!r} is not valid; expected {depth + 1} "
                "integers >= 1 (one per stage: depth + 1)"
            )
    widths = [min(base_width * 2**i, max_width) for i in range(depth + 1)]
    enc = ResEncoder3D(in_channels=in_channels, widths=widths, blocks=blocks, plan=plan, norm=norm)
    dec = UNet3DDecoder(enc.out_channels, plan, convs=1, keep_width=False, norm=norm,
                        negative_slope=0.01)
    return SegmentationModel(enc, dec, VolumeHead(dec.out_channels, num_classes))
