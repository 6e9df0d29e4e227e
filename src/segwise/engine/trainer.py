"""The training loop: :func:`fit`, a short loop over small explicit pieces and callbacks.

The loop does what every run must do the same way (seeding, the optimizer step, the
learning-rate schedule, validation, the time limit and step caps); everything around it
(checkpoints, early stopping, logs, pictures, console lines, hints) is a callback from
:mod:`segwise.engine.callbacks`, and users can add their own.

Epoch ``e`` draws all its randomness (shuffling, augmentation, dropout) from a generator
seeded by ``(seed, e)``, and the learning rate is a pure function of the global step; with the
model, optimizer and scaler states in ``last.pt`` this makes ``--resume`` continue exactly
where the run stopped (bit-identical on CPU with ``workers=0``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segwise.engine import distributed as dist_utils
from segwise.engine.adapters import StepLoss
from segwise.engine.budget import MIN_VAL_IMAGES, PROBE_STEPS, plan_budget, spread_indices
from segwise.engine.callbacks import (
    CallbackList,
    StepReport,
    TrainingRun,
    TrainingState,
    ValidationReport,
    default_callbacks,
    mean_across,
)
from segwise.engine.config import RunConfig
from segwise.engine.preflight import RunRecipe, check_run
from segwise.engine.progress import ProgressDataset, format_duration
from segwise.engine.run_folder import (
    RunFolderLock,
    check_new_run_folder,
    check_resumable,
    interrupted_message,
)
from segwise.engine.run_start import LoopParts, resume_recipe, start_run
from segwise.engine.schedule import lr_at_step
from segwise.engine.schedule import warmup_steps as resolve_warmup
from segwise.engine.setup import seed_everything

__all__ = ["FitResult", "TrainingDivergedError", "fit"]



class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; ``last.pt`` holds the last good state."""


@dataclass
class FitResult:
    run_dir: Path
    best_score: float | None
    best_epoch: int | None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    hint: str | None = None  # the last validation's degenerate-prediction hint, if any


def _set_epoch(loader: Any, epoch: int, seed: int) -> None:
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    generator = getattr(loader, "generator", None)
    if generator is not None:
        generator.manual_seed(seed * 100_003 + epoch)


def fit(
    config: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    quiet: bool = False,
    callbacks: Sequence[Any] = (),
) -> FitResult:
    """Train a model as ``config`` says, writing everything into ``run_dir``.

    Everything is checked, and what the run uses built once, before the run folder is written
    (:func:`check_run`: options, data, adapter, model, batch statistics), so a refused run
    leaves nothing on disk. The run folder is the first line printed, so ``curves.png`` can be
    opened while the run trains.
    ``train.time_limit`` plans the run from the budget after its first few steps
    (:mod:`segwise.engine.budget`: the steps, the warmup and schedule, and bounded
    validations that fit, printed as the ``time plan`` line), and stops the run cleanly
    (validated, ``best.pt``/``last.pt`` written) if the budget runs out anyway;
    ``train.max_steps`` caps the optimizer steps.

    Args:
        config: the run configuration (``config.data.root`` names the dataset); None with
            ``resume``, which takes the config stored in the checkpoint.
        run_dir: the run folder; must be new, empty, or left by a run that stopped before
            its first checkpoint, unless ``resume``.
        resume: continue from ``run_dir/last.pt`` with the config stored there.
        stop_after_epoch: stop (as if interrupted) once this many epochs are complete; the
            run can then be continued with ``resume=True``.
        quiet: print nothing.
        callbacks: extra callback objects: any object with some of the hooks of
            :mod:`segwise.engine.callbacks` (their order is drawn in ``callbacks/base.py``).
            They run after the built-in ones (checkpoints, logs, pictures, console lines,
            hints, early stopping), on every process, and may end the run with
            ``run.request_stop(reason)``.

    Returns:
        The best validation score, its epoch and the per-epoch history.

    Raises:
        FileExistsError: ``run_dir`` holds a run or foreign files and ``resume`` is False, or
            another process is writing it.
        FileNotFoundError: ``resume`` and ``run_dir`` has no ``last.pt``.
        TrainingDivergedError: the loss became NaN/Inf (the message names the step).
        TypeError: an entry of ``callbacks`` is a class or has none of the hooks (checked
            before anything is written).
        KeyboardInterrupt: after saying what was saved and how to resume.
    """
    started = time.monotonic()  # the time limit counts the checks too
    run_dir = Path(run_dir)
    extra = CallbackList(callbacks).callbacks  # refused before the folder is touched
    is_main = int(os.environ.get("RANK", "0")) == 0
    recipe = _check_before_writing(config, run_dir, resume=resume, is_main=is_main)
    box: list[TrainingState] = []
    with RunFolderLock(run_dir, enabled=is_main):
        try:
            return _fit(recipe, run_dir, stop_after_epoch=stop_after_epoch, quiet=quiet,
                        box=box, extra=extra, started=started)
        except KeyboardInterrupt:
            if is_main and not quiet:
                print(interrupted_message(run_dir, box[0] if box else None), flush=True)
            raise


