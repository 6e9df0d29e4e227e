"""Everything a run does before its first epoch, and what the loop needs from it.

:func:`start_run` takes the recipe :func:`~segwise.engine.preflight.check_run` built and
checked (adapter, data index, model, device, precision) and does only what writes or joins:
it joins a distributed run, writes the resolved config, prints the start-of-run lines, builds
the optimizer, AMP scaler and EMA around the recipe's model, restores a resumed run's state,
and builds the loaders and the :class:`~segwise.engine.progress.RunPlan`.
:func:`resume_recipe` checks a resumed run's stored config the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segwise.engine import distributed as dist_utils
from segwise.engine.banner import describe_run
from segwise.engine.budget import BudgetPlan
from segwise.engine.callbacks import TrainingRun, TrainingState, restore_state
from segwise.engine.config import OptimizerName, RunConfig
from segwise.engine.preflight import RunRecipe, check_run
from segwise.engine.progress import RunPlan, describe_warmup
from segwise.engine.schedule import warmup_steps as resolve_warmup
from segwise.runs.checkpoint import load_checkpoint

__all__ = ["LoopParts", "resume_recipe", "start_run"]


@dataclass(frozen=True)
class LoopParts:
    """What only the loop itself uses (callbacks see :class:`TrainingRun`)."""

    train_model: nn.Module  # the model as trained: DDP and/or torch.compile wrapped
    loader: Any  # a DataLoader or ResidentBatches
    device_aug: Any  # on-device augmentation, or None (the loader's items are augmented)
    val_ds: Any
    train_size: int
    amp_dtype: torch.dtype | None
    warmup_steps: int
    deadline: float | None  # on the run's clock; None without train.time_limit


def _say(ctx: dist_utils.DistContext, quiet: bool, text: str) -> None:
    if ctx.is_main and not quiet:
        print(text, flush=True)


def _build_optimizer(config: RunConfig, model: nn.Module, device: torch.device):
    o = config.optim
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": o.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused kernels on CUDA; the multi-tensor (foreach) path elsewhere: on CPU it is several
    # times faster than the per-parameter loop torch picks by default there
    speed = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if o.optimizer is OptimizerName.SGD:
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=True, **speed)
    return torch.optim.AdamW(groups, lr=o.lr, **speed)


def _resident_batches(train_ds: Any, data_cfg: Any, device: torch.device, seed: int,
                      ctx: dist_utils.DistContext, quiet: bool) -> Any:
    """``data.resident``: the train set kept on the device when it fits, else None (the
    loader is used, and the start-of-run output says why)."""
    if not data_cfg.resident:
        return None
    from segwise.data.device_augment import ResidentBatches

    if ctx.enabled:
        _say(ctx, quiet, "resident  not used: resident data is not sharded across processes; "
                         "batches come from the loader")
        return None
    try:
        batches = ResidentBatches(train_ds, batch_size=data_cfg.batch_size, device=device,
                                  drop_last=len(train_ds) > data_cfg.batch_size, seed=seed,
                                  max_bytes=ResidentBatches.budget(device))
    except MemoryError as err:
        _say(ctx, quiet, f"resident  not used: {err}; batches come from the loader")
        return None
    _say(ctx, quiet, f"resident  the decoded train set ({batches.nbytes / 2**20:.1f} MiB) "
                     f"stays on {device}; no loader processes")
    return batches


def start_run(recipe: RunRecipe, run_dir: Path, *, ckpt: dict[str, Any] | None, quiet: bool,
              box: list, clock: Callable[[], float],
              started: float | None = None) -> tuple[TrainingRun, LoopParts]:
    """Everything before the first epoch, on the checked recipe: the distributed group, the
    resolved files, the banner, optimizer, AMP scaler, EMA, resumed state, loaders, the plan.

    Args:
        recipe: :func:`~segwise.engine.preflight.check_run`'s result; its model is moved to
            the device and trained (nothing is built again).
        run_dir: the run folder (already checked, and locked by the caller).
        ckpt: the ``last.pt`` payload of a resumed run (:func:`resume_recipe`), else None.
        quiet: print nothing.
        box: receives the training state as soon as it exists (for the Ctrl-C message).
        clock: the run's monotonic clock (time limit and elapsed time).
        started: ``clock()`` when the run began (the time limit counts from there: the checks
            before this call included); None: now.
    """
    started = clock() if started is None else started
    config, info, device = recipe.config, recipe.index.info, recipe.device
    ctx = dist_utils.init_distributed(device.type)
    say = functools.partial(_say, ctx, quiet)
    say(f"run folder {run_dir} (curves.png and overlays.png appear there as it trains)")
    if info.spatial_dims == 3:
        say(f"checked   read all {recipe.decoded} volumes and their labels (geometry, label "
            "values), as `segwise data inspect` does")
    else:
        say(f"checked   decoded all {recipe.decoded} images in {recipe.decode_seconds:.1f} s "
            "(as `segwise data inspect` does)")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_resolved(run_dir, config, info, recipe.adapter.model_args)
    say(describe_run(config, recipe.user_data, info, recipe.adapter, device, recipe.amp_dtype,
                     recipe.channels_last, ctx))
    model, optimizer, scaler, ema = _training_objects(recipe)
    state = TrainingState()
    if ckpt is not None:
        state = restore_state(ckpt, model, optimizer, scaler, ema)
        say(f"resumed {run_dir} after epoch {state.epoch} (step {state.step})")
    box.append(state)
    train_ds, val_ds, loader, device_aug = _training_data(recipe, ctx, quiet)
    plan, warmup_steps = _plan(config, len(loader), state, say)
    t_cfg = config.train
    run = TrainingRun(
        run_dir=run_dir, config=config, info=info, adapter=recipe.adapter, model=model, ema=ema,
        optimizer=optimizer, scaler=scaler, ctx=ctx, device=device, plan=plan, state=state,
        monitor=recipe.monitor, model_args=recipe.adapter.model_args, quiet=quiet, clock=clock,
        started=started,
    )
    loop = LoopParts(train_model=_wrapped(model, ctx, device, compile=t_cfg.compile),
                     loader=loader, device_aug=device_aug, val_ds=val_ds,
                     train_size=len(train_ds), amp_dtype=recipe.amp_dtype,
                     warmup_steps=warmup_steps,
                     deadline=None if t_cfg.time_limit is None else started + t_cfg.time_limit)
    return run, loop


def resume_recipe(run_dir: Path) -> tuple[RunRecipe, dict[str, Any]]:
    """A resumed run's recipe and its ``last.pt`` payload: the config stored in the checkpoint
    (with its recorded model options), checked once as a new run's is; a write cut short by a
    crash or kill is removed; its stored class weights are reused as they are. Called inside
    the run-folder lock."""
    ckpt = load_checkpoint(run_dir / "last.pt")
    for stale in run_dir.glob(".*.pt.*.tmp"):
        stale.unlink()
    # the class weights the run trained with, as numbers: a rule is not computed again
    return check_run(_config_from_checkpoint(ckpt), resume=True,
                     class_weights=ckpt.get("class_weights")), ckpt


def _training_objects(recipe: RunRecipe) -> tuple[nn.Module, Any, Any, Any]:
    """The recipe's model on its device, its optimizer, AMP scaler and EMA (or None)."""
    config, device = recipe.config, recipe.device
    model = recipe.model.to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _build_optimizer(config, model, device)
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.use_scaler)
    ema = None
    if config.optim.ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(config.optim.ema_decay), use_buffers=True
        )
    return model, optimizer, scaler, ema


