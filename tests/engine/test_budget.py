"""The time plan (segwise.engine.budget): hand-computed plans, spread subsets, the plan line."""

from __future__ import annotations

from segwise.engine.budget import BudgetPlan, plan_budget, spread_indices, validation_count
from segwise.engine.progress import RunPlan, step_line


def _warmup(steps: int) -> int:  # the default: one epoch of 20 steps, at most 5 %
    return min(20, round(0.05 * steps))


def test_plan_budget_by_hand():
    # 100 s left: 95 usable, 19 for validation. 3 steps done at 0.5 s, 1 s per val image,
    # 50 val images, 20 steps per epoch. First guess 3 + 76 / 0.5 = 155 steps = 8 epochs;
    # 8 images per validation cost 8 s, so 8 validations (64 s) are too many: val_every 2
    # (4 x 8 = 32 s) still is, val_every 4 (epochs 4 and 8: 16 s) fits; 19 / 2 -> 9 images
    # each (18 s); steps 3 + (95 - 18) / 0.5 = 157 (8 epochs still), warmup round(7.85) = 8
    plan = plan_budget(seconds_left=100, steps_done=3, step_seconds=0.5, val_image_seconds=1.0,
                       val_size=50, steps_per_epoch=20, configured_steps=1000, val_every=1,
                       warmup=_warmup)
    assert plan == BudgetPlan(total_steps=157, warmup_steps=8, val_images=9, val_every=4,
                              step_seconds=0.5, val_image_seconds=1.0)
    # the whole plan fits in the usable time: 154 steps x 0.5 s + 2 x 9 images x 1 s = 95 s
    assert (157 - 3) * 0.5 + validation_count(8, 4) * 9 * 1.0 <= 95


def test_plan_budget_never_more_than_asked_nor_less_than_done():
    roomy = plan_budget(seconds_left=1000, steps_done=3, step_seconds=0.5,
                        val_image_seconds=0.1, val_size=10, steps_per_epoch=5,
                        configured_steps=20, val_every=1, warmup=_warmup)
    assert (roomy.total_steps, roomy.val_images, roomy.val_every) == (20, 10, 1)
    spent = plan_budget(seconds_left=1, steps_done=3, step_seconds=1.0, val_image_seconds=5.0,
                        val_size=50, steps_per_epoch=20, configured_steps=1000, val_every=1,
                        warmup=_warmup)
    assert (spent.total_steps, spent.val_images) == (3, 1)  # stop now, validate one image


def test_spread_indices_cover_the_val_set():
    assert spread_indices(10, 3) == [1, 5, 8]
    assert spread_indices(4, 8) == [0, 1, 2, 3]
    assert spread_indices(100, 4) == [12, 37, 62, 87]


def test_run_plan_with_a_budget_and_the_eta_within_the_limit():
    plan = RunPlan(steps_per_epoch=20, config_epochs=50, max_steps=None, planned_epochs=None,
                   config_val_every=1)
    assert (plan.total_steps, plan.val_every, plan.val_images, plan.warmup_steps(20)) == (
        1000, 1, None, 20)
    plan.apply_budget(BudgetPlan(157, 8, 9, 4, 0.5, 1.0))
    assert (plan.epochs, plan.total_steps, plan.val_every, plan.val_images) == (8, 157, 4, 9)
    assert plan.warmup_steps(20) == 8
    # 1.0 s per step would say 2 min; 30 s are left of the limit, so the ETA says 30 s
    line = step_line(1, 5, plan, 5, 0.5, 4.0, 1.0, None, 4, seconds_left=30)
    assert line.endswith("run 30 s (time limit)")


def test_plan_line_names_what_was_measured_and_chosen():
    line = BudgetPlan(157, 8, 9, 4, 0.5, 1.0).describe(
        time_limit=180, val_size=50, steps_per_epoch=20, configured_steps=1000)
    assert line == ("time plan 3 min: 157 steps of the 1000 asked (0.50 s each, measured), "
                    "8 epoch(s), warmup 8 steps; 2 validation(s) of 9 spread over the 50 val "
                    "images (1.00 s each, every 4 epochs)")
