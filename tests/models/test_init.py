"""Initialisation (``segwise.models.init``; docs/models.md, "Initialisation"): every layer of
every registered architecture starts as documented, and the logits at init have the
documented scale."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from segwise.models import SegmentationOutput, create_model, list_models
from segwise.models.blocks import conv_norm_act
from segwise.models.decoders.fcn import bilinear_kernel
from segwise.models.init import init_upconv, norm_followed_convs

SMALL_FCN = {"fc_channels": 32}
CASES = [
    ("unet", "resnet18", {}),
    ("unet_textbook", None, {"base_width": 8}),
    ("fcn", "resnet18", {"aux": True}),
    ("fcn32s", "vgg16", SMALL_FCN),
    ("fcn16s", "vgg16", SMALL_FCN),
    ("fcn8s", "vgg16_bn", SMALL_FCN),
    ("deeplabv3", "resnet18", {"aux": True}),
    ("deeplabv3plus", "resnet18", {"separable": True}),
]
IDS = [c[0] for c in CASES]
FCN_SKIP = {"fcn32s", "fcn16s", "fcn8s"}


_MODELS: dict[str, nn.Module] = {}


def _build(name, encoder, options):
    """Each case is built once per session (21 classes: enough weights for std checks)."""
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = create_model(name, encoder=encoder, num_classes=21, **options)
    return _MODELS[name]


def _he_std(weight: torch.Tensor) -> float:
    """He et al. 2015: variance 2 / fan_in."""
    return math.sqrt(2 / nn.init._calculate_fan_in_and_fan_out(weight)[0])


def _default_std(weight: torch.Tensor) -> float:
    """PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)): variance 1 / (3 fan_in)."""
    return math.sqrt(1 / (3 * nn.init._calculate_fan_in_and_fan_out(weight)[0]))


def _relu_convs(module: nn.Module) -> list[nn.Conv2d]:
    """Convs followed by a ReLU: all Conv2d except classifiers and FCN score layers."""
    return [
        m
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d) and "classifier" not in name and "score" not in name
    ]


def test_every_architecture_is_covered():
    # the volume models (spatial_dims=3): tests/models/test_volume_models.py
    assert {c[0] for c in CASES} == {n for n in list_models() if not n.endswith("unet3d")}


@pytest.mark.parametrize(("name", "encoder", "options"), CASES, ids=IDS)
def test_decoder_convs_are_he_before_a_norm_and_without_one(name, encoder, options):
    """Issue 17: He (variance 2 / fan_in) for every conv that feeds a ReLU, also through a
    norm (PyTorch's 6x smaller default learned slower over 200 steps and on the GPU)."""
    model = _build(name, encoder, options)
    convs = _relu_convs(model.decoder) + (
        _relu_convs(model.aux_head) if model.aux_head is not None else []
    )
    normed = norm_followed_convs(model)
    assert convs
    if name not in FCN_SKIP:  # FCN-xs' fc6/fc7 have no norm; the others do
        assert any(c in normed for c in convs)
    for conv in convs:
        if conv.bias is not None:
            assert torch.count_nonzero(conv.bias) == 0
        if conv.weight.numel() >= 2000:  # enough samples for a 10 % std check
            std = float(conv.weight.detach().std())
            assert std == pytest.approx(_he_std(conv.weight), rel=0.1), conv
            assert std > 2 * _default_std(conv.weight)  # not PyTorch's default (sqrt(6) x less)
    for norm in model.decoder.modules():
        if isinstance(norm, (nn.BatchNorm2d, nn.GroupNorm)):
            assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


@pytest.mark.parametrize(("name", "encoder", "options"), CASES, ids=IDS)
def test_classifiers_are_glorot_uniform_with_zero_bias(name, encoder, options):
    model = _build(name, encoder, options)
    heads = [model.head, model.aux_head] if model.aux_head is not None else [model.head]
    classifiers = [h.classifier for h in heads if hasattr(h, "classifier")]
    if name in FCN_SKIP:  # FCN-xs classify in the decoder (score_fr); skips: see below
        classifiers = [model.decoder.score_fr]
    for conv in classifiers:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))
        weight = conv.weight.detach()
        assert float(weight.abs().max()) <= bound
        assert float(weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
        assert torch.count_nonzero(conv.bias) == 0


@pytest.mark.parametrize("name", sorted(FCN_SKIP))
def test_fcn_skip_scores_start_at_zero_and_upsamplers_bilinear(name):
    model = _build(name, "vgg16" if name != "fcn8s" else "vgg16_bn", SMALL_FCN)
    skips = [m for n, m in model.decoder.named_modules() if n.startswith("score_pool")]
    assert len(skips) == {"fcn32s": 0, "fcn16s": 1, "fcn8s": 2}[name]
    assert all(torch.count_nonzero(s.weight) == 0 for s in skips)
    for n, m in model.decoder.named_modules():
        if isinstance(m, nn.ConvTranspose2d):
            assert torch.equal(m.weight, bilinear_kernel(21, m.kernel_size[0])), n


def test_textbook_unet_without_norm_is_the_papers_gaussian():
    """Ronneberger et al. 2015, section 3: N(0, 2 / N), N = inputs of one unit."""
    model = create_model("unet_textbook", num_classes=2, base_width=8, norm="none")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    big = [c for c in convs if c.weight.numel() > 100_000]  # widths 128: 147,456 weights
    assert big
    for conv in big:
        weight = conv.weight.detach()
        assert float(weight.std()) == pytest.approx(_he_std(weight), rel=0.02)
        assert float(weight.abs().max()) > math.sqrt(3) * _he_std(weight)  # Gaussian, not uniform


def test_instance_norm_textbook_unet_gets_the_papers_gaussian_too():
    """norm="instance" (issue 17: BasicUNet's norm): the convs before an InstanceNorm get the
    paper's He Gaussian like those of norm="none" and norm="batch"."""
    torch.manual_seed(0)
    model = create_model("unet_textbook", num_classes=2, base_width=8, norm="instance")
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 18  # 2 per level: 5 encoder + 4 decoder levels
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(n.affine and torch.equal(n.weight, torch.ones_like(n.weight)) for n in norms)
    big = [c for c in model.modules() if isinstance(c, nn.Conv2d) and c.weight.numel() > 100_000]
    assert big
    for conv in big:
        assert conv.bias is None
        weight = conv.weight.detach()
        assert float(weight.std()) == pytest.approx(_he_std(weight), rel=0.02)
        assert float(weight.abs().max()) > math.sqrt(3) * _he_std(weight)  # Gaussian


def test_instance_norm_logits_of_an_image_do_not_depend_on_its_batch():
    """Per-image statistics: in training mode an image's logits are the same alone or batched
    (with BatchNorm they are not: the batch statistics mix the images)."""
    x = torch.randn(3, 3, 32, 32)
    for norm, same in (("instance", True), ("batch", False)):
        torch.manual_seed(0)
        model = create_model("unet_textbook", num_classes=1, base_width=4, depth=2, norm=norm)
        model.train()
        with torch.no_grad():
            alone, batched = model(x[:1]), model(x)[:1]
        assert torch.allclose(alone, batched, atol=1e-5) is same, norm


def test_norm_followed_convs_reads_sequential_order():
    plain = conv_norm_act(8, 8, 3, norm="none")
    assert norm_followed_convs(plain) == set()
    separable = conv_norm_act(8, 16, 3, norm="batch", separable=True)
    depthwise, pointwise = separable[0]
    assert norm_followed_convs(separable) == {depthwise, pointwise}


def test_upconv_uses_the_inputs_each_output_pixel_sums():
    """A 2x2 stride-2 transposed conv: each output pixel sees in_channels inputs, one tap."""
    up = nn.ConvTranspose2d(512, 256, 2, stride=2)
    init_upconv(up)
    assert float(up.weight.detach().std()) == pytest.approx(1 / math.sqrt(512), rel=0.02)
    assert torch.count_nonzero(up.bias) == 0


def test_vgg_encoder_is_he_fan_in_gaussian():
    model = _build("fcn32s", "vgg16", SMALL_FCN)
    for index in (2, 28):  # conv1_2 (64 -> 64) and conv5_3 (512 -> 512)
        weight = model.encoder.features[index].weight.detach()
        assert float(weight.std()) == pytest.approx(_he_std(weight), rel=0.03)
    first = model.encoder.features[0].weight.detach()  # 3 -> 64: fan_in 27, not fan_out 576
    assert float(first.std()) == pytest.approx(_he_std(first), rel=0.1)
    assert torch.count_nonzero(model.encoder.features[28].bias) == 0


def test_timm_resnet_encoder_keeps_zero_initialised_last_batchnorm():
    """Encoder policy: timm's init, incl. zero-init of each residual branch's last BN."""
    model = _build("unet", "resnet18", {})
    blocks = [model.encoder.backbone.layer1[0], model.encoder.backbone.layer4[1]]
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)


