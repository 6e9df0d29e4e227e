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
    c = info.labels.num_classes
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


def test_binary_counts_come_from_the_label_space_never_converted(tiny_binary, fast_config):
    """The loss reads ``labels.out_channels`` (1 logit channel) and the scorer
    ``labels.num_classes`` (2: background, foreground); nothing turns 2 into 1 and back."""
    from segwise.data import discover_dataset
    from segwise.engine import evaluation
    from segwise.engine.evaluation import SemanticScorer

    info = discover_dataset(tiny_binary).info
    labels = info.labels
    assert (labels.num_classes, labels.out_channels, labels.pad_value) == (2, 1, 2)
    adapter = make_adapter(
        fast_config(tiny_binary), info, device=torch.device("cpu"), amp_dtype=None,
        channels_last=False,
    )
    assert adapter.model_args["num_classes"] == labels.out_channels == 1  # the model's channels
    loss = adapter.loss_fn  # Dice + CE, built from labels= alone
    terms = [m for m in loss.modules() if hasattr(m, "num_classes")]
    assert terms and all(t.num_classes == 1 for t in terms)
    assert [t.ignore_index for t in terms] == [labels.pad_value] * len(terms)
    scorer = SemanticScorer(labels=labels)  # the only argument that says what a label is
    assert scorer.confusion.num_classes == labels.num_classes == 2
    assert scorer.confusion.ignore_index == scorer.per_image.ignore_index == labels.pad_value
    assert not hasattr(evaluation, "metric_classes")  # the 1 -> 2 conversion is gone
