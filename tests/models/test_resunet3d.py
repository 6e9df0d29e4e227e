"""``resunet3d``, the residual 3D U-Net of Kerfoot et al. 2018 (docs/models.md, "3D models"):
the parameter count by hand, odd sizes, the spacing plan, where it computes at full
resolution, gradients, init, checkpoints, the listing, and errors that name the bad value."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from segwise.cli.main import main
from segwise.models import create_model
from segwise.runs.builders import build_model_from_args
from segwise.runs.checkpoint import build_model_from_checkpoint, load_checkpoint, save_checkpoint
from segwise.runs.model_args import complete_model_args

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(**options):
    return create_model("resunet3d", in_channels=1, num_classes=2,
                        **{"channels": (4, 8), "subunits": 1, **options})


def test_parameter_count_of_a_tiny_config_by_hand():
    # channels (4, 8), subunits 1, 1 input, 2 classes, instance norm (affine: scale + shift
    # per channel), one PReLU slope per layer; convs followed by a norm have no bias.
    level0 = (
        27 * 1 * 4        # conv3x3x3 1->4, stride 2                        108
        + 2 * 4           # instance norm, 4 channels                         8
        + 1               # PReLU                                             1
        + 27 * 1 * 4 + 4  # skip: conv3x3x3 1->4 stride 2, with bias        112
    )                     #                                                 229
    bottom = (
        27 * 4 * 8        # conv3x3x3 4->8, stride 1                        864
        + 2 * 8           # instance norm                                    16
        + 1               # PReLU                                             1
        + 4 * 8 + 8       # skip: conv1x1x1 4->8 (width changes), bias       40
    )                     #                                                 921
    head = (              # input: cat(level 0, bottom) = 4 + 8 = 12 channels at 1/2
        27 * 12 * 2       # transposed conv3x3x3 12->2, stride 2            648
        + 2 * 2           # instance norm                                     4
        + 1               # PReLU                                             1
        + 27 * 2 * 2 + 2  # the logits conv3x3x3 2->2 with bias; identity   110
    )                     #                                                 763
    assert level0 + bottom + head == 1913
    assert sum(p.numel() for p in _tiny().parameters()) == 1913


def test_the_default_is_papers_four_levels_with_two_subunits():
    model = create_model("resunet3d", in_channels=1, num_classes=3)
    assert sum(p.numel() for p in model.parameters()) == 1_188_345
    assert model.encoder.out_channels == (16, 32, 64, 128)
    assert model.encoder.reductions == ((2, 2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8))
    assert model.encoder.divisor == (8, 8, 8)
    first = model.encoder.levels[0]
    assert [m.stride for m in first.body if isinstance(m, nn.Conv3d)] == [(2, 2, 2), (1, 1, 1)]
    assert first.skip.stride == (2, 2, 2) and first.skip.kernel_size == (3, 3, 3)
    bottom = model.encoder.levels[-1]
    assert isinstance(bottom.skip, nn.Conv3d) and bottom.skip.kernel_size == (1, 1, 1)
    assert bottom.body[0].stride == (1, 1, 1)
    assert all(isinstance(u.skip, nn.Identity) for u in model.decoder.units)
    assert [up[0].out_channels for up in model.decoder.ups] == [32, 16]
    assert model.head.up[0].out_channels == 3
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert norms and all(n.affine for n in norms)
    assert sum(isinstance(m, nn.PReLU) for m in model.modules()) == 4 * 2 + 2 * 2 + 1
    assert not any(isinstance(m, (nn.Dropout, nn.BatchNorm3d)) for m in model.modules())


@pytest.mark.parametrize("size", [(19, 23, 29), (7, 13, 5), (3, 9, 17)])
def test_odd_sizes_are_padded_to_the_divisor_and_cropped_back(size):
    model = create_model("resunet3d", in_channels=2, num_classes=3,
                         channels=(4, 8, 16), subunits=2).eval()
    assert model.encoder.divisor == (4, 4, 4)
    with torch.no_grad():
        assert model(torch.randn(2, 2, *size)).shape == (2, 3, *size)


def test_only_the_head_works_at_full_resolution_and_only_with_num_classes_maps():
    """The cost class: the first level already strides, so every conv wider than K runs at
    half resolution or coarser (unet3d and resenc_unet3d run their first widths at full)."""
    model = create_model("resunet3d", in_channels=1, num_classes=3).eval()
    full = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: full.append((n, o.shape[1]))
                                     if tuple(o.shape[2:]) == (16, 24, 16) else None)
             for n, m in model.named_modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    with torch.no_grad():
        model(torch.randn(1, 1, 16, 24, 16))
    for hook in hooks:
        hook.remove()
    assert full == [("head.up.0", 3), ("head.unit.body.0", 3)]


def test_anisotropic_spacing_keeps_stride_1_across_thick_slices_at_the_first_level():
    # spacing (D, H, W) = (3, 0.8, 0.8): nnU-Net's plan pools in-plane only at first
    model = create_model("resunet3d", in_channels=1, num_classes=2, spacing=(3.0, 0.8, 0.8))
    assert model.encoder.strides == ((1, 2, 2), (2, 2, 2), (2, 2, 2))
    assert model.encoder.divisor == (4, 8, 8)
    first = model.encoder.levels[0]
    assert first.body[0].stride == (1, 2, 2) and first.skip.stride == (1, 2, 2)
    assert first.body[0].kernel_size == (3, 3, 3)  # kernels stay the paper's
    assert model.head.up[0].stride == (1, 2, 2)
    assert model.head.up[0].output_padding == (0, 1, 1)
    assert [up[0].stride for up in model.decoder.ups] == [(2, 2, 2), (2, 2, 2)]
    assert model.encoder.reductions[0] == (1, 2, 2)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 5, 9, 11)).shape == (1, 2, 5, 9, 11)


def test_gradient_reaches_every_parameter_with_dropout_and_three_subunits():
    torch.manual_seed(0)
    model = create_model("resunet3d", in_channels=2, num_classes=4, channels=(4, 8, 8),
                         subunits=3, dropout=0.2, norm="group").train()
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 3 * 3 + 2 + 1
    logits = model(torch.randn(2, 2, 9, 10, 11))
    nn.functional.cross_entropy(logits, torch.randint(0, 4, (2, 9, 10, 11))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_every_norm_builds_and_none_gives_biases(norm):
    model = create_model("resunet3d", in_channels=1, num_classes=2, channels=(4, 8),
                         norm=norm).train()
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    assert all((c.bias is not None) for c in convs) == (norm == "none")
    assert model(torch.randn(2, 1, 6, 7, 8)).shape == (2, 2, 6, 7, 8)


def test_init_policy_is_the_other_3d_models():
    """He Gaussian (variance 2 / fan_in) for every conv, norms 1/0, up-convs N(0, 1/fan_in)
    (segwise.models.init.init_upconv's fan-in), the logits conv Glorot with zero bias."""
    torch.manual_seed(0)
    model = create_model("resunet3d", in_channels=1, num_classes=5, channels=(16, 32, 64))
    logits_conv = model.head.unit.body[0]
    checked = 0
    for m in model.modules():
        if isinstance(m, nn.Conv3d) and m is not logits_conv and m.weight.numel() > 5000:
            fan_in = nn.init._calculate_fan_in_and_fan_out(m.weight)[0]
            assert float(m.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
            checked += 1
        if isinstance(m, nn.ConvTranspose3d):
            taps = math.prod(max(1, k // s) for k, s in zip(m.kernel_size, m.stride, strict=True))
            assert float(m.weight.detach().std()) == pytest.approx(
                1 / math.sqrt(m.in_channels * taps), rel=0.15)
        if isinstance(m, nn.InstanceNorm3d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert checked >= 5
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(logits_conv.weight)
    assert float(logits_conv.weight.detach().abs().max()) <= math.sqrt(6 / (fan_in + fan_out))
    assert torch.count_nonzero(logits_conv.bias) == 0


def test_a_checkpoint_rebuilds_the_same_network(tmp_path):
    args = complete_model_args({"kind": "semantic", "name": "resunet3d", "encoder": None,
                                "in_channels": 1, "num_classes": 3,
                                "options": {"channels": (4, 8, 16), "spacing": (2.5, 0.7, 0.7)}})
    assert args["encoder"] == "resunet3d"
    assert args["options"] == {"channels": [4, 8, 16], "subunits": 2, "norm": "instance",
                               "dropout": 0.0, "spacing": [2.5, 0.7, 0.7]}
    torch.manual_seed(0)
    model = build_model_from_args(args).eval()
    save_checkpoint(tmp_path / "best.pt", {"config": {}, "data_info": {}, "model_args": args,
                                           "model": model.state_dict()})
    rebuilt = build_model_from_checkpoint(load_checkpoint(tmp_path / "best.pt"))
    assert rebuilt.encoder.strides == ((1, 2, 2), (2, 2, 2))
    x = torch.randn(1, 1, 5, 12, 9)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_segwise_models_lists_it_as_3d(capsys):
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("resunet3d "))
    assert "Kerfoot 2018" in line and "[3D: input (N, C, D, H, W)]" in line


@pytest.mark.parametrize(("options", "match"), [
    ({"channels": (16,)}, r"channels=\(16,\) is not valid; expected two or more integers >= 1"),
    ({"channels": ()}, r"channels=\(\) is not valid"),
    ({"channels": (16, 0)}, r"channels=\(16, 0\) is not valid"),
    ({"channels": (16, -32)}, r"channels=\(16, -32\) is not valid"),
    ({"channels": (16, 32.0)}, r"channels=\(16, 32.0\) is not valid"),
    ({"channels": 16}, r"channels=16 is not valid; expected two or more integers"),
    ({"subunits": 0}, r"subunits=0 is not valid; expected an integer >= 1"),
    ({"dropout": 1.0}, r"dropout=1.0 is not valid; expected a number in \[0, 1\)"),
    ({"norm": "layer"}, r"norm='layer' is not valid"),
    ({"spacing": (1.0, 1.0)}, r"spacing=\(1.0, 1.0\) is not valid"),
    ({"encoder": "resnet18"}, r"encoder='resnet18' is not valid for 'resunet3d'"),
    ({"weights": "imagenet"}, r"weights='imagenet' is not valid for 'resunet3d'"),
])
def test_bad_options_are_named(options, match):
    with pytest.raises(ValueError, match=match):
        create_model("resunet3d", num_classes=2, **options)