def _check_before_writing(config: RunConfig | None, run_dir: Path, *, resume: bool,
                          is_main: bool) -> RunRecipe | None:
    """Everything :func:`fit` checks before the run folder is touched: the folder, and for a
    new run the recipe (:func:`check_run`); None when resuming (its checkpoint's config is
    checked inside the folder lock, :func:`~segwise.engine.run_start.resume_recipe`)."""
    if resume:
        check_resumable(run_dir)
        return None
    if config is None:
        raise ValueError("fit() needs a config unless resume=True")
    check_new_run_folder(run_dir, clear=False)  # a refused folder fails before the checks
    recipe = check_run(config)  # every name and option, the data, the model: nothing written
    check_new_run_folder(run_dir, clear=is_main)  # only now: a failed start's leftovers
    return recipe


def _fit(recipe: RunRecipe | None, run_dir: Path, *, stop_after_epoch, quiet: bool,
         box: list, extra: Sequence[Any] = (), started: float | None = None) -> FitResult:
    """:func:`fit` inside the run-folder lock; ``box`` receives the training state (for the
    Ctrl-C message) as soon as it exists; ``recipe`` is :func:`check_run`'s result for a new
    run, None to resume (the config stored in the checkpoint is checked here, once)."""
    ckpt = None
    if recipe is None:
        recipe, ckpt = resume_recipe(run_dir)
    run, loop = start_run(recipe, run_dir, ckpt=ckpt, quiet=quiet, box=box,
                          clock=time.monotonic, started=started)
    callbacks = CallbackList([*default_callbacks(run.config), *extra])
    state, plan, t_cfg = run.state, run.plan, run.config.train
    stopped_early = False
    try:
        callbacks.fire("on_fit_start", run)
        while state.epoch < plan.epochs:
            epoch = state.epoch + 1
            step_before = state.step
            record, out_of_time = _train_epoch(run, loop, callbacks, epoch)
            if (out_of_time and state.step == step_before and state.history  # no step ran and
                    and any(k.startswith("val_") for k in state.history[-1])):  # nothing new
                run.say(f"time limit {format_duration(t_cfg.time_limit)} reached before epoch "
                        f"{epoch} began: stopped; best.pt is epoch {state.best_epoch}")
                break
            callbacks.fire("on_train_end", run, record)
            last_epoch = out_of_time or state.step >= plan.total_steps
            validated = epoch % plan.val_every == 0 or epoch >= plan.epochs or last_epoch
            improved = _validate(run, loop, callbacks, epoch, record) if validated else False
            state.epoch = epoch
            state.history.append(record)
            callbacks.fire("on_epoch_end", run, record, improved)
            dist_utils.barrier(run.ctx)
            if out_of_time:
                run.say(f"time limit {format_duration(t_cfg.time_limit)} reached in epoch "
                        f"{epoch}: stopped; best.pt is epoch {state.best_epoch}")
                break
            if run.stop is not None:
                run.say(run.stop.reason)
                stopped_early = run.stop.early
                break
            if stop_after_epoch is not None and state.epoch >= stop_after_epoch:
                break
            if state.step >= plan.total_steps:
                break
    finally:
        callbacks.fire("on_fit_end", run)
        dist_utils.cleanup(run.ctx)
    return FitResult(run_dir, state.best_score, state.best_epoch, state.history, stopped_early,
                     run.hint)


