"""Parameter counts against the papers and torchvision's builders."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.segmentation import deeplabv3_resnet50, fcn_resnet50

from segwise.models import create_model


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_textbook_unet_has_31_04_m_parameters():
    model = create_model("unet_textbook", in_channels=3, num_classes=2, upsampling="transposed")
    assert _count(model) == 31_037_698  # milesial/Pytorch-UNet UNet(3, 2, bilinear=False) too


def test_textbook_unet_bilinear_count_follows_from_the_layer_widths():
    # per level of width c: no 2x2 transposed conv (8c^2 + c), first conv sees 3c not 2c (+9c^2)
    delta = sum(c * c - c for c in (512, 256, 128, 64))
    model = create_model("unet_textbook", num_classes=2, upsampling="bilinear")
    assert _count(model) == 31_037_698 + delta


@pytest.mark.parametrize("aux", [False, True])
def test_fcn_resnet50_matches_torchvision_exactly(aux):
    ours = create_model("fcn", encoder="resnet50", num_classes=21, aux=aux)
    ref = fcn_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=aux)
    assert _count(ours) == _count(ref)


@pytest.mark.parametrize("aux", [False, True])
def test_deeplabv3_resnet50_is_torchvision_minus_the_pooling_batchnorm(aux):
    """Image pooling: conv bias (256) instead of BatchNorm weight+bias (512), see ASPP."""
    ours = create_model("deeplabv3", encoder="resnet50", num_classes=21, aux=aux)
    ref = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=aux)
    assert _count(ours) == _count(ref) - 256


def test_deeplabv3_group_norm_matches_torchvision_count():
    """GroupNorm in the pooling branch has BatchNorm's 512 parameters, no conv bias."""
    ours = create_model("deeplabv3", encoder="resnet50", num_classes=21, norm="group")
    ref = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21)
    assert _count(ours) == _count(ref)


@pytest.mark.slow
def test_fcn8s_vgg16_count_matches_the_caffe_layers():
    k = 21
    vgg16_convs = 14_714_688
    fc6, fc7 = 512 * 49 * 4096 + 4096, 4096 * 4096 + 4096
    scores = (4096 + 1) * k + (512 + 1) * k + (256 + 1) * k  # score_fr, score_pool4, pool3
    upscores = k * k * (4 * 4 + 4 * 4 + 16 * 16)  # upscore2, upscore_pool4, upscore8: no bias
    model = create_model("fcn8s", encoder="vgg16", num_classes=k)
    assert _count(model) == vgg16_convs + fc6 + fc7 + scores + upscores


def test_vgg16_encoder_matches_torchvision_features():
    from torchvision.models.vgg import cfgs, make_layers  # vgg16().features without fc layers

    ours = create_model("fcn32s", encoder="vgg16", num_classes=2, fc_channels=8).encoder
    ref = make_layers(cfgs["D"], batch_norm=False)
    assert _count(ours) == _count(ref) == 14_714_688
    assert list(ours.state_dict()) == [f"features.{k}" for k in ref.state_dict()]
