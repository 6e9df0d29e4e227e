"""Bad input: a ValueError naming the argument, the bad value and the expected form."""

from __future__ import annotations

import pytest
import torch

from segwise.losses import DiceCELoss, DiceLoss, create_loss
from segwise.losses import functional as LF

X = torch.randn(2, 3, 4, 4)
T = torch.randint(0, 3, (2, 4, 4))


@pytest.mark.parametrize(
    ("input", "target", "match"),
    [
        (torch.randn(2, 3, 4), T, r"input shape=\(2, 3, 4\).*\(N, C, H, W\)"),
        (X, torch.randint(0, 3, (2, 4, 5)), r"target shape=\(2, 4, 5\).*\(2, 4, 4\)"),
        (X, torch.rand(2, 2, 4, 4), r"target shape=\(2, 2, 4, 4\).*\(2, 3, 4, 4\)"),
        (X, torch.randint(0, 3, (2, 1, 4, 4)), r"target shape=\(2, 1, 4, 4\) dtype=torch.int64"),
        (X, T.float(), r"dtype=torch.float32.*int64 \(N, H, W\)"),
        (X, T.bool(), r"dtype=torch.bool"),
        (X.long(), T, r"input dtype=torch.int64.*floating"),
        (X, T + 1, r"class index 3, outside \[0, 3\)"),
        (X, T - 1, r"class index -1, outside \[0, 3\)"),
        (X, torch.rand(2, 3, 4, 4) * 2, r"float target has values in \[.*\]; expected .* \[0, 1\]"),
        (X.masked_fill(X > 1, float("nan")), T, r"NaN or infinite"),
        (X.masked_fill(X > 1, float("inf")), T, r"NaN or infinite"),
        (torch.randn(2, 1, 4, 4), T, r"C=1 channel, but task='multiclass' expects C >= 2"),
    ],
)
def test_multiclass_bad_input(input, target, match):
    for fn in (LF.soft_dice_loss, LF.soft_jaccard_loss, LF.generalized_dice_loss):
        with pytest.raises(ValueError, match=match):
            fn(input, target, task="multiclass")
    if "input dtype" not in match:
        with pytest.raises(ValueError, match=match):
            LF.dice_ce_loss(input, target, task="multiclass")


def test_nan_target_and_nan_in_ignored_pixels_still_detected():
    with pytest.raises(ValueError, match="float target has values"):
        LF.soft_dice_loss(X, torch.full((2, 3, 4, 4), float("nan")), task="multiclass")
    t = T.clone()
    t[0, 0, 0] = 255
    x = X.clone()
    x[0, :, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        LF.soft_dice_loss(x, t, task="multiclass", ignore_index=255)


def test_ignore_index_value_outside_range_without_ignore_index_is_an_error():
    t = T.clone()
    t[0, 0, 0] = 255
    with pytest.raises(ValueError, match=r"class index 255, outside \[0, 3\); expected"):
        LF.soft_dice_loss(X, t, task="multiclass")
    with pytest.raises(ValueError, match=r"class index 7, outside \[0, 3\) or 255"):
        LF.soft_dice_loss(X, t.masked_fill(t == 1, 7), task="multiclass", ignore_index=255)


def test_binary_and_multilabel_shapes():
    with pytest.raises(ValueError, match=r"task='binary' expects exactly 1 channel"):
        LF.soft_dice_loss(X, T, task="binary")
    xb = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"class index 2, outside \[0, 2\)"):
        LF.soft_dice_loss(xb, torch.full((2, 4, 4), 2), task="binary")
    with pytest.raises(ValueError, match=r"multilabel.*float \(N, C, H, W\) multi-hot"):
        LF.soft_dice_loss(X, T, task="multilabel")


def test_probabilities_out_of_range_with_from_logits_false():
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*from_logits=False"):
        LF.soft_dice_loss(X, T, task="multiclass", from_logits=False)


def test_option_errors():
    with pytest.raises(ValueError, match=r"task='softmax' is not valid"):
        DiceLoss(task="softmax")
    with pytest.raises(ValueError, match=r"scope='pixel' is not valid.*'batch', 'image'"):
        DiceLoss(task="binary", scope="pixel")
    with pytest.raises(ValueError, match=r"empty='one'"):
        DiceLoss(task="binary", empty="one")
    with pytest.raises(ValueError, match=r"eps=-1"):
        DiceLoss(task="binary", eps=-1)
    with pytest.raises(ValueError, match=r"include_background=False is not valid for task='bin"):
        DiceLoss(task="binary", include_background=False)
    with pytest.raises(ValueError, match=r"class_weights are not valid for a binary Dice"):
        DiceLoss(task="binary", class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"class_weights has shape \(2,\); expected 3 values"):
        DiceLoss(task="multiclass", num_classes=3, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"class_weights=\[1.0, -1.0, 1.0\] is not valid"):
        DiceLoss(task="multiclass", class_weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match=r"class_weights has shape \(2,\); expected 3"):
        LF.soft_dice_loss(X, T, task="multiclass", class_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"num_classes=1 is not valid for task='multiclass'"):
        DiceLoss(task="multiclass", num_classes=1)
    with pytest.raises(ValueError, match=r"input has 3 channels; .* num_classes=4"):
        DiceLoss(task="multiclass", num_classes=4)(X, T)
    with pytest.raises(ValueError, match=r"ignore_index=1.5 is not valid"):
        LF.soft_dice_loss(X, T, task="multiclass", ignore_index=1.5)
    with pytest.raises(ValueError, match=r"ce_weight=-1"):
        DiceCELoss(task="multiclass", ce_weight=-1)
    with pytest.raises(ValueError, match=r"class_weights has shape \(1,\); expected 2 values"):
        DiceCELoss(task="binary", num_classes=1, class_weights=[1.0])


def test_pixel_weights_errors():
    loss = DiceCELoss(task="multiclass", num_classes=3)
    with pytest.raises(ValueError, match=r"pixel_weights shape=\(2, 4\).*\(2, 4, 4\)"):
        loss(X, T, pixel_weights=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"pixel_weights must hold finite values >= 0"):
        loss(X, T, pixel_weights=-torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match=r"pixel_weights must be a float tensor"):
        loss(X, T, pixel_weights=torch.ones(2, 4, 4, dtype=torch.long))


def test_multiclass_soft_target_partially_ignored_pixel():
    g = torch.softmax(torch.randn(2, 3, 4, 4), 1)
    g[0, 0, 0, 0] = 255.0  # only one channel of the pixel
    with pytest.raises(ValueError, match="ignores a pixel in some channels only"):
        LF.soft_dice_loss(X, g, task="multiclass", ignore_index=255)


def test_factory_errors():
    with pytest.raises(ValueError, match=r"name='focal' is not valid.*'dice', 'dicece'"):
        create_loss("focal", task="binary", num_classes=1)
    with pytest.raises(ValueError, match=r"\['smooth'\] are not valid for loss 'dice'; expected"):
        create_loss("dice", task="binary", num_classes=1, smooth=1.0)
    with pytest.raises(ValueError, match=r"\['scope'\] are not valid for loss 'ce'"):
        create_loss("ce", task="binary", num_classes=1, scope="image")
    with pytest.raises(ValueError, match=r"num_classes=2 is not valid for task='binary'"):
        create_loss("dice", task="binary", num_classes=2)