def _training_data(recipe: RunRecipe, ctx: dist_utils.DistContext,
                   quiet: bool) -> tuple[Any, Any, Any, Any]:
    """``(train_ds, val_ds, loader, device_aug)``: the adapter's datasets, the training batches
    (resident on the device, or a loader) and the on-device augmentation (or None)."""
    from segwise.data import make_loader
    from segwise.data.loaders import LoaderSettings

    data_cfg, seed = recipe.config.data, recipe.config.train.seed
    train_ds, val_ds = recipe.adapter.datasets(recipe.index, data_cfg)
    device_aug = recipe.adapter.device_augment(data_cfg)  # None: the loader's items are augmented
    loader = _resident_batches(train_ds, data_cfg, recipe.device, seed, ctx, quiet)
    if loader is None:
        loader = make_loader(
            train_ds,
            batch_size=data_cfg.batch_size,
            shuffle=True,
            settings=LoaderSettings(workers=data_cfg.workers, pin_memory=data_cfg.pin_memory,
                                    persistent_workers=data_cfg.persistent_workers,
                                    prefetch_factor=data_cfg.prefetch_factor),
            drop_last=len(train_ds) > data_cfg.batch_size,
            seed=seed,
            distributed=ctx.enabled,
        )
    return train_ds, val_ds, loader, device_aug


