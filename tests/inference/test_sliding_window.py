"""Sliding-window inference: exactness, agreement with MONAI, streaming ARGMAX, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segwise.inference import LabelPrediction, Output, sliding_window_inference


def _monai(model, image, tile, batch, **kwargs):
    from monai.inferers import sliding_window_inference as monai_swi

    with torch.no_grad():
        return monai_swi(image, tile, batch, model, **kwargs)


def test_tile_covering_the_image_equals_a_direct_forward(unet):
    image = torch.randn(2, 3, 32, 48)
    with torch.no_grad():  # one image per call, as the sliding window runs (conv kernels may
        direct = torch.cat([unet(im[None]) for im in image])  # round differently per batch size)
    out = sliding_window_inference(unet, image, tile_size=(32, 48), channels_last=False)
    torch.testing.assert_close(out, direct, rtol=0, atol=0)
    out = sliding_window_inference(unet, image, tile_size=(32, 48))  # channels-last tiles
    torch.testing.assert_close(out, direct, rtol=1e-5, atol=1e-5)
    probs = sliding_window_inference(unet, image, tile_size=(32, 48), activation="softmax")
    torch.testing.assert_close(probs, direct.softmax(1), rtol=1e-5, atol=1e-5)


def test_tile_larger_than_the_image_pads_and_crops(conv_net):
    image = torch.randn(1, 3, 5, 9)
    out = sliding_window_inference(conv_net, image, tile_size=(8, 16), channels_last=False)
    # by hand: pad to 8 x 16 ((8-5)//2 = 1 row above, 2 below; 3 columns left, 4 right), crop back
    with torch.no_grad():
        expected = conv_net(F.pad(image, (3, 4, 1, 2)))[:, :, 1:6, 3:12]
    assert out.shape == (1, 4, 5, 9)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    reflect = sliding_window_inference(
        conv_net, image, tile_size=(8, 16), pad_mode="reflect", channels_last=False
    )
    with torch.no_grad():
        expected = conv_net(F.pad(image, (3, 4, 1, 2), mode="reflect"))[:, :, 1:6, 3:12]
    torch.testing.assert_close(reflect, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "batch"),
    [
        ((2, 3, 50, 70), (16, 24), 0.25, 3),
        ((1, 3, 100, 37), (32, 32), 0.5, 4),  # width padded: 37 > 32 so no; height many tiles
        ((1, 3, 10, 70), (16, 24), 0.25, 2),  # height shorter than the tile: padded
        ((1, 3, 33, 33), (8, 8), 0.0, 5),
    ],
)
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_agrees_with_monai(conv_net, shape, tile, overlap, batch, blend):
    image = torch.randn(shape)
    theirs = _monai(
        conv_net,
        image,
        tile,
        batch,
        overlap=overlap,
        mode=blend,
        sigma_scale=0.125,
        padding_mode="constant",
    )
    ours = sliding_window_inference(
        conv_net,
        image,
        tile_size=tile,
        overlap=overlap,
        tile_batch_size=batch,
        blend=blend,
        sigma_scale=0.125,
        pad_mode="constant",
        channels_last=False,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    fast = sliding_window_inference(
        conv_net, image, tile_size=tile, overlap=overlap, tile_batch_size=batch, blend=blend
    )
    torch.testing.assert_close(fast, theirs, rtol=1e-4, atol=1e-4)


def test_softmax_blends_probabilities_like_monai_with_a_softmax_predictor(unet):
    image = torch.randn(1, 3, 40, 64)
    theirs = _monai(lambda x: unet(x).softmax(1), image, (16, 16), 4, overlap=0.25, mode="gaussian")
    ours = sliding_window_inference(
        unet, image, tile_size=16, activation="softmax", channels_last=False
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.sum(1), torch.ones(1, 40, 64), rtol=1e-5, atol=1e-5)


def test_tile_batch_size_does_not_change_the_result(conv_net):
    image = torch.randn(1, 3, 45, 51)
    ref = sliding_window_inference(
        conv_net, image, tile_size=16, tile_batch_size=1, channels_last=False
    )
    for batch in (2, 7, 100):
        out = sliding_window_inference(
            conv_net, image, tile_size=16, tile_batch_size=batch, channels_last=False
        )
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 61, 47), (1, 3, 7, 40)])
@pytest.mark.parametrize("activation", ["none", "softmax"])
def test_argmax_output_equals_argmax_of_the_full_map(conv_net, shape, activation):
    image = torch.randn(shape)
    kwargs = dict(tile_size=(16, 12), overlap=0.3, tile_batch_size=3, activation=activation)
    full = sliding_window_inference(conv_net, image, **kwargs)
    pred = sliding_window_inference(conv_net, image, output=Output.ARGMAX, **kwargs)
    assert isinstance(pred, LabelPrediction)
    assert pred.labels.dtype == torch.int64 and pred.labels.shape == shape[:1] + shape[2:]
    torch.testing.assert_close(pred.scores, full.max(1).values, rtol=1e-6, atol=1e-6)
    assert torch.equal(pred.labels, full.argmax(1))


def test_argmax_with_one_channel_thresholds():
    model = nn.Conv2d(3, 1, 3, padding=1).eval()
    image = torch.randn(1, 3, 30, 30)
    probs = sliding_window_inference(model, image, tile_size=12, activation="sigmoid")
    pred = sliding_window_inference(
        model, image, tile_size=12, activation="sigmoid", output="argmax"
    )
    assert torch.equal(pred.labels, (probs[:, 0] > 0.5).long())
    assert 0 < pred.labels.sum() < 900
    torch.testing.assert_close(pred.scores, probs[:, 0])


def test_nan_from_the_model_is_a_clear_error():
    def model(x):
        out = x[:, :2].clone()
        out[:, :, 3, 3] = float("nan")
        return out

    with pytest.raises(FloatingPointError, match="NaN or Inf.*tile"):
        sliding_window_inference(model, torch.randn(1, 3, 20, 20), tile_size=8)


def test_bad_model_outputs_are_clear_errors():
    image = torch.randn(1, 3, 20, 20)
    with pytest.raises(ValueError, match="input resolution"):
        sliding_window_inference(lambda x: x[:, :, ::2, ::2], image, tile_size=8)
    with pytest.raises(TypeError, match="tensor"):
        sliding_window_inference(lambda x: {"logits": x}, image, tile_size=8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(tile_size=0), "tile_size"),
        (dict(tile_size=(8, 8, 8)), "tile_size"),
        (dict(tile_size=8, overlap=1.0), "overlap"),
        (dict(tile_size=8, tile_batch_size=0), "tile_batch_size"),
        (dict(tile_size=8, blend="linear"), "blend='linear'.*gaussian"),
        (dict(tile_size=8, output="labels"), "output"),
    ],
)
def test_bad_arguments_are_clear_errors(conv_net, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sliding_window_inference(conv_net, torch.randn(1, 3, 20, 20), **kwargs)


def test_bad_images_are_clear_errors(conv_net):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*unsqueeze"):
        sliding_window_inference(conv_net, torch.randn(3, 20, 20), tile_size=8)
    with pytest.raises(ValueError, match="float"):
        sliding_window_inference(
            conv_net, torch.zeros(1, 3, 20, 20, dtype=torch.uint8), tile_size=8
        )


def test_warns_when_the_model_is_in_training_mode(conv_net):
    conv_net.train()
    with pytest.warns(UserWarning, match=r"model.eval\(\)"):
        sliding_window_inference(conv_net, torch.randn(1, 3, 16, 16), tile_size=8)


@pytest.mark.gpu
def test_tiles_on_gpu_output_on_cpu(unet):
    image = torch.randn(1, 3, 64, 96)
    ref = sliding_window_inference(unet, image, tile_size=32)
    out = sliding_window_inference(
        unet.cuda(), image, tile_size=32, tile_device="cuda", output_device="cpu"
    )
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)


def _peak_cpu_bytes(fn) -> int:
    """Peak bytes held by the CPU allocator during ``fn()`` (profiler memory events, summed in
    time order), beyond what existed before."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage != 0),
        key=lambda e: e.time_range.start,
    )
    running = peak = 0
    for e in events:
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return peak


def test_argmax_output_never_holds_the_full_class_map():
    classes, h, w = 64, 256, 128
    model = nn.Conv2d(3, classes, 1).eval()
    image = torch.randn(1, 3, h, w)
    full_map = classes * h * w * 4  # bytes of the (K, H, W) float32 map: 8 MiB

    def argmax():
        sliding_window_inference(model, image, tile_size=32, output="argmax")

    def full():
        sliding_window_inference(model, image, tile_size=32, output="full")

    assert _peak_cpu_bytes(full) >= full_map  # the measurement sees a full map when there is one
    # labels + scores (12 B/px, 0.4 MiB) + a (K, 32, W) band (1 MiB) + 4 tiles' outputs (1 MiB)
    # + temporaries: measured 3.7 MiB (the FULL run: 10.3 MiB)
    assert _peak_cpu_bytes(argmax) < 0.6 * full_map
