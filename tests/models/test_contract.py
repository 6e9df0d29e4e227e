"""Contract sweep: every registered architecture x a small, representative encoder set.

Checks the Model contract (docs/contracts.md): logits (N, num_classes, H, W) at odd input
sizes, gradients reach every parameter, state_dict round trip, eval determinism,
in_channels 1 and 4, num_classes 1 and 21.
"""

from __future__ import annotations

import pytest
import torch

from segwise.models import SegmentationOutput, create_model, list_models
from segwise.models.architectures import MODELS

SMALL_FCN = {"fc_channels": 32}

# (model, encoder, options): each architecture on >= 1 encoder; encoders cover ResNet, VGG
# (plain and dilated), Xception, the textbook U-Net encoder and a "timm:" name.
CASES = [
    ("unet", "resnet18", {}),
    pytest.param(
        "unet", "vgg16_bn", {"decoder_channels": (32, 32, 16, 16, 8)}, marks=pytest.mark.slow
    ),
    # full-width textbook encoder (the unet_textbook cases below cover it at width 8)
    pytest.param("unet", "unet_textbook", {"upsampling": "transposed"}, marks=pytest.mark.slow),
    ("unet", "timm:mobilenetv3_small_050", {"upsampling": "bilinear", "norm": "group"}),
    ("unet_textbook", None, {"base_width": 8}),
    ("unet_textbook", None, {"base_width": 8, "upsampling": "bilinear", "norm": "none"}),
    ("fcn", "resnet18", {}),
    ("fcn", "vgg16", {"output_stride": 16}),
    ("fcn32s", "vgg16", SMALL_FCN),
    ("fcn16s", "vgg16", SMALL_FCN),
    ("fcn8s", "vgg16_bn", SMALL_FCN),
    ("deeplabv3", "resnet18", {}),
    pytest.param(
        "deeplabv3", "vgg16", {"output_stride": 8, "separable": True}, marks=pytest.mark.slow
    ),
    ("deeplabv3plus", "resnet18", {"output_stride": 8, "norm": "group"}),
    ("deeplabv3plus", "vgg16", {"output_stride": 16}),
    pytest.param("deeplabv3plus", "xception65", {"separable": True}, marks=pytest.mark.slow),
]


# the volume models (spatial_dims=3), narrow: (model, options)
CASES_3D = [
    ("unet3d", {"base_width": 4, "depth": 2}),
    ("unet3d", {"base_width": 4, "depth": 3, "norm": "instance", "spacing": (3.0, 0.8, 0.8)}),
    ("resenc_unet3d", {"base_width": 4, "max_width": 16, "depth": 3}),
    ("resenc_unet3d", {"base_width": 4, "max_width": 8, "depth": 2,
                       "blocks_per_stage": (1, 2, 1), "spacing": (0.7, 0.7, 2.5)}),
    ("resunet3d", {"channels": (4, 8, 16)}),
    ("resunet3d", {"channels": (4, 8, 8), "subunits": 1, "norm": "batch", "dropout": 0.1,
                   "spacing": (3.0, 0.8, 0.8)}),
]


def _values(case):
    return case.values if isinstance(case, type(pytest.param())) else case


IDS = [f"{_values(c)[0]}-{_values(c)[1]}" for c in CASES]


def _build(name, encoder, options, **kwargs):
    kwargs.setdefault("num_classes", 3)
    return create_model(name, encoder=encoder, **kwargs, **options)


def test_every_architecture_is_swept():
    swept = {_values(c)[0] for c in CASES} | {c[0] for c in CASES_3D}
    assert swept == set(list_models())
    assert {c[0] for c in CASES_3D} == {n for n in list_models() if _dims(n) == 3}


def _dims(name):
    return MODELS.get(name).spatial_dims


@pytest.mark.parametrize(("name", "encoder", "options"), CASES, ids=IDS)
def test_model_contract(name, encoder, options):
    model = _build(name, encoder, options)

    # shape at an odd size, batch 2 in training mode; gradients reach every parameter
    model.train()
    x = torch.randn(2, 3, 17, 23)
    logits = model(x)
    assert logits.shape == (2, 3, 17, 23)
    logits.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    # eval determinism
    model.eval()
    x = torch.randn(1, 3, 13, 29)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)

    # state_dict round trip into a fresh, differently initialised model
    torch.manual_seed(123)
    clone = _build(name, encoder, options).eval()
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(clone(x), first)


# one case per architecture, on its lightest encoder
LIGHT = [
    ("unet", "resnet18", {}),
    ("unet_textbook", None, {"base_width": 8}),
    ("fcn", "resnet18", {}),
    ("fcn32s", "vgg16", SMALL_FCN),
    ("fcn16s", "vgg16", SMALL_FCN),
    ("fcn8s", "vgg16", SMALL_FCN),
    ("deeplabv3", "resnet18", {}),
    ("deeplabv3plus", "resnet18", {}),
]


