"""The semantic adapter's loss with auxiliary heads (models built with ``aux=True``)."""

from __future__ import annotations

import pytest
import torch

from segwise.engine.adapters import AUX_LOSS_WEIGHT
from segwise.engine.registry import make_adapter
from segwise.models.segmentation_model import SegmentationOutput


def test_aux_heads_add_weighted_losses(tiny_multiclass, fast_config):
    from segwise.data import discover_dataset

    config = fast_config(tiny_multiclass)
    info = discover_dataset(tiny_multiclass).info
    adapter = make_adapter(
        config, info, device=torch.device("cpu"), amp_dtype=None, channels_last=False
    )
    adapter.build_model(None)  # also builds the loss
    c = info.num_classes
    logits, aux1, aux2 = (torch.randn(2, c, 8, 8) for _ in range(3))
    batch = {"image": torch.zeros(2, 3, 8, 8), "mask": torch.randint(0, c, (2, 8, 8))}

    def model(_images, *, with_aux=False):
        assert with_aux  # the adapter asks for the aux outputs; it never probes the type
        return SegmentationOutput(logits=logits, aux=(aux1, aux2))

    step = adapter.training_loss(model, batch)
    assert dict(step.terms) == {}  # one loss, no named parts
    loss = step.total
    f = adapter.loss_fn
    expected = f(logits, batch["mask"]) + AUX_LOSS_WEIGHT * (
        f(aux1, batch["mask"]) + f(aux2, batch["mask"])
    )
    assert loss.item() == pytest.approx(expected.item())


def test_checkpoint_of_a_retired_instance_kind_says_retrain():
    from segwise.runs.builders import build_model_from_args

    with pytest.raises(ValueError, match="older segwise.*--model maskrcnn"):
        build_model_from_args({"kind": "maskrcnn", "options": {}})
    with pytest.raises(ValueError, match="unknown"):
        build_model_from_args({"kind": "nonsense"})
