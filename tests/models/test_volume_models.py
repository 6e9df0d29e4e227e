"""The 3D models (docs/models.md, "3D models"): the spacing plan by hand, the paper's
parameter count, the init policy, nnU-Net's layers, and errors that name the bad value."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from segwise.models import create_model
from segwise.models.volumetric import plan_stages

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_isotropic_plan_pools_every_axis_with_3x3x3_kernels():
    plan = plan_stages(None, 3)
    assert plan.kernels == ((3, 3, 3),) * 4
    assert plan.strides == ((1, 1, 1),) + ((2, 2, 2),) * 3
    assert plan.divisor == (8, 8, 8)
    assert plan_stages((1.0, 1.0, 1.0), 3) == plan


def test_thick_slices_are_pooled_in_plane_first_as_nnunet_plans():
    # spacing (D, H, W) = (3, 0.8, 0.8): 3 > 2 * 0.8, so stage 0 has kernel 1 across slices
    # and the first pooling is in-plane only; then (3, 1.6, 1.6): 3 <= 3.2, every axis
    plan = plan_stages((3.0, 0.8, 0.8), 3)
    assert plan.kernels == ((1, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3))
    assert plan.strides == ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2))
    assert plan.reductions == ((1, 1, 1), (1, 2, 2), (2, 4, 4), (4, 8, 8))
    assert plan.divisor == (4, 8, 8)
    # (5, 1, 1): two in-plane poolings before the slices join
    plan = plan_stages((5.0, 1.0, 1.0), 3)
    assert plan.strides == ((1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2))
    assert plan.kernels == ((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3))


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.0, 1.0, 1.0), "1mm", (1.0, float("nan"), 1)])
def test_bad_spacing_is_named(spacing):
    with pytest.raises(ValueError, match=r"spacing=.* is not valid; expected None or three"):
        create_model("unet3d", num_classes=2, spacing=spacing)


def test_the_anisotropic_plan_is_the_models_layers():
    model = create_model("unet3d", num_classes=2, base_width=4, spacing=(3.0, 0.8, 0.8))
    assert model.encoder.divisor == (4, 8, 8)
    assert model.encoder.stages[0][0][0].kernel_size == (1, 3, 3)
    assert model.encoder.stages[1][0].kernel_size == (1, 2, 2)  # the max-pool
    assert [up.stride for up in model.decoder.ups] == [(2, 2, 2), (2, 2, 2), (1, 2, 2)]
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 5, 9, 11)).shape == (1, 2, 5, 9, 11)


def test_textbook_3d_unet_has_the_papers_parameters():
    """Çiçek et al. 2016: 19,069,955 parameters (3 inputs, 3 labels): convs with biases, no
    norm parameters, up-convolutions without biases (512 + 256 + 128 = 896)."""
    model = create_model("unet3d", num_classes=3, norm="none")
    total = sum(p.numel() for p in model.parameters())
    assert total - 896 == 19_069_955
    assert [m.out_channels for m in model.encoder.modules() if isinstance(m, nn.Conv3d)] == [
        32, 64, 64, 128, 128, 256, 256, 512]
    assert sum(isinstance(m, nn.BatchNorm3d) for m in create_model("unet3d", num_classes=3)
               .modules()) == 14  # the default: the paper's batch norm before each ReLU


def test_resenc_unet3d_is_nnunets_residual_encoder():
    model = create_model("resenc_unet3d", num_classes=3, depth=5, base_width=32)
    assert model.encoder.out_channels == (32, 64, 128, 256, 320, 320)
    assert [len(s) for s in model.encoder.stages] == [1, 3, 4, 6, 6, 6]
    assert not any(isinstance(m, (nn.BatchNorm3d, nn.MaxPool3d, nn.ReLU)) for m in model.modules())
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert norms and all(n.affine for n in norms)
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert acts and all(a.negative_slope == 0.01 for a in acts)
    first = model.encoder.stages[1][0]
    assert first.body[0][0].stride == (2, 2, 2)  # downsampling by a strided conv
    assert isinstance(first.skip[0], nn.AvgPool3d)  # the input pooled and projected (BasicBlockD)
    assert len(model.decoder.blocks[0]) == 1  # one conv block per decoder stage


@pytest.mark.parametrize(("option", "value", "match"), [
    ("blocks_per_stage", (1, 2), r"blocks_per_stage=\(1, 2\) is not valid; expected 4"),
    ("depth", 0, r"depth=0 is not valid"),
    ("base_width", 0, r"base_width=0 is not valid"),
    ("norm", "layer", r"norm='layer'"),
])
def test_bad_options_are_named(option, value, match):
    with pytest.raises(ValueError, match=match):
        create_model("resenc_unet3d", num_classes=2, **{"depth": 3, option: value})


def test_2d_encoders_and_imagenet_weights_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"encoder='resnet18' is not valid for 'unet3d'"):
        create_model("unet3d", encoder="resnet18", num_classes=2)
    with pytest.raises(ValueError, match=r"weights='imagenet' is not valid for 'resenc_unet3d'"):
        create_model("resenc_unet3d", num_classes=2, weights="imagenet")


@pytest.mark.parametrize("name", ["unet3d", "resenc_unet3d"])
def test_init_policy_is_the_2d_models(name):
    """He Gaussian (variance 2 / fan_in) for every conv, norms 1/0, up-convs N(0, 1/fan_in),
    Glorot classifier with zero bias (segwise.models.init)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, base_width=16, max_width=64, depth=3) \
        if name == "resenc_unet3d" else create_model(name, num_classes=5, base_width=16)
    checked = 0
    for mod_name, m in model.named_modules():
        if isinstance(m, nn.Conv3d) and "classifier" not in mod_name and m.weight.numel() > 5000:
            fan_in = nn.init._calculate_fan_in_and_fan_out(m.weight)[0]
            assert float(m.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
            checked += 1
        if isinstance(m, nn.ConvTranspose3d):
            taps = zip(m.kernel_size, m.stride, strict=True)
            fan_in = m.in_channels * math.prod(k // s for k, s in taps)
            assert float(m.weight.detach().std()) == pytest.approx(1 / math.sqrt(fan_in), rel=0.1)
        if isinstance(m, (nn.BatchNorm3d, nn.InstanceNorm3d)):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert checked >= 5
    head = model.head.classifier
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(head.weight)
    assert float(head.weight.detach().abs().max()) <= math.sqrt(6 / (fan_in + fan_out))
    assert torch.count_nonzero(head.bias) == 0