def _train_epoch(run: TrainingRun, loop: LoopParts, callbacks: CallbackList,
                 epoch: int) -> tuple[dict[str, Any], bool]:
    """One epoch's optimizer steps; its record and whether the time limit cut it short."""
    config, state, plan, ctx = run.config, run.state, run.plan, run.ctx
    seed = config.train.seed
    seed_everything(seed * 100_003 + epoch)
    _set_epoch(loop.loader, epoch, seed)
    if loop.device_aug is not None:
        loop.device_aug.seed(seed * 100_003 + epoch)
    loop.train_model.train()
    callbacks.fire("on_epoch_start", run, epoch)
    report_steps = callbacks.has("on_step_end")
    t0 = time.perf_counter()
    loss_sum, seen, out_of_time = 0.0, 0, False
    lr = run.optimizer.param_groups[0]["lr"]
    # a time limit without a time plan yet: measure the first steps, then plan (budget.py)
    probe = (min(PROBE_STEPS, plan.steps_per_epoch)
             if loop.deadline is not None and plan.budget is None else 0)
    step_ends = [run.clock()] if probe else []
    for i, batch in enumerate(loop.loader):
        if i >= plan.steps_per_epoch or state.step >= plan.total_steps:
            break
        if loop.deadline is not None and run.clock() > loop.deadline:
            out_of_time = True
            break
        if loop.device_aug is not None:
            batch = loop.device_aug.batch(batch, run.device)
        lr = _set_lr(run, loop)
        loss = _step(run, loop, batch, epoch, lr)
        batch_size = len(batch["image"])
        state.step += 1
        loss_value = float(loss.total.detach())
        loss_sum += loss_value * batch_size
        seen += batch_size
        if report_steps:
            terms = {name: float(value) for name, value in loss.terms.items()}
            callbacks.fire("on_step_end", run, StepReport(epoch, i + 1, loss_value, batch_size,
                                                          loss_sum / seen, seen, terms))
        if probe and plan.budget is None:
            step_ends.append(run.clock())
            if i + 1 == probe:
                _plan_time(run, loop, step_ends)
    elapsed = time.perf_counter() - t0
    record: dict[str, Any] = {
        "epoch": epoch,
        "step": state.step,
        "lr": lr,
        "train_loss": mean_across(loss_sum, seen, ctx, run.device),
        "train_images_per_s": seen * ctx.world_size / max(elapsed, 1e-9),
        "epoch_seconds": elapsed,
    }
    return record, out_of_time


def _set_lr(run: TrainingRun, loop: LoopParts) -> float:
    """The schedule's learning rate for the next step, set on every parameter group."""
    o = run.config.optim
    lr = lr_at_step(
        run.state.step,
        total_steps=run.plan.total_steps,
        warmup_steps=run.plan.warmup_steps(loop.warmup_steps),
        base_lr=o.lr,
        min_lr=o.min_lr,
        schedule=o.schedule,
        poly_power=o.poly_power,
    )
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    return lr


