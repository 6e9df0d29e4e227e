"""The instance-method contract, swept over every registered method (`INSTANCE_METHODS`).

A new method joins automatically: odd image sizes, an image without objects, an image with 300+
objects, batch 1, gradients reaching every trainable parameter, state_dict round trip,
deterministic decoding by the model itself (``model.predict``), and `InstancePrediction` of the
input's shape. Models are tiny (resnet18 encoder, narrow heads, 64 px images) so each method
costs seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segwise.data.datasets import clean_instances
from segwise.data.loaders import pad_collate
from segwise.instance.methods import (
    INSTANCE_METHODS,
    InstanceMethodSpec,
    InstanceModel,
    ObjectStats,
    get_method,
    options_from_mapping,
    options_to_dict,
    without_crowd,
)
from segwise.instance.representation import InstancePrediction

from .conftest import tiny_options

PAD = 255


def _square_masks(shape, boxes):
    masks = torch.zeros((len(boxes), *shape), dtype=torch.uint8)
    for k, (y, x, h, w) in enumerate(boxes):
        masks[k, y : y + h, x : x + w] = 1
    return masks


def _item(shape, boxes, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = _square_masks(shape, boxes)
    k = len(boxes)
    return {
        "image": torch.randn(3, *shape, generator=g),
        "mask": masks.amax(0).long() if k else torch.zeros(shape, dtype=torch.long),
        "instances": {"masks": masks, "labels": torch.ones(k, dtype=torch.int64),
                      "ids": torch.arange(1, k + 1), "boxes": torch.zeros(k, 4)},
        "id": f"item{seed}",
    }


def _stats(boxes_list):
    sizes = np.array([np.sqrt(h * w) for boxes in boxes_list for _, _, h, w in boxes], float)
    ratios = np.array([h / w for boxes in boxes_list for _, _, h, w in boxes], float)
    return ObjectStats(sizes=sizes, aspect_ratios=ratios, image_size=(64, 64),
                       objects_per_image=np.array([len(b) for b in boxes_list]))


FEW = [(4, 6, 12, 10), (30, 30, 16, 20), (44, 8, 8, 8)]
MANY = [(y, x, 3, 3) for y in range(0, 80, 4) for x in range(0, 80, 4)]  # 400 objects


class Case:
    def __init__(self, name):
        torch.manual_seed(0)
        self.spec = get_method(name)
        raw = options_from_mapping(self.spec.options_type, tiny_options(name), method=name)
        self.options = self.spec.resolve_options(raw, _stats([FEW, MANY]))
        self.model = self.build()

    def build(self):
        return self.spec.build(encoder="resnet18", in_channels=3, num_classes=1,
                               options=self.options, weights=None)

    def batch(self, items):
        ready = []
        for item in items:
            # what the dataset and the training adapter do to an item
            item = dict(item, instances=without_crowd(clean_instances(item["instances"])))
            ready.append(self.spec.prepare_item(item, options=self.options, pad_value=PAD))
        return pad_collate(ready, mask_pad_value=PAD)

    def loss(self, items):
        batch = self.batch(items)
        self.model.train()
        terms = self.spec.loss(self.model, batch["image"], batch["instances"],
                               options=self.options, batch=batch)
        return terms

    def predict(self, images):
        return self.model.predict(images)  # the model decodes itself (base.InstanceModel)


@pytest.fixture(scope="module", params=INSTANCE_METHODS.names())
def case(request):
    return Case(request.param)


def test_spec_satisfies_the_protocol(case):
    spec = case.spec
    assert isinstance(spec, InstanceMethodSpec)
    assert spec.name in INSTANCE_METHODS and spec.description
    stored = options_to_dict(case.options)
    torch.save(stored, "/dev/null")  # plain values only
    assert options_from_mapping(spec.options_type, stored, method=spec.name) == case.options
    with pytest.raises(ValueError, match=f"not_an_option is not a {spec.name} option; allowed"):
        options_from_mapping(spec.options_type, {"not_an_option": 1}, method=spec.name)
    assert isinstance(spec.derived_summary(case.options), str)


def test_the_built_model_carries_its_method_and_options(case):
    assert isinstance(case.model, InstanceModel)
    assert case.model.method == case.spec.name and case.model.options is case.options
    # plain attributes: no wrapper, so no key of the state_dict names them
    assert not any(k.split(".")[0] in {"method", "options", "predict"}
                   for k in case.model.state_dict())


def test_gradients_reach_every_trainable_parameter(case):
    case.model.zero_grad(set_to_none=True)
    terms = case.loss([_item((64, 64), FEW)])  # batch 1
    total = sum(terms.values())
    assert total.ndim == 0 and torch.isfinite(total)
    total.backward()
    missing = [n for n, p in case.model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"{case.spec.name}: no finite gradient for {missing[:5]}"


def test_no_objects_and_many_objects_train(case):
    for items in ([_item((64, 64), [])], [_item((80, 80), MANY), _item((80, 80), FEW[:1], 1)]):
        terms = case.loss(items)
        total = sum(terms.values())
        assert torch.isfinite(total), (case.spec.name, {k: float(v) for k, v in terms.items()})
        total.backward()


@pytest.mark.parametrize("shape", [(61, 83), (64, 64)])
def test_prediction_has_the_input_shape_and_is_deterministic(case, shape):
    images = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(1))
    first = case.predict(images)
    again = case.predict(images)
    assert len(first) == 1 and isinstance(first[0], InstancePrediction)
    assert first[0].shape == shape
    assert np.array_equal(first[0].instance_map, again[0].instance_map)
    assert np.array_equal(first[0].scores, again[0].scores)


def test_state_dict_round_trip(case):
    torch.manual_seed(123)  # another init
    other = case.build()
    other.load_state_dict(case.model.state_dict())
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    ours = case.predict(images)
    case_model, case.model = case.model, other
    try:
        theirs = case.predict(images)
    finally:
        case.model = case_model
    for a, b in zip(ours, theirs, strict=True):
        assert np.array_equal(a.instance_map, b.instance_map)
