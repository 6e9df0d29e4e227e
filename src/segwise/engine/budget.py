"""A run planned from its time limit: steps, warmup and validations that fit (pure).

With ``train.time_limit`` the run measures its first :data:`PROBE_STEPS` optimizer steps and
the validation of one image, then :func:`plan_budget` sizes the whole run to what fits:

- validation may take :data:`VALIDATION_SHARE` of the time left; each validation reads a
  subset of ``val_images`` images spread over the val set (:func:`spread_indices`), and when
  even :data:`MIN_VAL_IMAGES` per validation would not fit, the run validates less often
  (``val_every`` doubled until they do); the last epoch always validates, on the same subset;
- the optimizer steps fill the rest (less a :data:`MARGIN_SHARE` for checkpoints and pictures),
  never more than the configured run;
- the warmup is the default (one epoch, at most 5 %) of the *fitted* run, or the value given.

The result, a :class:`BudgetPlan`, is stored in ``last.pt``: the learning rate is a pure
function of the step and the plan, so ``--resume`` continues the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from segwise.engine.progress import format_duration

__all__ = [
    "MARGIN_SHARE",
    "MIN_VAL_IMAGES",
    "PROBE_STEPS",
    "VALIDATION_SHARE",
    "BudgetPlan",
    "plan_budget",
    "spread_indices",
    "validation_count",
]

PROBE_STEPS = 3  # steps measured before the plan (the first one's start-up cost left out)
VALIDATION_SHARE = 0.2  # at most this share of the time left goes to validation
MARGIN_SHARE = 0.05  # kept back for checkpoints, pictures and the epochs' start-up
MIN_VAL_IMAGES = 8  # fewer per validation than this: validate less often instead


@dataclass(frozen=True)
class BudgetPlan:
    """The run as fitted to its time limit.

    Attributes:
        total_steps: optimizer steps of the whole run (the schedule ends there).
        warmup_steps: linear-warmup steps of the fitted run.
        val_images: images per validation (all of them when the val set is that small).
        val_every: epochs between validations (the last epoch always validates).
        step_seconds: the measured cost of one optimizer step.
        val_image_seconds: the measured cost of validating one image.
    """

    total_steps: int
    warmup_steps: int
    val_images: int
    val_every: int
    step_seconds: float
    val_image_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetPlan:
        return cls(**data)

    def describe(self, *, time_limit: float, val_size: int, steps_per_epoch: int,
                 configured_steps: int) -> str:
        """The plan line: ``time plan ...`` with what was measured and what was chosen."""
        epochs = max(1, math.ceil(self.total_steps / max(1, steps_per_epoch)))
        validations = validation_count(epochs, self.val_every)
        subset = ("all" if self.val_images >= val_size
                  else f"{self.val_images} spread over the")
        cut = "" if self.total_steps >= configured_steps else f" of the {configured_steps} asked"
        return (f"time plan {format_duration(time_limit)}: {self.total_steps} steps{cut} "
                f"({self.step_seconds:.2f} s each, measured), {epochs} epoch(s), warmup "
                f"{self.warmup_steps} steps; {validations} validation(s) of {subset} "
                f"{val_size} val images ({self.val_image_seconds:.2f} s each"
                + (f", every {self.val_every} epochs" if self.val_every > 1 else "") + ")")


def validation_count(epochs: int, val_every: int) -> int:
    """Validations of a run of ``epochs``: every ``val_every``-th epoch and the last."""
    return sum(1 for e in range(1, epochs + 1) if e % val_every == 0 or e == epochs)


def spread_indices(size: int, count: int) -> list[int]:
    """``count`` indices of ``range(size)`` spread evenly (the middle of ``count`` equal
    parts), so a subset sees the whole val set, not its first frames; all when ``count >=
    size``."""
    if count >= size:
        return list(range(size))
    return [(2 * i + 1) * size // (2 * count) for i in range(count)]


def plan_budget(
    *,
    seconds_left: float,
    steps_done: int,
    step_seconds: float,
    val_image_seconds: float,
    val_size: int,
    steps_per_epoch: int,
    configured_steps: int,
    val_every: int,
    warmup: Any,
) -> BudgetPlan:
    """Size the run to ``seconds_left`` at the measured costs.

    Args:
        seconds_left: time left of the limit, now.
        steps_done: optimizer steps already taken (the probe); the plan never has fewer.
        step_seconds: measured seconds per optimizer step (> 0).
        val_image_seconds: measured seconds to validate one image.
        val_size: images in the val set.
        steps_per_epoch: optimizer steps per epoch.
        configured_steps: the steps the config asks for (epochs and ``max_steps``); the plan
            never has more.
        val_every: the configured epochs between validations.
        warmup: ``warmup(total_steps) -> int``, the warmup of a run of that many steps.
    """
    usable = max(0.0, seconds_left) * (1.0 - MARGIN_SHARE)
    val_budget = VALIDATION_SHARE * usable
    step_seconds = max(step_seconds, 1e-9)
    val_image_seconds = max(val_image_seconds, 1e-9)
    spe = max(1, steps_per_epoch)

    def steps_for(seconds: float) -> int:
        fit = steps_done + math.floor(max(0.0, seconds) / step_seconds)
        return max(steps_done, min(configured_steps, fit))

    every, images = max(1, val_every), val_size
    steps = steps_for(usable - min(val_budget, val_size * val_image_seconds))
    for _ in range(4):  # the steps decide the epochs, the epochs the validations: settle
        epochs = max(1, math.ceil(steps / spe))
        least = min(val_size, MIN_VAL_IMAGES) * val_image_seconds
        while every < epochs and validation_count(epochs, every) * least > val_budget:
            every *= 2
        count = validation_count(epochs, every)
        images = max(1, min(val_size, math.floor(val_budget / (count * val_image_seconds))))
        steps = steps_for(usable - count * images * val_image_seconds)
    # the last settle may have added an epoch (and a validation): take its steps back
    epochs = max(1, math.ceil(steps / spe))
    count = validation_count(epochs, every)
    steps = min(steps, steps_for(usable - count * images * val_image_seconds))
    return BudgetPlan(total_steps=max(1, steps), warmup_steps=warmup(max(1, steps)),
                      val_images=images, val_every=every, step_seconds=step_seconds,
                      val_image_seconds=val_image_seconds)
