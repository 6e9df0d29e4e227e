"""Mask R-CNN: builder checks (fast) and train step / eval / weights loading (slow)."""

from __future__ import annotations

import pytest
import torch

from segwise.data.datasets import clean_instances
from segwise.instance.methods import as_instance_model, get_method
from segwise.instance.methods.maskrcnn.model import build_maskrcnn
from segwise.instance.representation import InstancePrediction

# small enough for a shared 2-core CPU: 64x64 input, few proposals and sampled RoIs
TINY = {
    "min_size": 64,
    "max_size": 64,
    "rpn_pre_nms_top_n": (50, 50),
    "rpn_post_nms_top_n": (20, 20),
    "box_batch_size_per_image": 16,
}


def _item():
    masks = torch.zeros(3, 64, 64, dtype=torch.uint8)
    masks[0, 5:20, 5:25] = 1
    masks[1, 30:60, 30:50] = 1  # masks[2] stays empty (e.g. cropped away): dropped
    return {
        "image": torch.rand(3, 64, 64),
        "instances": {
            "masks": masks,
            "labels": torch.tensor([1, 2, 1]),
            "boxes": torch.zeros(3, 4),
            "ids": torch.tensor([1, 2, 3]),
        },
    }


def _targets():
    """The cleaned item's instances are Mask R-CNN's targets as they are (`MaskRCNN.loss`)."""
    inst = clean_instances(_item()["instances"])
    assert inst["boxes"].tolist() == [[5, 5, 25, 20], [30, 30, 50, 60]]  # the empty one dropped
    return {"boxes": inst["boxes"], "labels": inst["labels"], "masks": inst["masks"]}


def test_builder_validates_arguments_and_coco_fails_fast_offline(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="num_classes=0"):
        build_maskrcnn(num_classes=0)
    with pytest.raises(ValueError, match="expected both or neither"):
        build_maskrcnn(num_classes=1, image_mean=(0, 0, 0))
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_maskrcnn(num_classes=1, weights=tmp_path / "missing.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # empty cache
    with pytest.raises(FileNotFoundError, match=r"never downloads.*pass weights='/path/to/"):
        build_maskrcnn(num_classes=1, weights="coco")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_maskrcnn(num_classes=2, **TINY)


@pytest.mark.slow
def test_train_step_and_eval(model):
    model.train()
    losses = model([_item()["image"]], [_targets()])
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grad = model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    # eval through the method layer (model.predict calls predict_maskrcnn); any image size
    from segwise.instance.methods.maskrcnn import MaskRCNNOptions

    as_instance_model(model, get_method("maskrcnn"), MaskRCNNOptions(score_threshold=0.0))
    preds = model.predict([torch.rand(3, 64, 48)])
    assert isinstance(preds[0], InstancePrediction) and preds[0].shape == (64, 48)
    assert not model.training


@pytest.mark.slow
def test_local_weights_same_and_other_class_count(model, tmp_path):
    path = tmp_path / "maskrcnn.pth"
    torch.save(model.state_dict(), path)
    same = build_maskrcnn(
        num_classes=2, weights=path, image_mean=(0, 0, 0), image_std=(1, 1, 1), **TINY
    )
    assert same.transform.image_mean == [0.0, 0.0, 0.0]  # for items normalised by segwise.data
    for key, value in model.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key
    # another class count: everything but the two predictors is loaded, predictors replaced
    other = build_maskrcnn(num_classes=4, weights=str(path), trainable_backbone_layers=2, **TINY)
    assert other.roi_heads.box_predictor.cls_score.out_features == 5
    assert other.roi_heads.box_predictor.bbox_pred.out_features == 20
    assert other.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 5
    key = "backbone.body.layer1.0.conv1.weight"
    assert torch.equal(other.state_dict()[key], model.state_dict()[key])
    assert not other.backbone.body.layer2[0].conv1.weight.requires_grad
    assert other.backbone.body.layer3[0].conv1.weight.requires_grad
    # a file that is not a Mask R-CNN state_dict
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a Mask R-CNN state_dict"):
        build_maskrcnn(num_classes=2, weights=bad, **TINY)


def test_encoder_and_weights_are_honoured_or_refused_by_name():
    from segwise.instance.methods import get_method
    from segwise.instance.methods.maskrcnn import MaskRCNNOptions

    spec = get_method("maskrcnn")
    options = MaskRCNNOptions(anchor_sizes=[8, 16, 32, 64, 128], aspect_ratios=[0.5, 1, 2],
                              fpn_channels=16)
    with torch.device("meta"):
        model = spec.build(encoder="resnet18", in_channels=4, num_classes=2, options=options,
                           weights=None)
        # the encoder asked for is the backbone (not a fixed ResNet-50), 4 input channels
        assert type(model.backbone.encoder).__name__ == "TimmEncoder"
        assert model.backbone.encoder.out_channels[-1] == 512  # resnet18's last stage
        assert model.rpn.anchor_generator.sizes == ((8.0,), (16.0,), (32.0,), (64.0,), (128.0,))
        assert model.roi_heads.box_predictor.cls_score.out_features == 3
        with pytest.raises(ValueError, match="'unet_textbook' cannot feed an FPN"):
            spec.build(encoder="unet_textbook", in_channels=3, num_classes=1, options=options,
                       weights=None)
        with pytest.raises(ValueError, match="--weights coco .* fits only --encoder "
                                             "tv_resnet50_fpn_v2"):
            spec.build(encoder="resnet18", in_channels=3, num_classes=1, options=options,
                       weights="coco")
        with pytest.raises(ValueError, match="needs 3-channel images"):
            spec.build(encoder="tv_resnet50_fpn_v2", in_channels=1, num_classes=1,
                       options=options, weights=None)
        tv = spec.build(encoder="tv_resnet50_fpn_v2", in_channels=3, num_classes=1,
                        options=options, weights=None)
        assert tv.rpn.anchor_generator.sizes[0] == (8.0,)  # derived anchors, torchvision layout


def test_derive_anchors_hand_computed():
    import numpy as np

    from segwise.instance.methods.maskrcnn.options import DEFAULT_ANCHOR_SIZES, derive_anchors

    sizes = np.arange(101) + 10.0  # 5th percentile 15, 95th 105: levels 15 * 7 ** (i / 4)
    s, r = derive_anchors(sizes, np.ones(101))
    assert s == (15.0, 24.4, 39.7, 64.6, 105.0)
    assert r == (0.8, 1.0, 1.25)  # all square: widened to x1.25 around the median
    assert derive_anchors(sizes, np.linspace(0.5, 2.5, 101))[1] == (0.7, 1.5, 2.3)  # 10/50/90th
    narrow = np.array([0.5] * 10 + [1.0] * 80 + [2.0] * 10)  # 10th/90th pct 0.95 / 1.1
    assert derive_anchors(sizes, narrow)[1] == (0.8, 1.0, 1.25)
    assert derive_anchors(np.zeros(0), np.zeros(0)) == (DEFAULT_ANCHOR_SIZES, (0.5, 1.0, 2.0))
