"""Feature Pyramid Network over the segwise encoder contract.

FPN (Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017, section 3): a 1x1
lateral conv per encoder level, a top-down pathway adding the 2x nearest-upsampled coarser map,
and a 3x3 output conv per level, all with ``out_channels`` channels. Level ``l`` has stride
``2**l`` (P2 = 1/4 ... P7 = 1/128). Levels above 5 are extra, computed from the top:

- `ExtraLevels.MAXPOOL`: P6 = max-pool (kernel 1, stride 2) of P5, as in Mask R-CNN
  (torchvision's ``LastLevelMaxPool``) and SOLOv2;
- `ExtraLevels.CONV`: P6 = 3x3 stride-2 conv of P5, P7 = 3x3 stride-2 conv of ReLU(P6), as in
  RetinaNet (Lin et al. 2017b, section 4) and YOLACT (Bolya et al. 2019, section 4).

The lateral/top-down/output convs are torchvision's ``FeaturePyramidNetwork`` (its own
initialisation: Kaiming uniform with ``a=1``, zero bias, as Detectron's), so the neck is what
torchvision's detectors use, fed by any segwise encoder instead of a fixed ResNet.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from enum import Enum

import torch
from torch import nn

from segwise._validation import as_enum

__all__ = ["FPN", "EncoderFPN", "ExtraLevels", "build_encoder_fpn"]

#: the deepest level an encoder provides (stride 32); higher levels are extra
_TOP_ENCODER_LEVEL = 5


class ExtraLevels(str, Enum):
    """How levels above P5 are made (module docstring)."""

    MAXPOOL = "maxpool"
    CONV = "conv"


def _check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    levels = tuple(int(level) for level in levels)
    if not levels or list(levels) != list(range(levels[0], levels[0] + len(levels))):
        raise ValueError(
            f"levels={levels!r}; expected consecutive increasing levels, e.g. (2, 3, 4, 5, 6)"
        )
    if levels[0] < 1 or levels[0] > _TOP_ENCODER_LEVEL:
        raise ValueError(
            f"levels={levels!r}; the first level must be between 1 and {_TOP_ENCODER_LEVEL} "
            "(an encoder level: stride 2 ... 32)"
        )
    return levels


class FPN(nn.Module):
    """Feature pyramid over encoder features (module docstring).

    Args:
        encoder_channels: the encoder's ``out_channels`` (one per feature map).
        encoder_reductions: the encoder's ``reductions`` (stride of each feature map).
        levels: pyramid levels to output, consecutive; level ``l`` has stride ``2**l``.
            Levels up to 5 come from the encoder feature with that stride; levels above 5 are
            extra (``extra``). Default ``(2, 3, 4, 5, 6)`` (Mask R-CNN, SOLOv2); YOLACT uses
            ``(3, 4, 5, 6, 7)``.
        out_channels: channels of every output level (256 in the papers).
        extra: how levels above 5 are made; default `ExtraLevels.CONV` when level 7 is asked
            for, else `ExtraLevels.MAXPOOL`.

    Raises:
        ValueError: levels not consecutive, or an encoder level whose stride the encoder does
            not provide (e.g. level 5 with ``output_stride=16``), naming the strides it has.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_reductions: Sequence[int],
        *,
        levels: Sequence[int] = (2, 3, 4, 5, 6),
        out_channels: int = 256,
        extra: ExtraLevels | str | None = None,
    ) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.levels = _check_levels(levels)
        if extra is None:
            extra = ExtraLevels.CONV if max(self.levels) >= 7 else ExtraLevels.MAXPOOL
        self.extra = as_enum(extra, ExtraLevels, "extra")
        reductions = list(encoder_reductions)
        # an encoder level l comes from the LAST feature with stride 2**l (dilated encoders
        # repeat a stride; the deepest of those features is the richest)
        self.encoder_levels = tuple(lv for lv in self.levels if lv <= _TOP_ENCODER_LEVEL)
        self._indices: list[int] = []
        for lv in self.encoder_levels:
            hits = [i for i, r in enumerate(reductions) if r == 2**lv]
            if not hits:
                raise ValueError(
                    f"FPN level {lv} needs an encoder feature at stride {2**lv}, but the encoder "
                    f"provides strides {tuple(reductions)}; use an encoder built with output "
                    "stride 32 (every ResNet, VGG and Xception encoder), or levels it has"
                )
            self._indices.append(hits[-1])
        if reductions.count(2**_TOP_ENCODER_LEVEL) == 0 and max(self.levels) > _TOP_ENCODER_LEVEL:
            raise ValueError(
                f"extra FPN levels above {_TOP_ENCODER_LEVEL} are computed from P5, but the "
                f"encoder provides strides {tuple(reductions)} (no stride 32)"
            )
        self.out_channels = int(out_channels)
        self.fpn = FeaturePyramidNetwork(
            [int(encoder_channels[i]) for i in self._indices], self.out_channels
        )
        n_extra = len(self.levels) - len(self.encoder_levels)
        self.extra_convs = nn.ModuleList()
        if self.extra is ExtraLevels.CONV:
            for _ in range(n_extra):
                conv = nn.Conv2d(self.out_channels, self.out_channels, 3, stride=2, padding=1)
                nn.init.kaiming_uniform_(conv.weight, a=1)  # as torchvision's LastLevelP6P7
                nn.init.zeros_(conv.bias)
                self.extra_convs.append(conv)
        self._n_extra = n_extra

    def forward(self, features: Sequence[torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        """Pyramid of encoder features.

        Args:
            features: the encoder's output list (high to low resolution, the encoder contract).

        Returns:
            ``{"p<l>": (N, out_channels, ceil(H / 2**l), ceil(W / 2**l))}`` for each level, in
            increasing level order (``H, W``: the encoder's input size).
        """
        picked = OrderedDict(
            (f"p{lv}", features[i])
            for lv, i in zip(self.encoder_levels, self._indices, strict=True)
        )
        out = self.fpn(picked)
        last = out[f"p{self.encoder_levels[-1]}"]
        level = self.encoder_levels[-1]
        for k in range(self._n_extra):
            level += 1
            if self.extra is ExtraLevels.MAXPOOL:
                last = nn.functional.max_pool2d(last, kernel_size=1, stride=2)
            else:
                last = self.extra_convs[k](last if k == 0 else nn.functional.relu(last))
            out[f"p{level}"] = last
        return out


class EncoderFPN(nn.Module):
    """A segwise encoder followed by an `FPN`: the backbone of every detector-style method.

    Has ``out_channels`` (an int, what torchvision's detectors read from a backbone),
    ``levels`` and ``divisor`` (input H and W must be multiples of it; the methods pad).

    Args:
        encoder: a module satisfying the encoder contract (`segwise.models.encoders.base`).
        fpn: an `FPN` built for that encoder's channels and reductions.
    """

    def __init__(self, encoder: nn.Module, fpn: FPN) -> None:
        super().__init__()
        self.encoder = encoder
        self.fpn = fpn
        self.out_channels = fpn.out_channels
        self.levels = fpn.levels
        self.divisor = int(getattr(encoder, "divisor", 1))

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """``x: (N, C, H, W)``, H and W multiples of ``divisor`` -> `FPN.forward`'s dict."""
        if x.shape[-2] % self.divisor or x.shape[-1] % self.divisor:
            raise ValueError(
                f"input of size {tuple(x.shape[-2:])} is not a multiple of the encoder's "
                f"divisor {self.divisor}; pad it first (the instance methods pad for you)"
            )
        return self.fpn(self.encoder(x))


def build_encoder_fpn(
    encoder: str,
    *,
    in_channels: int = 3,
    levels: Sequence[int] = (2, 3, 4, 5, 6),
    out_channels: int = 256,
    extra: ExtraLevels | str | None = None,
    pretrained: bool = False,
) -> EncoderFPN:
    """A registered segwise encoder (output stride 32) with an `FPN` on top.

    Args:
        encoder: a name from ``segwise.models.encoders.ENCODERS`` or ``"timm:<name>"``.
        in_channels: image channels.
        levels, out_channels, extra: see `FPN`.
        pretrained: load the encoder's ImageNet weights (local files only; fails fast).

    Raises:
        ValueError: unknown encoder, or one that lacks a stride the levels need.
    """
    from segwise.models.encoders import build_encoder

    enc = build_encoder(encoder, in_channels=in_channels, output_stride=32, pretrained=pretrained)
    try:
        fpn = FPN(
            enc.out_channels, enc.reductions, levels=levels, out_channels=out_channels, extra=extra
        )
    except ValueError as err:
        raise ValueError(f"encoder {encoder!r} cannot feed an FPN: {err}") from err
    return EncoderFPN(enc, fpn)
