"""The instance model: a method's ``build`` returns the network itself, carrying its method and
options and decoding itself (``model.predict``), with the state_dict keys checkpoints hold.

``state_dict_keys.json`` lists every key (and shape) of each method's tiny model as the code of
commit c35f59f built it, before the model carried its method: checkpoints written then must
load into the models built now.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch

from segwise.instance.methods import (
    INSTANCE_METHODS,
    InstanceModel,
    get_method,
    options_from_mapping,
    predict_image,
)

from .conftest import tiny_options

KEYS = json.loads(Path(__file__).with_name("state_dict_keys.json").read_text())
# (method, encoder) of each listed layout; Mask R-CNN has two (segwise encoder, torchvision's)
LAYOUTS = [(name, "resnet18") for name in INSTANCE_METHODS.names()] + [
    ("maskrcnn", "tv_resnet50_fpn_v2")]


def _build(name, encoder="resnet18"):
    spec = get_method(name)
    raw = options_from_mapping(spec.options_type, tiny_options(name), method=name)
    options = spec.resolve_options(raw, None)
    return spec.build(encoder=encoder, in_channels=3, num_classes=2, options=options,
                      weights=None)


def test_every_registered_method_has_listed_keys():
    assert {key.partition(":")[0] for key in KEYS} == set(INSTANCE_METHODS.names())


@pytest.mark.parametrize(("name", "encoder"), LAYOUTS)
def test_state_dict_keys_and_shapes_are_those_checkpoints_hold(name, encoder):
    torch.manual_seed(0)
    model = _build(name, encoder)
    listed = KEYS[name if encoder == "resnet18" else f"{name}:{encoder}"]
    assert [[k, list(v.shape)] for k, v in sorted(model.state_dict().items())] == listed
    model.load_state_dict(model.state_dict(), strict=True)


@pytest.fixture(scope="module")
def yolact():
    torch.manual_seed(0)
    return _build("yolact")


def test_predict_is_the_methods_decoding_with_the_models_options(yolact):
    assert isinstance(yolact, InstanceModel) and yolact.method == "yolact"
    images = torch.randn(2, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    yolact.train()
    ours = yolact.predict(list(images))  # a list of (C, H, W) is stacked
    assert not yolact.training  # put in eval mode, and left there
    with torch.no_grad():
        theirs = get_method("yolact").predict(yolact, images, options=yolact.options)
    assert [p.shape for p in ours] == [(48, 40)] * 2
    for a, b in zip(ours, theirs, strict=True):
        assert (a.instance_map == b.instance_map).all() and (a.scores == b.scores).all()
    one = predict_image(yolact, images[1], device=torch.device("cpu"))
    assert (one.instance_map == ours[1].instance_map).all()


def test_copies_predict_with_their_own_weights(yolact):
    """The EMA model is a deepcopy: its ``predict`` must run the copy, not the original."""
    for twin in (copy.deepcopy(yolact), pickle.loads(pickle.dumps(yolact))):
        assert twin.predict.model is twin and twin.options == yolact.options
        assert twin.state_dict().keys() == yolact.state_dict().keys()


def test_segwise_instance_exports_every_methods_options_and_resolves_every_name():
    import segwise.instance as face

    for name in INSTANCE_METHODS.names():
        options_type = get_method(name).options_type
        assert getattr(face, options_type.__name__) is options_type
    for name in face.__all__:  # no stale entry in the lazy map
        assert getattr(face, name) is not None
