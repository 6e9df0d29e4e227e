"""Bad input: a ValueError naming the argument, the bad value and the expected form."""

from __future__ import annotations

import pytest
import torch

import segwise.losses as SL
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
    with pytest.raises(ValueError, match=r"name='fokal' is not valid.*'dice', 'dicece'"):
        create_loss("fokal", task="binary", num_classes=1)
    with pytest.raises(ValueError, match=r"\['smooth'\] are not valid for loss 'dice'; expected"):
        create_loss("dice", task="binary", num_classes=1, smooth=1.0)
    with pytest.raises(ValueError, match=r"\['scope'\] are not valid for loss 'ce'"):
        create_loss("ce", task="binary", num_classes=1, scope="image")
    with pytest.raises(ValueError, match=r"num_classes=2 is not valid for task='binary'"):
        create_loss("dice", task="binary", num_classes=2)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SL.FocalLoss(task="binary", gamma=-1),
         "gamma=-1 is not valid"),
        (lambda: SL.FocalLoss(task="binary", alpha=1.5),
         "alpha=1.5 is not valid"),
        (lambda: SL.FocalLoss(task="multiclass", alpha=0.25),
         "alpha=0.25 is not valid for task='multiclass'"),
        (lambda: SL.FocalLoss(task="binary", reduction="avg"),
         "reduction='avg' is not valid"),
        (lambda: SL.TverskyLoss(task="binary", alpha=-0.1),
         "alpha=-0.1 is not valid"),
        (lambda: SL.TverskyLoss(task="binary", alpha=0,
                                                                  beta=0),
         "alpha \\+ beta > 0"),
        (lambda: SL.TverskyLoss(task="binary", gamma=2.0),
         "use FocalTverskyLoss"),
        (lambda: SL.FocalTverskyLoss(task="binary", gamma=0),
         "gamma=0 is not valid"),
        (lambda: SL.LovaszLoss(task="binary",
                                                                 from_logits=False),
         "from_logits=False is not valid for the Lovasz hinge"),
        (lambda: SL.LovaszLoss(task="multiclass",
                                                                 empty="sometimes"),
         "empty='sometimes' is not valid"),
        (lambda: SL.LovaszLoss(task="binary",
                                                                 include_background=False),
         "include_background=False is not valid"),
    ],
)
def test_new_losses_name_the_bad_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_new_losses_check_their_inputs_like_dice():
    from segwise.losses import focal_loss, lovasz_loss, tversky_loss

    x = torch.randn(2, 3, 4, 4)
    for fn in (focal_loss, lovasz_loss, tversky_loss):
        with pytest.raises(ValueError, match="target contains class index 7"):
            fn(x, torch.full((2, 4, 4), 7), task="multiclass")
        with pytest.raises(ValueError, match="target shape=\\(2, 5, 4\\) does not match"):
            fn(x, torch.zeros(2, 5, 4, dtype=torch.long), task="multiclass")
        with pytest.raises(ValueError, match="class_weights has shape"):
            fn(x, torch.zeros(2, 4, 4, dtype=torch.long), task="multiclass", class_weights=[1.0])


# --- ignore label inside the class range: the one rule of segwise.labels ----------------------
_CALLED_DIRECTLY = [
    LF.soft_dice_loss,
    LF.soft_jaccard_loss,
    LF.generalized_dice_loss,
    LF.dice_ce_loss,
    LF.cross_entropy_loss,
    SL.focal_loss,
    SL.tversky_loss,
    SL.focal_tversky_loss,
    SL.lovasz_loss,
]


@pytest.mark.parametrize("fn", _CALLED_DIRECTLY, ids=lambda f: f.__name__)
def test_ignore_label_inside_class_range_refused_when_called_directly(fn):
    # C = 3 channels: 0, 1 and 2 are classes; a pixel labelled 1 would be both predicted and
    # left out of the loss, so the value is refused before any maths (was silently accepted)
    with pytest.raises(ValueError, match=r"ignore_index=1 lies inside the 3 classes \[0, 3\)"):
        fn(X, T, task="multiclass", ignore_index=1)
    fn(X, T, task="multiclass", ignore_index=3)  # the first value after the classes is fine


def test_ignore_label_rule_is_check_ignore_label():
    from segwise.labels import check_ignore_label

    for value in (-1, 0, 1, 2, 3, 255):
        try:
            check_ignore_label(value, 3)
            expected = None
        except ValueError as err:
            expected = str(err)
        if expected is None:
            DiceLoss(task="multiclass", num_classes=3, ignore_index=value)(X, T)
        else:
            with pytest.raises(ValueError) as got:
                DiceLoss(task="multiclass", num_classes=3, ignore_index=value)(X, T)
            assert str(got.value) == f"loss: {expected}"
    # binary: classes {0, 1}; 2 (the binary pad label) and 255 are outside
    xb, tb = torch.randn(2, 1, 4, 4), torch.randint(0, 2, (2, 4, 4))
    for value in (0, 1):
        with pytest.raises(ValueError, match=rf"ignore_index={value} lies inside the 2 classes"):
            LF.soft_dice_loss(xb, tb, task="binary", ignore_index=value)
    for value in (2, 255):
        LF.soft_dice_loss(xb, tb, task="binary", ignore_index=value)


def test_create_loss_refuses_ignore_label_inside_class_range_at_build():
    with pytest.raises(ValueError, match=r"loss 'dicece': ignore_index=0 lies inside the 3"):
        create_loss("dicece", task="multiclass", num_classes=3, ignore_index=0)
    with pytest.raises(ValueError, match=r"ignore_index=1 lies inside the 2 classes"):
        create_loss("dice", task="binary", num_classes=1, ignore_index=1)
    create_loss("dice+focal", task="multiclass", num_classes=3, ignore_index=255)