def _step(run: TrainingRun, loop: LoopParts, batch: dict[str, Any], epoch: int,
          lr: float) -> StepLoss:
    """Forward, backward (scaled under AMP), clipping, optimizer and EMA update; the
    adapter's :class:`StepLoss` (the total and its named terms)."""
    amp_dtype, optimizer, scaler = loop.amp_dtype, run.optimizer, run.scaler
    with torch.autocast(run.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        step = run.adapter.training_loss(loop.train_model, batch)
    loss = step.total
    if not torch.isfinite(loss):
        raise TrainingDivergedError(
            f"loss is {loss.item()} at epoch {epoch}, step {run.state.step + 1} "
            f"(lr {lr:.3g}); {run.run_dir / 'last.pt'} keeps the last good state. "
            "Lower --lr, enable gradient clipping, or check the data."
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    grad_clip = run.config.optim.grad_clip
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    return step


def _validate(run: TrainingRun, loop: LoopParts, callbacks: CallbackList, epoch: int,
              record: dict[str, Any]) -> bool:
    """Validate the model (the EMA model when there is one), add ``val_*`` to ``record`` and
    note the monitored score; whether it is the run's new best."""
    ctx, adapter, monitor = run.ctx, run.adapter, run.monitor
    tv = time.perf_counter()
    eval_model = run.ema.module if run.ema is not None else run.model
    count = run.plan.val_images
    if count is None and loop.deadline is not None and run.clock() > loop.deadline:
        count = MIN_VAL_IMAGES  # the limit came before the time plan: still bounded
    subset = spread_indices(len(loop.val_ds), len(loop.val_ds) if count is None else count)
    indices = subset[ctx.rank::ctx.world_size]
    keep = run.config.train.overlays if ctx.is_main else 0
    if keep:  # the pictured images (the first ones validated) spread over the val set
        first = [indices[i] for i in spread_indices(len(indices), keep)]
        indices = first + [i for i in indices if i not in set(first)]
    started = run.clock()

    def report(done: int, total: int, seconds: float) -> None:
        callbacks.fire("on_validation_progress", run, done, total, seconds)

    result = adapter.validate(
        eval_model,
        ProgressDataset(loop.val_ds, report, total=len(indices)),
        indices=indices,
        distributed=ctx.enabled,
        keep_overlays=keep,
    )
    run.val_seconds = time.perf_counter() - tv
    if run.plan.budget is not None:
        _refit_validations(run, epoch, (run.clock() - started) / max(1, len(indices)))
    loss = None if result.loss is None else mean_across(result.loss, 1, ctx, run.device)
    if loss is not None:
        record["val_loss"] = loss
    summary = result.summary
    record.update({f"val_{k}": v for k, v in summary.items()})
    if monitor not in summary:
        raise ValueError(
            f"train.monitor={monitor!r} is not reported by a {run.config.train.task.value}"
            f" run; choose one of: {', '.join(summary)}"
        )
    score = summary[monitor]
    improved = run.state.record_score(score, epoch)
    callbacks.fire("on_validation_end", run, ValidationReport(
        epoch, summary, score, improved, run.val_seconds, list(result.overlays), loss=loss,
        census=result.census))
    return improved


def _refit_validations(run: TrainingRun, epoch: int, image_seconds: float) -> None:
    """After a validation of a time-planned run: when an image cost more than planned, the
    validations left read fewer images, so that they fit the time the plan reserved for them
    (the steps and the learning rate do not change; the new count is stored with the plan)."""
    plan, budget = run.plan, run.plan.budget
    if run.ctx.enabled:  # every process validates the same subset
        image_seconds = mean_across(image_seconds, 1, run.ctx, run.device)
    left = sum(1 for e in range(epoch + 1, plan.epochs + 1)
               if e % plan.val_every == 0 or e == plan.epochs)
    fewer = max(1, math.floor(budget.val_images * budget.val_image_seconds / image_seconds))
    if left == 0 or fewer >= budget.val_images:
        return
    refit = dataclasses.replace(budget, val_images=fewer, val_image_seconds=image_seconds)
    plan.apply_budget(refit)
    run.state.budget = refit.to_dict()
    run.say(f"time plan: validation took {image_seconds:.2f} s per image (planned "
            f"{budget.val_image_seconds:.2f} s), so the {left} validation(s) left read "
            f"{fewer} images")


def _image_pixels(dataset: Any) -> list[int] | None:
    """Pixels of each image of a dataset with ``samples`` (read from the file headers), or
    None when they cannot be read."""
    from segwise.data.formats import image_header

    try:
        return [h * w for h, w, *_ in (image_header(s.image_path) for s in dataset.samples)]
    except (AttributeError, OSError, ValueError):
        return None


def _plan_time(run: TrainingRun, loop: LoopParts, step_ends: list[float]) -> None:
    """Plan the run from its time limit (:func:`~segwise.engine.budget.plan_budget`): the
    probe's step cost (``step_ends``: the clock at the epoch's start and after each step; the
    first step's start-up cost left out when there are more), one validated image's cost, and
    the time left; the plan is applied, stored in the state (``last.pt``) and printed."""
    t_cfg, o, ctx, plan = run.config.train, run.config.optim, run.ctx, run.plan
    steps = len(step_ends) - 1
    first = 1 if steps > 1 else 0
    step_seconds = (step_ends[-1] - step_ends[first]) / (steps - first)
    eval_model = run.ema.module if run.ema is not None else run.model
    probe_image = len(loop.val_ds) // 2
    t0 = run.clock()
    run.adapter.validate(eval_model, loop.val_ds, indices=[probe_image],
                         distributed=False, keep_overlays=0)
    loop.train_model.train()
    now = run.clock()
    # one image's cost, scaled to the val set's mean image (pixels, from the headers)
    pixels = _image_pixels(loop.val_ds)
    scale = 1.0 if pixels is None else sum(pixels) / len(pixels) / max(1, pixels[probe_image])
    measured = [step_seconds, (now - t0) * scale, loop.deadline - now]
    if ctx.enabled:  # every process plans the same run
        measured = [mean_across(value, 1, ctx, run.device) for value in measured]
    budget = plan_budget(
        seconds_left=measured[2], steps_done=run.state.step, step_seconds=measured[0],
        val_image_seconds=measured[1], val_size=len(loop.val_ds),
        steps_per_epoch=plan.steps_per_epoch, configured_steps=plan.total_steps,
        val_every=t_cfg.val_every,
        warmup=lambda steps: resolve_warmup(o.warmup_epochs, steps_per_epoch=plan.steps_per_epoch,
                                            epochs=t_cfg.epochs, max_steps=steps),
    )
    configured = plan.total_steps
    plan.apply_budget(budget)
    run.state.budget = budget.to_dict()
    run.say(budget.describe(time_limit=t_cfg.time_limit, val_size=len(loop.val_ds),
                            steps_per_epoch=plan.steps_per_epoch, configured_steps=configured))
