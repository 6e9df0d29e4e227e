"""YOLACT: box coding, matching, anchors, hand-computed losses, shapes, gradients, decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from segwise.instance.anchors import anchor_sizes_by_stride, anchor_sizes_from_stats, grid_anchors
from segwise.instance.boxes import BACKGROUND, NEUTRAL, decode_boxes, encode_boxes, match_anchors
from segwise.instance.methods.base import ObjectStats
from segwise.instance.methods.yolact import PAPER_ANCHOR_SIZES, YOLACT, YOLACTOptions
from segwise.instance.methods.yolact.loss import anchor_targets, mask_loss, ohem_class_loss
from segwise.instance.representation import InstancePrediction
from segwise.metrics.instance import average_precision

LOG2 = math.log(2.0)
TINY = {"fpn_channels": 16, "num_prototypes": 4, "anchor_sizes": (8, 12, 16, 24, 32), "top_k": 20}


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------- box coding and matching
def test_encode_hand_value_and_round_trip():
    anchors = torch.tensor([[0.0, 0, 10, 10]])
    gt = torch.tensor([[2.0, 0, 12, 20]])  # centre (7, 10), size (10, 20)
    deltas = encode_boxes(gt, anchors)
    # t_x = (7 - 5) / (0.1 * 10), t_y = (10 - 5) / (0.1 * 10), t_w = log 1 / 0.2, t_h = log 2 / 0.2
    torch.testing.assert_close(deltas, torch.tensor([[2.0, 5.0, 0.0, math.log(2) / 0.2]]))
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 30], dim=1)
    ref = torch.cat([xy + 3, xy + 3 + torch.rand(50, 2, generator=g) * 40 + 1], dim=1)
    torch.testing.assert_close(decode_boxes(encode_boxes(boxes, ref), ref), boxes)


def test_match_anchors_hand_case():
    anchors = torch.tensor(
        [
            [0.0, 0, 10, 10],  # IoU 1 with g0: positive
            [5.0, 0, 15, 10],  # 50/150 = 0.33: background
            [20.0, 20, 30, 30],  # g1's best anchor (IoU 16/100): forced positive
            [0.0, 0, 10, 12],  # 100/120 = 0.83: positive
            [3.0, 0, 13, 10],  # 70/130 = 0.54: positive
            [4.0, 0, 14, 10],  # 60/140 = 0.43: neutral
        ]
    )
    gt = torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 24, 24]])
    matched = match_anchors(anchors, gt)
    assert matched.tolist() == [0, BACKGROUND, 1, 0, 0, NEUTRAL]
    assert match_anchors(anchors, torch.zeros(0, 4)).tolist() == [BACKGROUND] * 6


def test_match_anchors_claims_every_tied_best_anchor():
    # an 8 x 8 object centred on the corner shared by four 8 px cells: its four 16 px anchors
    # contain it (IoU 64/256 each), under the 0.3 background IoU; SSD's argmax claimed one
    # and made the three others background
    anchors = grid_anchors([(2, 2)], strides=[8], sizes=[16.0], aspect_ratios=[1.0])
    gt = torch.tensor([[4.0, 4, 12, 12]])
    torch.testing.assert_close(box_iou(gt, anchors)[0], torch.full((4,), 64 / 256))
    assert match_anchors(anchors, gt).tolist() == [0, 0, 0, 0]
    # a box overlapping no anchor still claims one (the first)
    far = torch.tensor([[100.0, 100, 104, 104]])
    assert match_anchors(anchors, far).tolist() == [0, BACKGROUND, BACKGROUND, BACKGROUND]


def test_default_matching_gives_a_small_nucleus_several_positives():
    # issue 12: a 12 x 14 px nucleus centred near the corner of four 8 px cells, among data whose
    # derived P3 anchor is 18 px (dsb2018's). The paper's matching (IoU 0.5 / 0.4, one scale)
    # gives it only the anchor it claims; the defaults (0.4 / 0.3, scales 2^(-1/3), 1, 2^(1/3))
    # give it four natural positives, e.g. the 14.29 px anchor at (12, 12): intersection
    # 10.14 x 11.14 = 112.9, union 168 + 204.1 - 112.9 = 259.3, IoU 0.435
    gt = torch.tensor([[9.0, 8, 21, 22]])
    paper = YOLACTOptions(positive_iou=0.5, negative_iou=0.4, anchor_scales=[1.0])
    counts = []
    for options in (paper, YOLACTOptions()):
        anchors = grid_anchors(
            [(4, 4)], strides=[8], sizes=[18.0], aspect_ratios=options.aspect_ratios,
            scales=options.anchor_scales,
        )  # fmt: skip
        matched = match_anchors(
            anchors, gt, positive_iou=options.positive_iou, negative_iou=options.negative_iou
        )
        counts.append(int((matched == 0).sum()))
    assert counts == [1, 4]
    small = torch.tensor([[12 - 7.1436, 12 - 7.1436, 12 + 7.1436, 12 + 7.1436]])
    assert box_iou(gt, small).item() == pytest.approx(112.9 / 259.3, abs=1e-3)


# ---------------------------------------------------------------- anchors
def test_grid_anchors_order_and_values():
    anchors = grid_anchors([(1, 2)], strides=[8], sizes=[8.0], aspect_ratios=[1.0, 4.0])
    # cells centred at (4, 4) and (12, 4); ratio 4 (h/w): w = 8 / 2, h = 8 * 2
    expected = torch.tensor(
        [[0.0, 0, 8, 8], [2.0, -4, 6, 12], [8.0, 0, 16, 8], [10.0, -4, 14, 12]]
    )
    torch.testing.assert_close(anchors, expected)


def test_grid_anchors_scales_are_scale_major():
    anchors = grid_anchors(
        [(1, 1)], strides=[8], sizes=[8.0], aspect_ratios=[1.0, 4.0], scales=[1.0, 0.5]
    )
    # cell centre (4, 4); scale 1: 8 x 8 and (ratio 4) 4 x 16; scale 0.5: 4 x 4 and 2 x 8
    expected = torch.tensor(
        [[0.0, 0, 8, 8], [2.0, -4, 6, 12], [2.0, 2, 6, 6], [3.0, 0, 5, 8]]
    )
    torch.testing.assert_close(anchors, expected)


def test_anchor_sizes_from_stats():
    sizes = np.array([4.0] * 50 + [64.0] * 50)
    assert anchor_sizes_from_stats(sizes, num_levels=5, low=0, high=100) == (4, 8, 16, 32, 64)
    assert anchor_sizes_from_stats(np.full(7, 10.0), num_levels=5) == (10.0,) * 5
    assert anchor_sizes_from_stats(np.array([0.5]), num_levels=2) == (2.0, 2.0)  # 2 px floor
    with pytest.raises(ValueError, match="no objects"):
        anchor_sizes_from_stats(np.zeros(0), num_levels=5)


def test_anchor_sizes_by_stride_hand_case():
    strides = (8, 16, 32, 64, 128)  # nominal sizes 3 * stride: 24, 48, 96, 192, 384
    # 10-14 px are below P3's range: P3 (median 12); 40 and 50 px round to P4 (median 45);
    # 1000 px is above P7's: P7; P5 and P6 carry nothing and keep 3 * stride
    sizes = np.array([10.0, 12, 14, 40, 50, 1000])
    assert anchor_sizes_by_stride(sizes, strides=strides) == (12.0, 45.0, 96.0, 192.0, 1000.0)
    assert anchor_sizes_by_stride(np.zeros(0), strides=strides) == (24.0, 48.0, 96.0, 192.0, 384.0)
    assert anchor_sizes_by_stride(np.array([1.0]), strides=(8,)) == (2.0,)  # 2 px floor


def test_resolve_options_derives_anchors_only_when_unset():
    stats = ObjectStats(
        sizes=np.array([4.0] * 5 + [10.0] * 90 + [64.0] * 5),
        aspect_ratios=np.ones(100),
        image_size=(96, 96),
        objects_per_image=np.array([100]),
    )
    method = YOLACT()
    derived = method.resolve_options(YOLACTOptions(), stats).anchor_sizes
    assert derived == anchor_sizes_by_stride(stats.sizes, strides=(8, 16, 32, 64, 128))
    assert derived == (10.0, 64.0, 96.0, 192.0, 384.0)  # 4 and 10 px on P3, 64 px on P4
    fixed = YOLACTOptions(anchor_sizes=[1, 2, 3, 4, 5])
    assert method.resolve_options(fixed, stats).anchor_sizes == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert method.resolve_options(YOLACTOptions(), None).anchor_sizes is None
    assert "24, 48, 96, 192, 384" in method.derived_summary(YOLACTOptions())
    assert PAPER_ANCHOR_SIZES == (24.0, 48.0, 96.0, 192.0, 384.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_loss": "softmax"}, "class_loss"),
        ({"anchor_sizes": (8, 16)}, "5 sizes"),
        ({"aspect_ratios": (1, -2)}, "aspect_ratios"),
        ({"num_prototypes": 0}, "num_prototypes"),
        ({"negative_iou": 0.6}, "negative_iou"),
        ({"nms_iou": 1.5}, "nms_iou"),
        ({"mask_weight": -1}, "mask_weight"),
        ({"mask_loss_stride": 3}, "mask_loss_stride"),
        ({"anchor_scales": ()}, "anchor_scales"),
    ],
)
def test_options_refuse_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YOLACTOptions(**kwargs)


# ---------------------------------------------------------------- losses (hand-computed)
def test_ohem_class_loss_mines_the_hardest_negatives():
    logits = torch.tensor(
        [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [1.0, 0.0], [-5.0, 5.0]]
    )
    classes = torch.tensor([1, 0, 0, 0, 0, -1])  # one positive, four negatives, one neutral
    # ratio 1: the positive (CE log 2) + the hardest negative [0, 2] (CE softplus(2))
    loss = ohem_class_loss(logits, classes, negative_ratio=1)
    assert loss.item() == pytest.approx(LOG2 + _softplus(2.0), rel=1e-6)
    # ratio 3: + the next two hardest, [0, 0] (log 2) and [1, 0] (softplus(-1))
    loss = ohem_class_loss(logits, classes, negative_ratio=3)
    assert loss.item() == pytest.approx(2 * LOG2 + _softplus(2.0) + _softplus(-1), rel=1e-6)
    # no positive: still ratio * 1 negatives, never the neutral
    loss = ohem_class_loss(logits, torch.tensor([0, 0, 0, 0, 0, -1]), negative_ratio=1)
    assert loss.item() == pytest.approx(_softplus(2.0), rel=1e-6)


def test_mask_loss_is_bce_inside_box_over_box_area():
    protos = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]])  # k = 1, 2 x 2 at stride 4
    coefs = torch.tensor([[1.0]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    # box over the top row (pixel centres (2, 2) and (6, 2)): (log 2 + softplus(2)) / 2
    loss = mask_loss(protos, coefs, target, torch.tensor([[0.0, 0, 8, 4]]))
    assert loss.item() == pytest.approx((LOG2 + _softplus(2.0)) / 2, rel=1e-6)
    # a box holding one pixel, whose logit is -2 against target 0: softplus(-2) / 1
    loss = mask_loss(protos, coefs, target, torch.tensor([[0.0, 4, 4, 8]]))
    assert loss.item() == pytest.approx(_softplus(-2.0), rel=1e-6)
    # two masks are summed (the caller divides by their count)
    both = mask_loss(
        protos, coefs.repeat(2, 1), target.repeat(2, 1, 1),
        torch.tensor([[0.0, 0, 8, 4], [0.0, 4, 4, 8]]),
    )  # fmt: skip
    assert both.item() == pytest.approx((LOG2 + _softplus(2.0)) / 2 + _softplus(-2.0), rel=1e-6)


def test_mask_loss_at_stride_2_upsamples_the_logits_bilinearly():
    protos = torch.tensor([[[0.0, 2.0], [-2.0, 0.0]]])  # k = 1, 2 x 2 at stride 4
    # x2 bilinear (align_corners=False): rows 0-1 of the 4 x 4 logits are [0, 0.5, 1.5, 2]
    # and [-0.5, 0, 1, 1.5]; the box [0, 4) x [0, 4) holds the pixels centred at 1 and 3
    target = torch.zeros(1, 4, 4)
    loss = mask_loss(protos, torch.tensor([[1.0]]), target, torch.tensor([[0.0, 0, 4, 4]]),
                     stride=2)  # fmt: skip
    expected = (2 * LOG2 + _softplus(0.5) + _softplus(-0.5)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # a box holding the bottom-right pixel (centre (7, 7), logit 0) against target 1
    target[0, 3, 3] = 1
    loss = mask_loss(protos, torch.tensor([[1.0]]), target, torch.tensor([[6.0, 6, 8, 8]]),
                     stride=2)  # fmt: skip
    assert loss.item() == pytest.approx(LOG2, rel=1e-6)


# ---------------------------------------------------------------- the model
def _target(h: int, w: int) -> dict[str, torch.Tensor]:
    masks = torch.zeros(3, h, w, dtype=torch.uint8)
    masks[0, 5:20, 5:25] = 1
    masks[1, 20:30, 28:40] = 1
    masks[2, 0:8, 32:40] = 1  # exactly the P3 anchor of size 8 centred at (36, 4)
    boxes = torch.tensor([[5.0, 5, 25, 20], [28.0, 20, 40, 30], [32.0, 0, 40, 8]])
    return {"masks": masks, "labels": torch.tensor([1, 2, 1]), "boxes": boxes}


def _empty(h: int, w: int) -> dict[str, torch.Tensor]:
    return {
        "masks": torch.zeros(0, h, w, dtype=torch.uint8),
        "labels": torch.zeros(0, dtype=torch.long),
        "boxes": torch.zeros(0, 4),
    }


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    options = YOLACTOptions(**TINY)
    model = YOLACT().build(
        encoder="resnet18", in_channels=3, num_classes=2, options=options, weights=None
    )
    return model, options


def test_shapes_on_odd_image_size(tiny):
    model, options = tiny
    model.train()
    out = model(torch.rand(1, 3, 33, 47))  # padded to 64 x 64
    a = 9 * (8 * 8 + 4 * 4 + 2 * 2 + 1 + 1)  # P3 ... P7 cells x 3 scales x 3 aspect ratios
    assert out["class_logits"].shape == (1, a, 3)  # C + 1 with the OHEM head
    assert out["box_deltas"].shape == (1, a, 4)
    assert out["coefficients"].shape == (1, a, 4)
    assert out["coefficients"].abs().max() <= 1  # tanh
    assert out["prototypes"].shape == (1, 4, 16, 16)  # stride 4
    assert (out["prototypes"] >= 0).all()  # ReLU
    assert out["anchors"].shape == (a, 4)
    assert out["semantic_logits"].shape == (1, 2, 8, 8)
    model.eval()
    assert "semantic_logits" not in model(torch.rand(1, 3, 33, 47))
    preds = YOLACT().predict(model, torch.rand(2, 3, 33, 47), options=options)
    assert [p.shape for p in preds] == [(33, 47), (33, 47)]
    assert all(isinstance(p, InstancePrediction) for p in preds)


@pytest.mark.parametrize("class_loss", ["ohem", "focal"])
def test_gradients_reach_every_parameter(class_loss):
    torch.manual_seed(0)
    options = YOLACTOptions(**TINY, class_loss=class_loss)
    model = YOLACT().build(
        encoder="resnet18", in_channels=3, num_classes=2, options=options, weights=None
    )
    model.train()
    images = torch.rand(2, 3, 41, 45)
    losses = YOLACT().loss(
        model, images, [_target(41, 45), _empty(41, 45)], options=options, batch={}
    )
    assert set(losses) == {"loss_class", "loss_box", "loss_mask", "loss_semantic"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # every YOLACT part learns from this batch (the encoder's residual branches start at
        # zero gradient: timm zero-inits their last BN; P6/P7 only get one when their anchors
        # are positive or mined)
        if name.startswith(("protonet.", "head.", "semantic.", "backbone.fpn.fpn.")):
            assert p.grad.abs().sum() > 0, name


def test_batch_without_objects_has_finite_zero_box_and_mask_loss(tiny):
    model, options = tiny
    model.train()
    losses = YOLACT().loss(
        model, torch.rand(1, 3, 64, 64), [_empty(64, 64)], options=options, batch={}
    )
    assert losses["loss_box"].item() == 0 and losses["loss_mask"].item() == 0
    assert losses["loss_class"].item() > 0  # three hard negatives still teach background
    sum(losses.values()).backward()


def test_loss_weights_scale_their_terms(tiny):
    model, options = tiny
    model.train()
    images = torch.rand(1, 3, 41, 45)
    torch.manual_seed(1)
    base = YOLACT().loss(model, images, [_target(41, 45)], options=options, batch={})
    heavier = YOLACTOptions(**TINY, box_weight=3.0, mask_weight=0.0, semantic_weight=2.0)
    other = YOLACT().loss(model, images, [_target(41, 45)], options=heavier, batch={})
    assert other["loss_box"].item() == pytest.approx(2 * base["loss_box"].item(), rel=1e-5)
    assert other["loss_mask"].item() == 0
    assert other["loss_semantic"].item() == pytest.approx(
        2 * base["loss_semantic"].item(), rel=1e-5
    )
    assert other["loss_class"].item() == pytest.approx(base["loss_class"].item(), rel=1e-5)


def test_crowd_regions_are_not_instances(tiny):
    model, options = tiny
    model.train()
    images = torch.rand(1, 3, 41, 45)
    target = _target(41, 45)
    crowd = dict(target, crowd=torch.tensor([False, False, True]))
    without = {k: v[:2] for k, v in target.items()}
    a = YOLACT().loss(model, images, [crowd], options=options, batch={})
    b = YOLACT().loss(model, images, [without], options=options, batch={})
    # same positives, so box and mask terms match
    assert a["loss_box"].item() == pytest.approx(b["loss_box"].item(), rel=1e-5)
    assert a["loss_mask"].item() == pytest.approx(b["loss_mask"].item(), rel=1e-5)
    # the crowd's anchors are neutral (-1), not background (0)
    anchors = model(images)["anchors"]
    near = box_iou(target["boxes"][2:], anchors)[0] >= options.negative_iou
    assert near.any()
    ious = {"positive_iou": options.positive_iou, "negative_iou": options.negative_iou}
    _, with_crowd, kept = anchor_targets(anchors, crowd, **ious)
    _, plain, _ = anchor_targets(anchors, without, **ious)
    assert kept.tolist() == [True, True, False]
    assert (with_crowd[near & (plain == 0)] == -1).all() and (plain[near] == 0).any()
    assert torch.equal(with_crowd[~near], plain[~near])


def test_predict_is_deterministic_and_respects_options(tiny):
    model, _ = tiny
    model.eval()
    images = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    # any score, any mask probability: every slot with a box gets pixels
    loose = YOLACTOptions(**TINY, score_threshold=0.0, mask_threshold=0.0, max_detections=7)
    a = YOLACT().predict(model, images, options=loose)[0]
    b = YOLACT().predict(model, images, options=loose)[0]
    assert np.array_equal(a.instance_map, b.instance_map) and np.array_equal(a.scores, b.scores)
    assert 0 < len(a) <= 7
    none = YOLACTOptions(**TINY, score_threshold=1.0)
    assert len(YOLACT().predict(model, images, options=none)[0]) == 0


def test_state_dict_round_trip(tiny, tmp_path):
    model, options = tiny
    path = tmp_path / "yolact.pt"
    torch.save(model.state_dict(), path)
    again = YOLACT().build(
        encoder="resnet18", in_channels=3, num_classes=2, options=options, weights=str(path)
    )
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    with pytest.raises(ValueError, match="not a yolact state_dict"):
        YOLACT().build(
            encoder="resnet18", in_channels=3, num_classes=5, options=options, weights=str(path)
        )
    with pytest.raises(ValueError, match="neither 'imagenet' nor an existing file"):
        YOLACT().build(
            encoder="resnet18", in_channels=3, num_classes=2, options=options, weights="coco"
        )


def test_encoder_without_stride_32_is_refused():
    with pytest.raises(ValueError, match="unet_textbook"):
        YOLACT().build(
            encoder="unet_textbook", in_channels=3, num_classes=1,
            options=YOLACTOptions(**TINY), weights=None,
        )  # fmt: skip


def test_decoding_an_oracle_output_recovers_the_instances():
    # outputs a perfect network would give: anchors on the objects, zero deltas, one prototype
    # per object (+10 inside its mask at stride 4, -10 elsewhere), one-hot coefficients
    from segwise.instance.methods.yolact.decode import detect

    h, w = 40, 48
    inst = np.zeros((h, w), np.int32)
    inst[4:20, 8:24] = 1  # 16 x 16
    inst[24:36, 28:44] = 2  # 12 x 16
    inst[0:8, 36:44] = 3  # 8 x 8, touches nothing
    truth = InstancePrediction.from_label_map(inst, labels=[1, 2, 1])
    boxes = torch.from_numpy(truth.boxes.copy())
    anchors = torch.cat([boxes, torch.tensor([[0.0, 0, 8, 8], [40.0, 32, 48, 40]])])
    protos = torch.full((1, 3, h // 4, w // 4), -10.0)
    for k in range(3):
        protos[0, k][torch.from_numpy(inst[2::4, 2::4] == k + 1)] = 10.0
    logits = torch.full((1, 5, 3), -5.0)
    logits[0, :, 0] = 5.0  # background everywhere ...
    logits[0, [0, 1, 2], 0] = -5.0  # ... but on the three objects
    logits[0, [0, 1, 2], [1, 2, 1]] = 5.0
    coefs = torch.zeros(1, 5, 3)
    coefs[0, [0, 1, 2], [0, 1, 2]] = 1.0
    outputs = {
        "class_logits": logits, "box_deltas": torch.zeros(1, 5, 4), "coefficients": coefs,
        "prototypes": protos, "anchors": anchors,
    }  # fmt: skip
    options = YOLACTOptions(top_k=5, max_detections=4)
    scores, labels, masks = detect(outputs, height=h, width=w, options=options,
                                   background_class=True)  # fmt: skip
    assert labels[0].tolist() == [1, 2, 1, 0] and scores[0, 3] == 0
    pred = InstancePrediction.from_masks(
        masks[0, :3].numpy(), labels=labels[0, :3].numpy(), scores=scores[0, :3].numpy()
    )
    # exact but for the 4 corner pixels of each rectangle (bilinear upsampling of a 4 x 4
    # cell's corner: 0.625 * 0.625 < 0.5)
    assert ((pred.instance_map > 0) != (inst > 0)).sum() <= 12
    assert sorted(pred.labels.tolist()) == [1, 1, 2]
    assert average_precision(pred, truth, thresholds=(0.5, 0.9))[1] == 1.0


def test_a_box_centred_in_the_padding_is_no_detection():
    # a 36-row image padded to 40: the second anchor's box (centre y = 38) lies mostly in the
    # padding; clipped to the image it keeps rows 30-36, but it is no object of the image
    from segwise.instance.methods.yolact.decode import select_detections

    anchors = torch.tensor([[4.0, 4, 20, 20], [8.0, 30, 24, 46], [30.0, 2, 38, 10]])
    logits = torch.tensor([[[-5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]]])  # 1st, 2nd foreground
    outputs = {
        "class_logits": logits, "box_deltas": torch.zeros(1, 3, 4),
        "coefficients": torch.zeros(1, 3, 2), "anchors": anchors,
    }  # fmt: skip
    _, labels, _, boxes = select_detections(
        outputs, height=36, width=40, options=YOLACTOptions(top_k=3, max_detections=3),
        background_class=True,
    )  # fmt: skip
    assert labels[0].tolist() == [1, 0, 0]
    torch.testing.assert_close(boxes[0, 0], anchors[0])


def test_loss_and_predict_under_autocast(tiny):
    # the engine trains and predicts under autocast; bfloat16 on the CPU stands in for fp16
    model, options = tiny
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = YOLACT().loss(
            model, torch.rand(1, 3, 64, 64), [_target(64, 64)], options=options, batch={}
        )
        assert all(torch.isfinite(v) for v in losses.values())
        model.eval()
        loose = YOLACTOptions(**TINY, score_threshold=0.0, mask_threshold=0.0)
        preds = YOLACT().predict(model, torch.rand(1, 3, 64, 64), options=loose)
    assert len(preds[0]) > 0 and preds[0].scores.dtype == np.float32


def test_a_record_without_anchor_scales_rebuilds_the_one_scale_model(tmp_path):
    """Checkpoints written before ``anchor_scales`` existed hold one anchor scale per level;
    their recorded options rebuild that model (not today's three scales) and load its
    weights. A record that names the option keeps its value."""
    from segwise.instance.methods import options_from_record, options_to_dict
    from segwise.runs.builders import build_instance_model

    torch.manual_seed(0)
    old = YOLACTOptions(**TINY, anchor_scales=(1.0,))
    model = YOLACT().build(encoder="resnet18", in_channels=3, num_classes=2, options=old,
                           weights=None)
    path = tmp_path / "old.pt"
    torch.save(model.state_dict(), path)
    record = options_to_dict(old)
    del record["anchor_scales"]
    args = {"kind": "instance", "method": "yolact", "name": "yolact", "encoder": "resnet18",
            "in_channels": 3, "num_classes": 2, "options": record}
    again = build_instance_model(args, str(path))
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    assert options_from_record(YOLACT(), record).anchor_scales == (1.0,)
    assert len(options_from_record(YOLACT(), options_to_dict(YOLACTOptions())).anchor_scales) == 3
    with pytest.raises(ValueError, match="checkpoint option not_an_option is not a yolact option"):
        options_from_record(YOLACT(), record | {"not_an_option": 1})
