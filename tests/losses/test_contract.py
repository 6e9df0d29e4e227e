"""Loss seam contract (docs/contracts.md): every registered loss, every task, every target form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import segwise.losses as losses
from segwise.losses import LossName, create_loss, loss_options

TASKS = {"binary": 1, "multiclass": 3, "multilabel": 3}


def _targets(task: str, c: int):
    out = []
    if task != "multilabel":
        t = torch.randint(0, 2 if task == "binary" else c, (2, 5, 4))
        t[0, 0, 0] = 255
        out.append(t)
    soft = torch.rand(2, c, 5, 4)
    if task == "multiclass":
        soft = soft / soft.sum(1, keepdim=True)
    out.append(soft)
    return out


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("name", list(LossName))
def test_every_loss_follows_the_contract(name, task):
    c = TASKS[task]
    loss = create_loss(name, task=task, num_classes=c, ignore_index=255)
    assert isinstance(loss, nn.Module)
    for target in _targets(task, c):
        x = torch.randn(2, c, 5, 4, requires_grad=True)
        value = loss(x, target)
        assert value.ndim == 0 and value.dtype == torch.float32 and torch.isfinite(value)
        value.backward()
        assert x.grad is not None and x.grad.shape == x.shape
        if name in (LossName.CE, LossName.DICECE):
            loss(x, target, pixel_weights=torch.rand(2, 5, 4))


def test_factory_options_are_the_documented_ones():
    names = ("dice", "dicece", "ce", "jaccard", "gdice", "focal", "tversky", "focal_tversky",
             "lovasz")
    assert set(LossName) == {LossName(v) for v in names}
    loss = create_loss("dice", task="multiclass", num_classes=3, scope="image", squared=True,
                       empty="fp_rate", include_background=False, eps=1e-6, from_logits=False)
    assert (loss.scope.value, loss.squared, loss.empty.value) == ("image", True, "fp_rate")
    assert loss_options("gdice") == ("from_logits", "scope", "weight_type", "include_background",
                                     "eps")  # fmt: skip
    assert isinstance(create_loss(LossName.GDICE, task="multiclass", num_classes=3,
                                  weight_type="simple"), losses.GeneralizedDiceLoss)  # fmt: skip


def test_class_weights_move_with_the_module_and_stay_out_of_state_dict():
    loss = create_loss("dicece", task="multiclass", num_classes=3, class_weights=[1.0, 2.0, 3.0])
    assert loss.state_dict() == {}
    assert loss.class_weights.tolist() == [1.0, 2.0, 3.0]


def test_public_names():
    assert set(losses.__all__) <= set(dir(losses))
    for name in losses.__all__:
        assert getattr(losses, name).__doc__


def test_a_sum_of_terms_routes_each_option_to_the_terms_that_take_it():
    loss = create_loss("dice+focal", task="multiclass", num_classes=3, weights=[1.0, 0.5],
                       gamma=1.0, scope="image", ignore_index=255)
    assert isinstance(loss, losses.WeightedSumLoss)
    assert loss.weights == (1.0, 0.5) and loss.names == ("dice", "focal")
    dice, focal = loss.terms
    assert dice.scope.value == "image" and focal.gamma == 1.0
    x, t = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    expected = dice(x, t) + 0.5 * focal(x, t)
    assert float(loss(x, t)) == pytest.approx(float(expected), rel=1e-6)
    assert loss_options("dice+focal") == (*loss_options("dice"), "alpha", "gamma")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("dice+focal", {"weights": [1.0]}, "one weight per term"),
        ("dice+focal", {"weights": [1.0, -1.0]}, "not valid"),
        ("dice+dice", {}, "twice"),
        ("dice+nope", {}, "loss term 'nope'"),
        ("dice+focal", {"beta": 0.5}, r"\['beta'\] are not valid"),
    ],
)
def test_bad_sums_are_refused_with_the_reason(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_loss(name, task="multiclass", num_classes=3, **kwargs)
