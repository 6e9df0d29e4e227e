"""Learning-rate schedules as pure functions of the global step (so resuming is exact)."""

from __future__ import annotations

import math

from segwise.engine.config import ScheduleName

__all__ = ["AUTO_WARMUP_SHARE", "lr_at_step", "warmup_steps"]

#: the default warmup (``optim.warmup_epochs=None``) is one epoch, at most this share of the run
AUTO_WARMUP_SHARE = 0.05


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


def warmup_steps(
    warmup_epochs: float | None, *, steps_per_epoch: int, epochs: int, max_steps: int | None
) -> int:
    """Linear-warmup length in optimizer steps.

    A number: ``round(warmup_epochs * steps_per_epoch)``, as given. ``None`` (the default):
    one epoch, at most :data:`AUTO_WARMUP_SHARE` (5 %) of the configured run (``epochs *
    steps_per_epoch`` cut to ``max_steps``; the configured budget, not one fitted to
    ``--time-limit``, so a resumed run gets the same value). A fixed epoch of warmup is 2 %
    of a 50-epoch run but 42 % of a 60-step one, and there it cost 0.18 val Dice on dsb2018
    in one seed of two, 0.02 in the other (issue 17, docs/benchmarks.md, "The engine at equal
    work").

    Args:
        warmup_epochs: warmup length in epochs (fractions allowed), or None for the default.
        steps_per_epoch: optimizer steps per epoch.
        epochs: configured epochs.
        max_steps: configured cap on the optimizer steps, or None.
    """
    if warmup_epochs is not None:
        return round(warmup_epochs * steps_per_epoch)
    budget = epochs * steps_per_epoch
    if max_steps is not None:
        budget = min(budget, max_steps)
    return min(steps_per_epoch, round(AUTO_WARMUP_SHARE * budget))
