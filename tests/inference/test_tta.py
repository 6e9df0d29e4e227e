"""Test-time augmentation: every view is inverse-transformed before averaging."""

from __future__ import annotations

import functools

import pytest
import torch

from segwise.inference import Flip, sliding_window_inference, tta_inference, tta_transforms


@pytest.mark.parametrize(
    ("flips", "rot90", "count"),
    [
        ((), False, 1),
        ((Flip.HORIZONTAL,), False, 2),
        (("horizontal", "vertical"), False, 4),
        ((), True, 4),
        ((Flip.HORIZONTAL,), True, 8),
        ((Flip.HORIZONTAL, Flip.VERTICAL), True, 8),
    ],
)
def test_transforms_are_distinct_and_identity_first(flips, rot90, count):
    transforms = tta_transforms(flips, rot90=rot90)
    assert len(transforms) == count
    probe = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(transforms[0].apply(probe), probe)
    for t in transforms:
        assert torch.equal(t.invert(t.apply(probe)), probe)


def test_flip_tta_with_an_asymmetric_model_matches_the_hand_computed_average(cumsum_model):
    image = torch.randn(2, 3, 6, 9)
    with torch.no_grad():
        plain = cumsum_model(image).softmax(1)
        hflip = cumsum_model(image.flip(-1)).softmax(1).flip(-1)
        vflip = cumsum_model(image.flip(-2)).softmax(1).flip(-2)
        both = cumsum_model(image.flip(-1, -2)).softmax(1).flip(-1, -2)
    assert not torch.allclose(plain, hflip, atol=1e-3)  # the model really is asymmetric
    out = tta_inference(cumsum_model, image, flips=(Flip.HORIZONTAL,))
    torch.testing.assert_close(out, (plain + hflip) / 2)
    out = tta_inference(cumsum_model, image, flips=(Flip.HORIZONTAL, Flip.VERTICAL))
    torch.testing.assert_close(out, (plain + hflip + vflip + both) / 4)


def test_rot90_tta_with_an_asymmetric_model_on_a_non_square_image(cumsum_model):
    image = torch.randn(1, 3, 5, 8)
    with torch.no_grad():
        views = [
            torch.rot90(cumsum_model(torch.rot90(image, k, (2, 3))).softmax(1), -k, (2, 3))
            for k in range(4)
        ]
    out = tta_inference(cumsum_model, image, flips=(), rot90=True)
    assert out.shape == (1, 3, 5, 8)
    torch.testing.assert_close(out, sum(views) / 4)


def test_equivariant_model_is_unchanged_by_any_tta(pointwise_model):
    # a 1x1 convolution commutes with flips and rotations: a wrong inverse would misalign pixels
    image = torch.randn(2, 3, 5, 7)
    with torch.no_grad():
        expected = pointwise_model(image).softmax(1)
    out = tta_inference(pointwise_model, image, flips=("horizontal", "vertical"), rot90=True)
    torch.testing.assert_close(out, expected)
    sig = tta_inference(pointwise_model, image, flips=("horizontal",), activation="sigmoid")
    torch.testing.assert_close(sig, pointwise_model(image).sigmoid().detach())


def test_scales_resize_and_come_back(pointwise_model):
    image = torch.randn(1, 3, 8, 12)
    out = tta_inference(pointwise_model, image, flips=(), scales=(0.5, 1.0, 2.0))
    assert out.shape == (1, 4, 8, 12)
    torch.testing.assert_close(out.sum(1), torch.ones(1, 8, 12))
    # upsampling by 2 then back (bilinear, pointwise model) averages neighbours, but keeps
    # a constant image constant
    flat = torch.ones(1, 3, 8, 12)
    with torch.no_grad():
        expected = pointwise_model(flat).softmax(1)
    torch.testing.assert_close(
        tta_inference(pointwise_model, flat, flips=(), scales=(2.0, 0.5)), expected
    )


def test_composes_with_sliding_window(cumsum_model):
    image = torch.randn(1, 3, 20, 30)
    fn = functools.partial(
        sliding_window_inference, cumsum_model, tile_size=8, activation="softmax"
    )
    out = tta_inference(fn, image, flips=("horizontal",), activation="none")
    manual = (fn(image) + fn(image.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(out, manual)


def test_bad_arguments(pointwise_model):
    image = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="scales"):
        tta_inference(pointwise_model, image, scales=())
    with pytest.raises(ValueError, match="flips='diagonal'"):
        tta_inference(pointwise_model, image, flips=("diagonal",))
    with pytest.raises(ValueError, match="unsqueeze"):
        tta_inference(pointwise_model, image[0])
