"""Encoder contract: channels, reductions, dilation (VGG, Xception), in_channels."""

from __future__ import annotations

import pytest
import torch

from segwise.models.encoders import ENCODERS, build_encoder
from segwise.models.registry import Registry


def _check_contract(encoder, in_channels=3, size=64):
    features = encoder(torch.randn(1, in_channels, size, size))
    assert len(features) == len(encoder.out_channels) == len(encoder.reductions)
    for feature, channels, reduction in zip(
        features, encoder.out_channels, encoder.reductions, strict=True
    ):
        assert feature.shape == (1, channels, size // reduction, size // reduction)
    assert list(encoder.reductions) == sorted(encoder.reductions)  # high to low resolution
    assert size % encoder.divisor == 0


@pytest.mark.parametrize(
    ("name", "output_stride", "reductions"),
    [
        ("resnet18", 32, (2, 4, 8, 16, 32)),
        ("resnet18", 8, (2, 4, 8, 8, 8)),
        ("vgg16", 32, (2, 4, 8, 16, 32)),
        ("vgg16_bn", 16, (2, 4, 8, 16, 16)),
        ("vgg19", 8, (2, 4, 8, 8, 8)),
        ("unet_textbook", 16, (1, 2, 4, 8, 16)),
        pytest.param("xception65", 16, (2, 4, 8, 16, 16), marks=pytest.mark.slow),
        pytest.param("xception65", 8, (2, 4, 8, 8, 8), marks=pytest.mark.slow),
    ],
)
def test_encoder_contract_and_output_stride(name, output_stride, reductions):
    encoder = build_encoder(name, output_stride=output_stride).eval()
    assert encoder.reductions == reductions
    with torch.no_grad():
        _check_contract(encoder)


def test_vgg_dilation_keeps_the_receptive_field_growing():
    encoder = build_encoder("vgg16", output_stride=8)
    convs = [m for m in encoder.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.dilation[0] for c in convs] == [1] * 10 + [2] * 3  # conv5_x dilated by 2
    assert all(c.padding == c.dilation for c in convs)


@pytest.mark.parametrize("in_channels", [1, 4])
def test_in_channels(in_channels):
    encoder = build_encoder("resnet18", in_channels=in_channels).eval()
    with torch.no_grad():
        _check_contract(encoder, in_channels=in_channels)


def test_timm_prefix_and_errors():
    encoder = build_encoder("timm:mobilenetv3_small_050").eval()
    with torch.no_grad():
        _check_contract(encoder)
    with pytest.raises(ValueError, match=r"encoder='nope' is not valid.*'resnet34'"):
        build_encoder("nope")
    with pytest.raises(ValueError, match="timm has no model 'nope'"):
        build_encoder("timm:nope")
    with pytest.raises(ValueError, match=r"output_stride=4 is not valid.*8, 16, 32"):
        build_encoder("resnet18", output_stride=4)
    with pytest.raises(
        ValueError, match="output_stride=8 is not valid for encoder 'unet_textbook'"
    ):
        build_encoder("unet_textbook", output_stride=8)


def test_registry_refuses_duplicates():
    registry: Registry[int] = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        registry.register("a", 2)
    with pytest.raises(ValueError, match="resnet18"):
        ENCODERS.register("resnet18", ENCODERS.get("resnet18"))


_HEAVY = {"resnet101", "xception65", "vgg19", "vgg19_bn"}  # seconds each on a CPU: slow tier


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in _HEAVY else n for n in ENCODERS.names()
])
def test_every_registered_encoder_keeps_the_contract_at_its_default_stride(name):
    """The sweep reads the registry, so the default ``resnet34`` and any new encoder are in it."""
    encoder = build_encoder(name).eval()
    with torch.no_grad():
        _check_contract(encoder)
