"""Everything a run does before its first epoch, and what the loop needs from it.

:func:`start_run` reads a resumed run's checkpoint, picks the device (and joins a distributed
run), builds the adapter, model, optimizer, AMP scaler and EMA, restores the training state,
builds the loaders and the :class:`~segwise.engine.progress.RunPlan`, writes the resolved
config and prints the start-of-run lines. Options, data and model were checked before
(:func:`~segwise.engine.preflight.check_run`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segwise.engine import distributed as dist_utils
from segwise.engine.banner import describe_run
from segwise.engine.callbacks import TrainingRun, TrainingState, restore_state
from segwise.engine.config import OptimizerName, RunConfig
from segwise.engine.preflight import CheckedRun, check_run
from segwise.engine.progress import RunPlan, describe_warmup
from segwise.engine.registry import make_adapter
from segwise.engine.schedule import warmup_steps as resolve_warmup
from segwise.engine.setup import (
    check_batch_statistics,
    derive_data_defaults,
    resolve_amp,
    seed_everything,
)
from segwise.runs.checkpoint import load_checkpoint
from segwise.runs.device import resolve_device

__all__ = ["LoopParts", "start_run"]


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


def start_run(config: RunConfig | None, run_dir: Path, *, resume: bool, quiet: bool, box: list,
              checked: CheckedRun | None,
              clock: Callable[[], float]) -> tuple[TrainingRun, LoopParts]:
    """Everything before the first epoch: device, data, model, optimizer, resumed state,
    loaders, the plan, and the start-of-run lines (the banner).

    Args:
        config: the run configuration; ignored with ``resume`` (the checkpoint's is used).
        run_dir: the run folder (already checked, and locked by the caller).
        resume: continue from ``run_dir/last.pt``.
        quiet: print nothing.
        box: receives the training state as soon as it exists (for the Ctrl-C message).
        checked: :func:`check_run`'s result for a new run; None: checked here.
        clock: the run's monotonic clock (time limit and elapsed time).
    """
    from segwise.data import make_loader
    from segwise.data.loaders import LoaderSettings

    started = clock()
    ckpt = None
    if resume:
        ckpt = load_checkpoint(run_dir / "last.pt")
        config = _config_from_checkpoint(ckpt)
        for stale in run_dir.glob(".*.pt.*.tmp"):  # a write cut short by a crash or kill
            stale.unlink()
    t_cfg = config.train
    deadline = None if t_cfg.time_limit is None else started + t_cfg.time_limit
    if t_cfg.threads is not None:
        torch.set_num_threads(t_cfg.threads)
    device = resolve_device(t_cfg.device)
    ctx = dist_utils.init_distributed(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    _say(ctx, quiet, f"run folder {run_dir} (curves.png and overlays.png appear there as it "
                     "trains)")
    amp_dtype, use_scaler = resolve_amp(t_cfg.amp, device)
    channels_last = t_cfg.channels_last if t_cfg.channels_last is not None else (
        device.type == "cuda"
    )

    # a resumed run checks the config stored in its checkpoint (the weights are in it)
    checked = checked or check_run(config, check_weights=False)
    index = checked.index
    info = index.info
    _say(ctx, quiet, f"checked   decoded all {checked.decoded} images in "
                     f"{checked.decode_seconds:.1f} s (as `segwise data inspect` does)")
    user_data = config.data
    data_cfg = derive_data_defaults(config.data, info, device)
    config = dataclasses.replace(config, data=data_cfg)
    adapter = make_adapter(
        config, info, device=device, amp_dtype=amp_dtype, channels_last=channels_last,
        index=index,
    )
    monitor = (t_cfg.monitor or adapter.default_monitor).value
    model_args = adapter.model_args

    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_resolved(run_dir, config, info, model_args)
    _say(ctx, quiet, describe_run(config, user_data, info, adapter, device, amp_dtype,
                                  channels_last, ctx))

    seed_everything(t_cfg.seed)
    model = adapter.build_model(config.model.weights if ckpt is None else None).to(device)
    check_batch_statistics(model, batch_size=min(data_cfg.batch_size, len(index.train)),
                           crop_size=data_cfg.crop_size, in_channels=info.in_channels)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _build_optimizer(config, model, device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    ema = None
    if config.optim.ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(config.optim.ema_decay), use_buffers=True
        )
    state = TrainingState()
    if ckpt is not None:
        state = restore_state(ckpt, model, optimizer, scaler, ema)
        _say(ctx, quiet, f"resumed {run_dir} after epoch {state.epoch} (step {state.step})")
    box.append(state)

    train_ds, val_ds = adapter.datasets(index, data_cfg)
    device_aug = adapter.device_augment(data_cfg)  # None: the loader's items are augmented
    loader = _resident_batches(train_ds, data_cfg, device, t_cfg.seed, ctx, quiet)
    if loader is None:
        loader = make_loader(
            train_ds,
            batch_size=data_cfg.batch_size,
            shuffle=True,
            settings=LoaderSettings(workers=data_cfg.workers, pin_memory=data_cfg.pin_memory,
                                    persistent_workers=data_cfg.persistent_workers,
                                    prefetch_factor=data_cfg.prefetch_factor),
            drop_last=len(train_ds) > data_cfg.batch_size,
            seed=t_cfg.seed,
            distributed=ctx.enabled,
        )
    steps_per_epoch = len(loader)
    if t_cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, t_cfg.max_steps_per_epoch)
    plan = RunPlan(steps_per_epoch, t_cfg.epochs, t_cfg.max_steps, state.planned_epochs)
    warmup_steps = resolve_warmup(config.optim.warmup_epochs, steps_per_epoch=steps_per_epoch,
                                  epochs=t_cfg.epochs, max_steps=t_cfg.max_steps)
    _say(ctx, quiet, plan.describe(t_cfg.time_limit))
    _say(ctx, quiet, describe_warmup(warmup_steps, plan.total_steps, steps_per_epoch))

    train_model: nn.Module = model
    if ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if device.type == "cuda" else None
        )
    if t_cfg.compile:
        train_model = torch.compile(train_model)

    run = TrainingRun(
        run_dir=run_dir, config=config, info=info, adapter=adapter, model=model, ema=ema,
        optimizer=optimizer, scaler=scaler, ctx=ctx, device=device, plan=plan, state=state,
        monitor=monitor, model_args=model_args, quiet=quiet, clock=clock, started=started,
    )
    loop = LoopParts(train_model=train_model, loader=loader, device_aug=device_aug,
                     val_ds=val_ds, train_size=len(train_ds), amp_dtype=amp_dtype,
                     warmup_steps=warmup_steps, deadline=deadline)
    return run, loop


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
