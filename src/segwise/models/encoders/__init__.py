"""Encoders (backbones) and their registry; the contract is in :mod:`.base`.

Registered names: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``xception65``
(aligned Xception, DeepLab v3+'s backbone) from timm; ``vgg16``, ``vgg16_bn``, ``vgg19``,
``vgg19_bn`` (timm weights, dilation added here); ``unet_textbook`` (written here). Any other
timm model that supports ``features_only`` is available as ``"timm:<name>"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from segwise.models.encoders.base import OUTPUT_STRIDES, check_output_stride
from segwise.models.encoders.timm_encoder import TimmEncoder
from segwise.models.encoders.unet_textbook import UNetTextbookEncoder
from segwise.models.encoders.vgg import VGG_NAMES, VGGEncoder
from segwise.models.registry import Registry

__all__ = [
    "ENCODERS",
    "OUTPUT_STRIDES",
    "TIMM_PREFIX",
    "EncoderSpec",
    "TimmEncoder",
    "UNetTextbookEncoder",
    "VGGEncoder",
    "build_encoder",
]

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one registered encoder.

    Attributes:
        build: ``build(in_channels=, output_stride=, pretrained=)`` -> encoder module.
        description: one line for ``segwise models --encoders``.
        imagenet: whether ``weights="imagenet"`` is available.
    """

    build: Callable[..., nn.Module]
    description: str
    imagenet: bool = True


def _timm(name: str) -> Callable[..., nn.Module]:
    def build(*, in_channels: int, output_stride: int, pretrained: bool) -> nn.Module:
        return TimmEncoder(
            name, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained
        )

    return build


def _vgg(name: str) -> Callable[..., nn.Module]:
    def build(*, in_channels: int, output_stride: int, pretrained: bool) -> nn.Module:
        return VGGEncoder(
            name, in_channels=in_channels, output_stride=output_stride, pretrained=pretrained
        )

    return build


def _unet_textbook(*, in_channels: int, output_stride: int, pretrained: bool) -> nn.Module:
    check_output_stride(output_stride, "unet_textbook", (16, 32))
    if pretrained:
        raise ValueError(
            "weights='imagenet' is not valid for encoder 'unet_textbook' (it has no pretrained "
            "weights); expected weights=None or a path to a local state_dict file"
        )
    return UNetTextbookEncoder(in_channels=in_channels)


ENCODERS: Registry[EncoderSpec] = Registry("encoder")
for _name, _depth in (("resnet18", 18), ("resnet34", 34), ("resnet50", 50), ("resnet101", 101)):
    ENCODERS.register(
        _name, EncoderSpec(_timm(_name), f"ResNet-{_depth} (timm), features at strides 2..32")
    )
ENCODERS.register(
    "xception65",
    EncoderSpec(_timm("xception65"), "aligned Xception-65 (timm), DeepLab v3+'s backbone"),
)
for _name in VGG_NAMES:
    ENCODERS.register(
        _name, EncoderSpec(_vgg(_name), f"{_name} (timm weights), pool1..pool5, dilatable")
    )
ENCODERS.register(
    "unet_textbook",
    EncoderSpec(
        _unet_textbook,
        "textbook U-Net contracting path, widths 64..1024, strides 1..16",
        imagenet=False,
    ),
)


def build_encoder(
    name: str, *, in_channels: int = 3, output_stride: int = 32, pretrained: bool = False
) -> nn.Module:
    """Build a registered encoder, or any timm features model as ``"timm:<name>"``.

    Args:
        name: a name from :data:`ENCODERS` or ``"timm:<timm model name>"``.
        in_channels: input channels.
        output_stride: 8, 16 or 32 (``unet_textbook``: always 16; 16 and 32 both accepted).
        pretrained: load ImageNet weights (fails fast when unavailable).

    Raises:
        ValueError: unknown name, unsupported output stride, or no pretrained weights.
    """
    if not isinstance(name, str):
        raise ValueError(f"encoder={name!r} is not valid; expected a string name")
    if name.startswith(TIMM_PREFIX):
        return TimmEncoder(
            name[len(TIMM_PREFIX) :],
            in_channels=in_channels,
            output_stride=output_stride,
            pretrained=pretrained,
        )
    spec = ENCODERS.get(name, hint=f"or '{TIMM_PREFIX}<timm model name>'")
    return spec.build(in_channels=in_channels, output_stride=output_stride, pretrained=pretrained)
