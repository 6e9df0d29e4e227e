from __future__ import annotations

import math

import pytest

from segwise.engine.config import ScheduleName
from segwise.engine.schedule import lr_at_step


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