def test_light_set_covers_every_architecture():
    assert {c[0] for c in LIGHT} == {n for n in list_models() if _dims(n) == 2}


@pytest.mark.parametrize(("name", "encoder", "options"), LIGHT, ids=[c[0] for c in LIGHT])
@pytest.mark.parametrize(("in_channels", "num_classes"), [(1, 1), (4, 21)])
def test_channels_and_classes(name, encoder, options, in_channels, num_classes):
    model = _build(name, encoder, options, in_channels=in_channels, num_classes=num_classes)
    with torch.no_grad():
        out = model.eval()(torch.randn(1, in_channels, 19, 24))
    assert out.shape == (1, num_classes, 19, 24)


@pytest.mark.parametrize("size", [(97, 131), (1, 1), (64, 64)])
@pytest.mark.parametrize(("name", "options"), [("unet", {}), ("fcn8s", SMALL_FCN)])
def test_any_input_size(size, name, options):
    model = create_model(
        name, encoder="vgg16" if name == "fcn8s" else "resnet18", num_classes=2, **options
    ).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 2, *size)


def test_padding_does_not_leak_into_the_image():
    """The top-left pixels' logits do not depend on how much padding the input needed.

    A fully convolutional net without normalisation statistics depends only on a finite
    neighbourhood, so a pixel far from the padded border sees identical inputs either way.
    """
    model = create_model("unet_textbook", num_classes=2, base_width=4, depth=2, norm="none").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        full = model(x)
        cropped = model(x[..., :61, :61])  # padded back to 64 internally with zeros
    assert torch.allclose(full[..., :20, :20], cropped[..., :20, :20], atol=1e-6)
    assert not torch.allclose(full[..., 60, 60], cropped[..., 60, 60])


@pytest.mark.parametrize("name", ["fcn", "deeplabv3", "deeplabv3plus"])
def test_aux_output(name):
    model = create_model(name, encoder="resnet18", num_classes=5, aux=True)
    x = torch.randn(2, 3, 17, 23)
    plain = model(x)  # the one output type: a tensor, aux heads or not
    assert isinstance(plain, torch.Tensor) and plain.shape == (2, 5, 17, 23)
    out = model(x, with_aux=True)
    assert isinstance(out, SegmentationOutput)
    assert out.logits.shape == (2, 5, 17, 23)
    assert len(out.aux) == 1 and out.aux[0].shape == (2, 5, 17, 23)
    (out.logits.mean() + out.aux[0].mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(("name", "norm"), [("deeplabv3", "batch"), ("deeplabv3plus", "group")])
def test_batch_one_trains(name, norm):
    """ASPP image pooling sees a 1x1 map: BatchNorm there would raise with batch 1."""
    model = create_model(name, encoder="resnet18", num_classes=2, norm=norm).train()
    model(torch.randn(1, 3, 32, 32)).mean().backward()


@pytest.mark.parametrize("name", ["unet", "fcn"])
def test_with_aux_is_a_segmentation_output_without_aux_heads_too(name):
    """Callers ask for the type they want; they never probe (``hasattr(out, "logits")``)."""
    model = create_model(name, encoder="resnet18", num_classes=3).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model(x, with_aux=True)
        plain = model(x)
    assert isinstance(out, SegmentationOutput) and out.aux == ()
    assert isinstance(plain, torch.Tensor) and torch.equal(out.logits, plain)
    assert plain.shape == (1, 3, 32, 32)


@pytest.fixture
def one_thread():
    """3D convs on CPU: one thread is 20x faster than two on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("name", "options"), CASES_3D, ids=[c[0] for c in CASES_3D])
def test_volume_model_contract(name, options, one_thread):
    """The same contract on (N, C, D, H, W): logits at odd sizes (padded per axis to the
    plan's divisor and cropped back), gradients everywhere, determinism, state_dict round
    trip, in_channels 1 / num_classes 1. With instance norm the deepest map must hold more
    than one voxel (PyTorch's InstanceNorm3d refuses a 1x1x1 map; nnU-Net's patches never
    come near it)."""
    torch.manual_seed(0)
    model = create_model(name, in_channels=2, num_classes=3, **options)
    model.train()
    logits = model(torch.randn(2, 2, 19, 23, 29))
    assert logits.shape == (2, 3, 19, 23, 29)
    logits.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    x = torch.randn(1, 2, 7, 13, 5)
    with torch.no_grad():
        first, second = model(x), model(x)
        out = model(x, with_aux=True)
    assert first.shape == (1, 3, 7, 13, 5) and torch.equal(first, second)
    assert isinstance(out, SegmentationOutput) and out.aux == ()
    torch.manual_seed(123)
    clone = create_model(name, in_channels=2, num_classes=3, **options).eval()
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(clone(x), first)
        single = create_model(name, in_channels=1, num_classes=1, **options).eval()
        # not 1x1x1: instance norm needs more than one voxel in the deepest map
        assert single(torch.randn(1, 1, 3, 9, 17)).shape == (1, 1, 3, 9, 17)
