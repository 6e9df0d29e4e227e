from __future__ import annotations

import math

import pytest

from segwise.engine.config import ScheduleName
from segwise.engine.schedule import lr_at_step, warmup_steps


def test_warmup_is_linear_and_reaches_peak():
    # warmup 3 steps: lr * 1/4, 2/4, 3/4, then the peak at step 3
    lrs = [lr_at_step(s, total_steps=10, warmup_steps=3, base_lr=1.0) for s in range(4)]
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cosine_hand_values():
    kw = {"total_steps": 10, "warmup_steps": 0, "base_lr": 2.0, "min_lr": 0.0}
    assert lr_at_step(0, **kw) == pytest.approx(2.0)
    assert lr_at_step(5, **kw) == pytest.approx(1.0)  # half way: 0.5 * (1 + cos(pi/2))
    assert lr_at_step(10, **kw) == pytest.approx(0.0)
    assert lr_at_step(2, **kw) == pytest.approx(1.0 + math.cos(math.pi * 0.2))


def test_poly_and_constant():
    kw = {"total_steps": 4, "warmup_steps": 0, "base_lr": 1.0}
    assert lr_at_step(2, schedule=ScheduleName.POLY, poly_power=1.0, **kw) == pytest.approx(0.5)
    assert lr_at_step(2, schedule=ScheduleName.POLY, poly_power=2.0, **kw) == pytest.approx(0.25)
    assert lr_at_step(3, schedule=ScheduleName.CONSTANT, **kw) == 1.0
    # min_lr is the floor
    assert lr_at_step(4, schedule=ScheduleName.POLY, min_lr=0.1, **kw) == pytest.approx(0.1)


def test_default_warmup_is_one_epoch_at_most_5_percent_of_the_run():
    """issue 17: a fixed epoch of warmup was 42 % of a 60-step run and cost val Dice."""
    # 50 epochs x 10 steps: one epoch = 10 steps = 2 % of 500, under the cap
    assert warmup_steps(None, steps_per_epoch=10, epochs=50, max_steps=None) == 10
    # the run: 4 epochs x 62 = 248 steps; 5 % = 12.4 -> 12 (was 62)
    assert warmup_steps(None, steps_per_epoch=62, epochs=4, max_steps=None) == 12
    # 3 epochs x 25 cut to max_steps=60: 5 % = 3 steps (was 25)
    assert warmup_steps(None, steps_per_epoch=25, epochs=3, max_steps=60) == 3
    # a value given is used as is, however long the run
    assert warmup_steps(1.0, steps_per_epoch=25, epochs=3, max_steps=60) == 25
    assert warmup_steps(0.5, steps_per_epoch=2, epochs=1, max_steps=None) == 1
    assert warmup_steps(0.0, steps_per_epoch=62, epochs=4, max_steps=None) == 0


def test_config_default_warmup_is_none_and_validated_when_given():
    from segwise.engine.config import OptimConfig, RunConfig

    assert OptimConfig().warmup_epochs is None
    RunConfig().validate()
    with pytest.raises(ValueError, match="optim.warmup_epochs=-1"):
        RunConfig(optim=OptimConfig(warmup_epochs=-1)).validate()
