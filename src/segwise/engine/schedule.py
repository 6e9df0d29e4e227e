"""Learning-rate schedules as pure functions of the global step (so resuming is exact)."""

from __future__ import annotations

import math

from segwise.engine.config import ScheduleName

__all__ = ["lr_at_step"]


def lr_at_step(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    base_lr: float,
    min_lr: float = 0.0,
    schedule: ScheduleName = ScheduleName.COSINE,
    poly_power: float = 0.9,
) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Linear warmup from ``base_lr / (warmup_steps + 1)`` to ``base_lr`` over ``warmup_steps``,
    then the chosen decay to ``min_lr`` at ``total_steps``.

    Args:
        step: the global optimizer step, counted from 0.
        total_steps: the number of steps of the whole run.
        warmup_steps: linear warmup length (0 disables it).
        base_lr: peak learning rate.
        min_lr: the floor reached at the end of cosine/poly.
        schedule: the decay after warmup.
        poly_power: exponent of the poly schedule.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / (warmup_steps + 1)
    if schedule is ScheduleName.CONSTANT:
        return base_lr
    decay_steps = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / decay_steps)
    if schedule is ScheduleName.COSINE:
        factor = 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        factor = (1.0 - t) ** poly_power
    return min_lr + (base_lr - min_lr) * factor
