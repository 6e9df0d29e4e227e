"""The training loop: one function, :func:`fit`, over small explicit pieces.

Epoch ``e`` draws all its randomness (shuffling, augmentation, dropout) from a generator
seeded by ``(seed, e)``, and the learning rate is a pure function of the global step; with the
model, optimizer and scaler states in ``last.pt`` this makes ``--resume`` continue exactly
where the run stopped (bit-identical on CPU with ``workers=0``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segwise.engine import distributed as dist_utils
from segwise.engine.adapters import make_adapter
from segwise.engine.checkpoint import load_checkpoint, save_checkpoint
from segwise.engine.config import OptimizerName, RunConfig
from segwise.engine.run_log import RunLog
from segwise.engine.schedule import lr_at_step
from segwise.engine.setup import (
    derive_data_defaults,
    resolve_amp,
    resolve_device,
    seed_everything,
)

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


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0  # validations without improvement (early stopping)
    history: list[dict[str, Any]] = field(default_factory=list)


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


def _set_epoch(loader: Any, epoch: int, seed: int) -> None:
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    generator = getattr(loader, "generator", None)
    if generator is not None:
        generator.manual_seed(seed * 100_003 + epoch)


def _improved(score: float, best: float | None) -> bool:
    return best is None or (math.isfinite(score) and score > best)


def fit(
    config: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    quiet: bool = False,
) -> FitResult:
    """Train a model as ``config`` says, writing everything into ``run_dir``.

    Args:
        config: the run configuration (``config.data.root`` names the dataset); None with
            ``resume``, which takes the config stored in the checkpoint.
        run_dir: the run folder; must be new or empty unless ``resume``.
        resume: continue from ``run_dir/last.pt`` with the config stored there.
        stop_after_epoch: stop (as if interrupted) once this many epochs are complete; the
            run can then be continued with ``resume=True``.
        quiet: print nothing.

    Returns:
        The best validation score, its epoch and the per-epoch history.

    Raises:
        FileExistsError: ``run_dir`` holds files and ``resume`` is False.
        TrainingDivergedError: the loss became NaN/Inf (the message names the step).
    """
    from segwise.data import discover_dataset, make_loader

    run_dir = Path(run_dir)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(run_dir / "last.pt")
        config = _config_from_checkpoint(ckpt)
        for stale in run_dir.glob(".*.pt.*.tmp"):  # a write cut short by a crash or kill
            stale.unlink()
    elif config is None:
        raise ValueError("fit() needs a config unless resume=True")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(
            f"run folder {run_dir} already holds files; pass a new --out, or --resume {run_dir} "
            "to continue that run"
        )
    device = resolve_device(config.train.device)
    ctx = dist_utils.init_distributed(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    amp_dtype, use_scaler = resolve_amp(config.train.amp, device)
    channels_last = (
        config.train.channels_last
        if config.train.channels_last is not None
        else device.type == "cuda"
    )

    index = discover_dataset(
        config.data.root,
        mask_kind=config.data.mask_kind,
        ignore_index=config.data.ignore_index,
        val_fraction=config.data.val_fraction,
        seed=config.train.seed,
    )
    info = index.info
    if not index.train:
        raise ValueError(f"no training images found in {config.data.root}")
    if not index.val:
        raise ValueError(
            f"no validation images in {config.data.root}: add a split file or raise "
            "--val-fraction (at least one image must be held out)"
        )
    data_cfg = derive_data_defaults(config.data, info, device)
    config = dataclasses.replace(config, data=data_cfg)
    adapter = make_adapter(
        config, info, device=device, amp_dtype=amp_dtype, channels_last=channels_last
    )
    monitor = (config.train.monitor or adapter.default_monitor).value
    model_args = adapter.model_args

    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_resolved(run_dir, config, info, model_args)
    _say(ctx, quiet, _describe(config, info, adapter, device, amp_dtype, channels_last, ctx))

    seed_everything(config.train.seed)
    model = adapter.build_model(config.model.weights if ckpt is None else None).to(device)
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
    state = _State()
    if ckpt is not None:
        state = _restore(ckpt, model, optimizer, scaler, ema)
        _say(ctx, quiet, f"resumed {run_dir} after epoch {state.epoch} (step {state.step})")

    train_ds, val_ds = adapter.datasets(index, data_cfg)
    loader = make_loader(
        train_ds,
        batch_size=data_cfg.batch_size,
        shuffle=True,
        workers=data_cfg.workers,
        drop_last=len(train_ds) > data_cfg.batch_size,
        seed=config.train.seed,
        distributed=ctx.enabled,
    )
    steps_per_epoch = len(loader)
    if config.train.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.train.max_steps_per_epoch)
    total_steps = steps_per_epoch * config.train.epochs
    warmup_steps = round(config.optim.warmup_epochs * steps_per_epoch)

    train_model: nn.Module = model
    if ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if device.type == "cuda" else None
        )
    if config.train.compile:
        train_model = torch.compile(train_model)

    log = RunLog(run_dir, enabled=ctx.is_main)
    stopped_early = False
    try:
        while state.epoch < config.train.epochs:
            epoch = state.epoch + 1
            seed_everything(config.train.seed * 100_003 + epoch)
            _set_epoch(loader, epoch, config.train.seed)
            train_model.train()
            t0 = time.perf_counter()
            loss_sum, seen = 0.0, 0
            for i, batch in enumerate(loader):
                if i >= steps_per_epoch:
                    break
                lr = lr_at_step(
                    state.step,
                    total_steps=total_steps,
                    warmup_steps=warmup_steps,
                    base_lr=config.optim.lr,
                    min_lr=config.optim.min_lr,
                    schedule=config.optim.schedule,
                    poly_power=config.optim.poly_power,
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = adapter.training_loss(train_model, batch)
                batch_size = len(batch["image"])
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"loss is {loss.item()} at epoch {epoch}, step {state.step + 1} "
                        f"(lr {lr:.3g}); {run_dir / 'last.pt'} keeps the last good state. "
                        "Lower --lr, enable gradient clipping, or check the data."
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.optim.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update_parameters(model)
                state.step += 1
                loss_sum += float(loss.detach()) * batch_size
                seen += batch_size
                if ctx.is_main and not quiet and (i + 1) % max(1, steps_per_epoch // 5) == 0:
                    spent = time.perf_counter() - t0
                    eta = spent / (i + 1) * (steps_per_epoch - i - 1)
                    print(
                        f"  epoch {epoch} step {i + 1}/{steps_per_epoch} "
                        f"loss {loss_sum / seen:.4f} "
                        f"{seen * ctx.world_size / max(spent, 1e-9):.1f} img/s "
                        f"eta {eta:.0f} s",
                        flush=True,
                    )
            elapsed = time.perf_counter() - t0
            record: dict[str, Any] = {
                "epoch": epoch,
                "step": state.step,
                "lr": lr,
                "train_loss": _mean_across(loss_sum, seen, ctx, device),
                "train_images_per_s": seen * ctx.world_size / max(elapsed, 1e-9),
                "epoch_seconds": elapsed,
            }
            if epoch % config.train.val_every == 0 or epoch == config.train.epochs:
                eval_model = ema.module if ema is not None else model
                summary, overlays = adapter.validate(
                    eval_model,
                    val_ds,
                    indices=list(range(ctx.rank, len(val_ds), ctx.world_size)),
                    distributed=ctx.enabled,
                    keep_overlays=config.train.overlays if ctx.is_main else 0,
                )
                record.update({f"val_{k}": v for k, v in summary.items()})
                if monitor not in summary:
                    raise ValueError(
                        f"train.monitor={monitor!r} is not reported by a {config.train.task.value}"
                        f" run; choose one of: {', '.join(summary)}"
                    )
                score = summary[monitor]
                improved = _improved(score, state.best_score)
                if improved:
                    state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
                else:
                    state.bad_epochs += 1
                if ctx.is_main and overlays:
                    from segwise.viz import default_palette, save_overlay_grid

                    palette = list(info.class_colors) or default_palette(len(info.class_names))
                    save_overlay_grid(
                        run_dir / "overlays.png",
                        overlays,
                        palette,
                        ignore_index=adapter.ignore_index,
                    )
            else:
                improved = False
            state.epoch = epoch
            state.history.append(record)
            if ctx.is_main:
                payload = _payload(config, info, model_args, model, ema, optimizer, scaler, state)
                save_checkpoint(run_dir / "last.pt", payload)
                if improved:
                    save_checkpoint(run_dir / "best.pt", payload)
                log.write(state.history)
            _say(ctx, quiet, _epoch_line(record, config, improved))
            dist_utils.barrier(ctx)
            patience = config.train.patience
            if patience is not None and state.bad_epochs >= patience:
                _say(ctx, quiet, f"early stopping: no improvement for {patience} validations")
                stopped_early = True
                break
            if stop_after_epoch is not None and state.epoch >= stop_after_epoch:
                break
    finally:
        log.close()
        dist_utils.cleanup(ctx)
    return FitResult(run_dir, state.best_score, state.best_epoch, state.history, stopped_early)


def _mean_across(total: float, count: int, ctx: dist_utils.DistContext, device) -> float:
    if ctx.enabled:
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


def _payload(config, info, model_args, model, ema, optimizer, scaler, state: _State) -> dict:
    return {
        "config": config.to_dict(),
        "data_info": info.to_dict(),
        "model_args": model_args,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "ema": (
            {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
            if ema is not None
            else None
        ),
        "training": {
            "epoch": state.epoch,
            "step": state.step,
            "best_score": state.best_score,
            "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "history": state.history,
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "ema_n_averaged": (int(ema.n_averaged) if ema is not None else None),
        },
    }


def _restore(ckpt, model, optimizer, scaler, ema) -> _State:
    model.load_state_dict(ckpt["model"])
    training = ckpt["training"]
    optimizer.load_state_dict(training["optimizer"])
    scaler.load_state_dict(training["scaler"])
    if ema is not None and ckpt.get("ema") is not None:
        ema.module.load_state_dict(ckpt["ema"])
        ema.n_averaged.fill_(training["ema_n_averaged"] or 0)
    return _State(
        epoch=training["epoch"],
        step=training["step"],
        best_score=training["best_score"],
        best_epoch=training["best_epoch"],
        bad_epochs=training["bad_epochs"],
        history=list(training["history"]),
    )


def _config_from_checkpoint(ckpt: dict[str, Any]) -> RunConfig:
    from segwise.engine.config import config_from_dict

    return config_from_dict(ckpt["config"])


def _write_resolved(run_dir: Path, config: RunConfig, info: Any, model_args: dict) -> None:
    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    (run_dir / "data_info.json").write_text(json.dumps(info.to_dict(), indent=2))
    (run_dir / "model_args.json").write_text(json.dumps(model_args, indent=2))


def _describe(config, info, adapter, device, amp_dtype, channels_last, ctx) -> str:
    model_args = adapter.model_args
    d = config.data
    lines = [
        f"data      {d.root}: task={info.task.value}, classes={info.num_classes} "
        f"{list(info.class_names)}, in_channels={info.in_channels}, ignore={info.ignore_index}, "
        f"mask kind={info.mask_kind.value}",
        f"model     {model_args['name']} encoder={model_args['encoder']} "
        f"out_channels={model_args['num_classes']} options={model_args['options']}",
        f"loss      {adapter.loss_description}",
        f"optimizer {config.optim.optimizer.value} lr={config.optim.lr} "
        f"wd={config.optim.weight_decay} schedule={config.optim.schedule.value} "
        f"warmup={config.optim.warmup_epochs} ep, clip={config.optim.grad_clip}, "
        f"ema={config.optim.ema_decay}",
        f"train     epochs={config.train.epochs} crop={d.crop_size} batch={d.batch_size} "
        f"workers={d.workers} seed={config.train.seed} task={config.train.task.value}",
        f"device    {device} amp={amp_dtype} channels_last={channels_last} "
        f"compile={config.train.compile} processes={ctx.world_size}",
    ]
    return "\n".join(lines)


def _epoch_line(record: dict[str, Any], config: RunConfig, improved: bool) -> str:
    parts = [
        f"epoch {record['epoch']}/{config.train.epochs}",
        f"loss {record['train_loss']:.4f}",
        f"{record['train_images_per_s']:.1f} img/s",
    ]
    for key, value in record.items():
        if key.startswith("val_") and value is not None and not key.endswith("accuracy"):
            parts.append(f"{key[4:]} {value:.4f}")
    if improved:
        parts.append("* best")
    return " | ".join(parts)