def _plan(config: RunConfig, batches: int, state: TrainingState,
          say: Callable[[str], None]) -> tuple[RunPlan, int]:
    """The run's :class:`RunPlan` and warmup steps for ``batches`` per epoch; both said."""
    t_cfg = config.train
    steps_per_epoch = batches
    if t_cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, t_cfg.max_steps_per_epoch)
    plan = RunPlan(steps_per_epoch, t_cfg.epochs, t_cfg.max_steps, state.planned_epochs,
                   config_val_every=t_cfg.val_every,
                   budget=None if state.budget is None else BudgetPlan.from_dict(state.budget))
    warmup_steps = resolve_warmup(config.optim.warmup_epochs, steps_per_epoch=steps_per_epoch,
                                  epochs=t_cfg.epochs, max_steps=t_cfg.max_steps)
    say(plan.describe(t_cfg.time_limit))
    if plan.budget is not None or t_cfg.time_limit is None:  # else the time plan says it
        say(describe_warmup(plan.warmup_steps(warmup_steps), plan.total_steps, steps_per_epoch))
    return plan, warmup_steps


def _wrapped(model: nn.Module, ctx: dist_utils.DistContext, device: torch.device, *,
             compile: bool) -> nn.Module:
    """The model as trained: DistributedDataParallel in a distributed run, then compiled."""
    if ctx.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if device.type == "cuda" else None
        )
    return torch.compile(model) if compile else model


def _config_from_checkpoint(ckpt: dict[str, Any]) -> RunConfig:
    """The checkpoint's run config, with the model options its ``model_args`` record (complete,
    :func:`load_checkpoint`), so that a resumed run rebuilds the network it saved even where a
    default changed since: a semantic model's encoder and options; an instance method's
    semantic architecture (``arch``, ``arch_options``) where its options name one (the method's
    other options are resolved again from the data, as the run did)."""
    from segwise.engine.config import config_from_dict

    config = config_from_dict(ckpt["config"])
    args = ckpt["model_args"]
    if args.get("name") != config.model.name:
        return config
    recorded = dict(args.get("options") or {})
    if args.get("kind", "semantic") == "semantic":
        model = dataclasses.replace(config.model, encoder=args.get("encoder"), options=recorded)
    elif "arch" in recorded and "arch_options" in recorded:
        model = dataclasses.replace(config.model, options={
            **config.model.options, "arch": recorded["arch"],
            "arch_options": recorded["arch_options"]})
    else:
        return config
    return dataclasses.replace(config, model=model)


def _write_resolved(run_dir: Path, config: RunConfig, info: Any, model_args: dict) -> None:
    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    (run_dir / "data_info.json").write_text(json.dumps(info.to_dict(), indent=2))
    (run_dir / "model_args.json").write_text(json.dumps(model_args, indent=2))