@pytest.mark.parametrize(("name", "encoder", "options"), CASES, ids=IDS)
def test_logit_std_at_init_is_in_the_documented_range(name, encoder, options):
    """On an N(0, 1) batch (train-mode BatchNorm): std in [0.4, 1.5]; FCN-xs [0.1, 1.5].

    FCN-xs' scores are smoothed by bilinear up-convolutions of a 2x2 map at this input size
    and pass dropout 0.5 twice (0.29-0.46 for FCN-8s, ~0.8 for FCN-32s measured).

    Before issue 17 (PyTorch's default classifier init) the U-Net/ResNet-34 gave 0.31 here
    at 128 x 128 and smp's Unet 0.78.
    """
    model = _build(name, encoder, options).train()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
    logits = [out.logits, *out.aux] if isinstance(out, SegmentationOutput) else [out]
    low = 0.1 if name in FCN_SKIP else 0.4
    for value in logits:
        assert low <= float(value.std()) <= 1.5


def test_unet_head_is_3x3_like_smp_and_textbook_keeps_the_papers_1x1():
    assert _build("unet", "resnet18", {}).head.classifier.kernel_size == (3, 3)
    assert _build("unet_textbook", None, {"base_width": 8}).head.classifier.kernel_size == (1, 1)


@pytest.mark.parametrize("size", [0, 2, True])
def test_head_kernel_size_names_the_bad_value(size):
    with pytest.raises(ValueError, match=rf"head_kernel_size={size!r} is not valid"):
        create_model("unet", encoder="resnet18", num_classes=2, head_kernel_size=size)


def test_resolved_options_fill_the_builders_defaults_and_keep_the_users():
    from segwise.models.factory import resolved_options

    unet = resolved_options("unet")
    assert unet["head_kernel_size"] == 3 and unet["output_stride"] == 32
    assert resolved_options("unet_textbook")["head_kernel_size"] == 1  # the paper's 1x1 head
    assert resolved_options("deeplabv3plus", {"output_stride": 8})["output_stride"] == 8
    with pytest.raises(ValueError, match="nope"):
        resolved_options("nope")
