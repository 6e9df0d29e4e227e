"""Semantic-to-instance decoding and the method layer (both methods -> InstancePrediction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segwise.instance.methods import as_instance_model, get_method
from segwise.instance.methods.maskrcnn import MaskRCNNOptions
from segwise.instance.methods.unet_watershed import (
    Decoding,
    UNetWatershedOptions,
    decode_unet_logits,
)
from segwise.instance.methods.unet_watershed.decode import decode_distance, decode_three_class
from segwise.instance.methods.unet_watershed.targets import (
    distance_target,
    instance_map_from_item,
    three_class_target,
    unet_targets_from_item,
)
from segwise.instance.representation import InstancePrediction
from segwise.metrics.instance import dsb_score

from .conftest import rect_map

# two touching blocks, one separate block, one 2x2 object too small to have an interior
INST = rect_map((16, 20), [(1, 1, 1, 6, 5), (2, 1, 6, 6, 6), (3, 9, 2, 5, 7), (4, 12, 15, 2, 2)])


@pytest.mark.parametrize("decoding", list(Decoding))
def test_three_class_round_trip_recovers_instances(decoding):
    target = three_class_target(INST)
    pred = decode_three_class(target, decoding=decoding)
    assert isinstance(pred, InstancePrediction)
    assert len(pred) == 4  # the 2x2 object has no interior: kept as its own component
    assert dsb_score(pred, INST) == 1.0


def test_three_class_probabilities_and_scores():
    onehot = (three_class_target(INST)[None] == np.arange(3)[:, None, None]).astype(np.float32)
    probs = 0.1 / 3 + 0.9 * onehot  # softened: p_bg 0.9333 on background, 0.0333 elsewhere
    pred = decode_three_class(torch.from_numpy(probs))
    assert dsb_score(pred, INST) == 1.0
    assert pred.scores.tolist() == pytest.approx([1 - 0.1 / 3] * 4)
    assert (pred.labels == 1).all()


def test_min_area_and_bad_input():
    pred = decode_three_class(three_class_target(INST), min_area=5)
    assert len(pred) == 3  # the 4-pixel object is removed
    with pytest.raises(ValueError, match=r"probs has shape \(2, 16, 20\)"):
        decode_three_class(np.zeros((2, 16, 20)))
    with pytest.raises(ValueError, match="decoding='flood'"):
        decode_three_class(three_class_target(INST), decoding="flood")


@pytest.mark.parametrize("decoding", list(Decoding))
def test_distance_round_trip(decoding):
    inst = rect_map((20, 20), [(1, 1, 1, 7, 7), (2, 1, 8, 7, 7), (3, 11, 3, 6, 12)])
    pred = decode_distance(distance_target(inst), decoding=decoding)
    assert dsb_score(pred, inst) == 1.0
    fg = (inst > 0).astype(np.float32)
    pred = decode_distance(distance_target(inst), foreground=fg, decoding=decoding)
    assert dsb_score(pred, inst) == 1.0


def _item(inst):
    ids = np.unique(inst)[1:]
    masks = torch.from_numpy((inst[None] == ids[:, None, None]).astype(np.uint8))
    return {
        "image": torch.rand(3, *inst.shape),
        "instances": {"masks": masks, "labels": torch.ones(len(ids), dtype=torch.int64)},
    }


def test_unet_targets_from_item():
    item = _item(INST)
    assert np.array_equal(instance_map_from_item(item) > 0, INST > 0)
    targets = unet_targets_from_item(item)
    assert targets["mask"].dtype == torch.int64 and targets["mask"].shape == INST.shape
    assert np.array_equal(targets["mask"].numpy(), three_class_target(INST))
    assert targets["pixel_weights"].dtype == torch.float32
    assert float(targets["pixel_weights"].max()) > 5  # gaps between objects carry the w0 term


def test_decode_unet_logits_and_model_predict():
    onehot = torch.from_numpy(three_class_target(INST)).long()
    logits = 10.0 * nn.functional.one_hot(onehot, 3).permute(2, 0, 1)[None].float()
    preds = decode_unet_logits(logits.repeat(2, 1, 1, 1))
    assert len(preds) == 2 and all(dsb_score(p, INST) == 1.0 for p in preds)
    cfg = UNetWatershedOptions(decoding="connected_components")
    assert cfg.decoding is Decoding.CONNECTED_COMPONENTS
    assert dsb_score(decode_unet_logits(logits, options=cfg)[0], INST) == 1.0
    with pytest.raises(ValueError, match=r"expected \(N, 3, H, W\)"):
        decode_unet_logits(logits[:, :2])

    class Fixed(nn.Module):  # a stand-in "U-Net" returning the logits above
        def forward(self, x):
            return logits.expand(x.shape[0], -1, -1, -1)

    model = as_instance_model(Fixed(), get_method("unet_watershed"), UNetWatershedOptions())
    preds = model.predict(torch.rand(1, 3, *INST.shape))
    assert dsb_score(preds[0], INST) == 1.0
    model.options = cfg  # decoding reads the model's options at each call
    preds = model.predict(torch.rand(1, 3, *INST.shape))
    assert dsb_score(preds[0], INST) == 1.0
    with pytest.raises(ValueError, match="method='nope'.*'maskrcnn', 'unet_watershed'"):
        get_method("nope")
    with pytest.raises(ValueError, match="score_threshold=1.5"):
        MaskRCNNOptions(score_threshold=1.5)
    with pytest.raises(ValueError, match="min_area=-1"):
        UNetWatershedOptions(min_area=-1)
