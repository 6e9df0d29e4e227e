"""The training engine builds the configured loss: sums of terms with weights, any loss name."""

from __future__ import annotations

import pytest
import torch

from segwise.engine.registry import make_adapter
from segwise.losses import DiceLoss, FocalLoss, WeightedSumLoss


def _adapter(root, fast_config, **train):
    from segwise.data import discover_dataset

    config = fast_config(root, **train)
    info = discover_dataset(root).info
    adapter = make_adapter(config, info, device=torch.device("cpu"), amp_dtype=None,
                           channels_last=False)  # fmt: skip
    adapter.build_model(None)  # also builds the loss
    return adapter


def test_a_weighted_sum_from_the_config(tiny_multiclass, fast_config):
    adapter = _adapter(tiny_multiclass, fast_config, loss="dice+focal", loss_weights=[1.0, 0.5])
    loss = adapter.loss_fn
    assert isinstance(loss, WeightedSumLoss) and loss.weights == (1.0, 0.5)
    assert isinstance(loss.terms[0], DiceLoss) and isinstance(loss.terms[1], FocalLoss)
    assert adapter.loss_description == "1 x dice + 0.5 x focal"
    x, t = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    expected = loss.terms[0](x, t) + 0.5 * loss.terms[1](x, t)
    assert float(loss(x, t)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("name", ["dice", "focal", "lovasz", "tversky"])
def test_losses_without_dice_ce_weights_build(tiny_multiclass, fast_config, name):
    # dice_weight / ce_weight belong to dicece only; other losses must not receive them
    adapter = _adapter(tiny_multiclass, fast_config, loss=name)
    assert adapter.loss_description == name


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"loss": "dice+focal", "loss_weights": [1.0]}, "expected 2 finite weight"),
        ({"loss": "dice", "loss_weights": [1.0, 2.0]}, "expected 1 finite weight"),
        ({"loss": "dice+fokal"}, "train.loss='dice\\+fokal' is not valid"),
    ],
)
def test_bad_loss_config_is_refused_naming_the_key(tmp_path, fast_config, train, match):
    with pytest.raises(ValueError, match=match):
        fast_config(tmp_path, **train)


def test_train_cli_parses_loss_weights():
    import argparse

    from segwise.cli import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(["--loss", "dice+focal", "--loss-weights", "1,0.5"])
    assert (args.loss, args.loss_weights) == ("dice+focal", [1.0, 0.5])
    with pytest.raises(SystemExit):
        parser.parse_args(["--loss-weights", "1,x"])
