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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segwise.engine import distributed as dist_utils
from segwise.engine.banner import describe_run
from segwise.engine.checkpoint import load_checkpoint, save_checkpoint, weights_only_payload
from segwise.engine.config import OptimizerName, RunConfig
from segwise.engine.hints import degenerate_prediction_hint
from segwise.engine.preflight import CheckedRun, check_run
from segwise.engine.progress import (
    ProgressDataset,
    RunPlan,
    describe_warmup,
    format_duration,
    progress_line,
    step_line,
)
from segwise.engine.registry import make_adapter
from segwise.engine.run_folder import (
    RunFolderLock,
    check_new_run_folder,
    check_resumable,
    interrupted_message,
)
from segwise.engine.run_log import RunLog
from segwise.engine.schedule import lr_at_step
from segwise.engine.setup import (
    check_batch_statistics,
    derive_data_defaults,
    resolve_amp,
    resolve_device,
    seed_everything,
)

__all__ = ["FitResult", "TrainingDivergedError", "fit"]

VAL_PROGRESS_AFTER_S = 5.0  # validation progress lines only once a pass has taken this long
STEP_LINE_EVERY_S = 60.0  # progress lines: step 1, every fifth of an epoch, and at least this often

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


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0  # validations without improvement (early stopping)
    history: list[dict[str, Any]] = field(default_factory=list)
    planned_epochs: int | None = None  # epochs fitted to train.time_limit (None: not fitted)


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

    Everything is checked before the run folder is written (:func:`check_run`: options, data,
    model), so a refused run leaves nothing on disk. The run folder is the first line printed,
    so ``curves.png`` can be opened while the run trains.
    ``train.time_limit`` fits the epochs (and so the learning-rate schedule) to the budget
    after the first epoch, and stops the run cleanly (validated, ``best.pt``/``last.pt``
    written) if the budget runs out anyway; ``train.max_steps`` caps the optimizer steps.

    Args:
        config: the run configuration (``config.data.root`` names the dataset); None with
            ``resume``, which takes the config stored in the checkpoint.
        run_dir: the run folder; must be new, empty, or left by a run that stopped before
            its first checkpoint, unless ``resume``.
        resume: continue from ``run_dir/last.pt`` with the config stored there.
        stop_after_epoch: stop (as if interrupted) once this many epochs are complete; the
            run can then be continued with ``resume=True``.
        quiet: print nothing.

    Returns:
        The best validation score, its epoch and the per-epoch history.

    Raises:
        FileExistsError: ``run_dir`` holds a run or foreign files and ``resume`` is False, or
            another process is writing it.
        FileNotFoundError: ``resume`` and ``run_dir`` has no ``last.pt``.
        TrainingDivergedError: the loss became NaN/Inf (the message names the step).
        KeyboardInterrupt: after saying what was saved and how to resume.
    """
    run_dir = Path(run_dir)
    is_main = int(os.environ.get("RANK", "0")) == 0
    checked = None
    if resume:
        check_resumable(run_dir)
    elif config is None:
        raise ValueError("fit() needs a config unless resume=True")
    else:
        check_new_run_folder(run_dir, clear=False)  # a refused folder fails before the checks
        # every name and option, the data and the model, before the folder is touched
        checked = check_run(config)
        check_new_run_folder(run_dir, clear=is_main)  # only now: a failed start's leftovers
    box: list[_State] = []
    with RunFolderLock(run_dir, enabled=is_main):
        try:
            return _fit(config, run_dir, resume=resume, stop_after_epoch=stop_after_epoch,
                        quiet=quiet, box=box, checked=checked)
        except KeyboardInterrupt:
            if is_main and not quiet:
                print(interrupted_message(run_dir, box[0] if box else None), flush=True)
            raise


def _fit(config, run_dir: Path, *, resume: bool, stop_after_epoch, quiet: bool,
         box: list, checked: CheckedRun | None = None) -> FitResult:
    """:func:`fit` inside the run-folder lock; ``box`` receives the training state (for the
    Ctrl-C message) as soon as it exists; ``checked`` is :func:`check_run`'s result for a new
    run (a resumed run checks the config stored in its checkpoint here)."""
    from segwise.data import make_loader
    from segwise.data.loaders import LoaderSettings

    started = time.monotonic()
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
    decoded, decode_s = checked.decoded, checked.decode_seconds
    _say(ctx, quiet, f"checked   decoded all {decoded} images in {decode_s:.1f} s (as "
                     "`segwise data inspect` does)")
    user_data = config.data
    data_cfg = derive_data_defaults(config.data, info, device)
    config = dataclasses.replace(config, data=data_cfg)
    adapter = make_adapter(
        config, info, device=device, amp_dtype=amp_dtype, channels_last=channels_last
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
    state = _State()
    if ckpt is not None:
        state = _restore(ckpt, model, optimizer, scaler, ema)
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
    warmup_steps = round(config.optim.warmup_epochs * steps_per_epoch)
    _say(ctx, quiet, plan.describe(t_cfg.time_limit))
    _say(ctx, quiet, describe_warmup(warmup_steps, plan.total_steps, steps_per_epoch))

    train_model: nn.Module = model
    if ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if device.type == "cuda" else None
        )
    if t_cfg.compile:
        train_model = torch.compile(train_model)

    log = RunLog(run_dir, enabled=ctx.is_main, monitor=monitor)
    talk = ctx.is_main and not quiet
    stopped_early = False
    val_seconds: float | None = None  # cost of the last validation
    hint: str | None = None
    try:
        while state.epoch < plan.epochs:
            epoch = state.epoch + 1
            seed_everything(t_cfg.seed * 100_003 + epoch)
            _set_epoch(loader, epoch, t_cfg.seed)
            if device_aug is not None:
                device_aug.seed(t_cfg.seed * 100_003 + epoch)
            train_model.train()
            t0 = last_line = time.perf_counter()
            loss_sum, seen, out_of_time = 0.0, 0, False
            lr = optimizer.param_groups[0]["lr"]
            for i, batch in enumerate(loader):
                if i >= steps_per_epoch or state.step >= plan.total_steps:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    out_of_time = True
                    break
                if device_aug is not None:
                    batch = device_aug.batch(batch, device)
                lr = lr_at_step(
                    state.step,
                    total_steps=plan.total_steps,
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
                now = time.perf_counter()
                if talk and (i == 0 or (i + 1) % max(1, steps_per_epoch // 5) == 0
                             or now - last_line >= STEP_LINE_EVERY_S):
                    spent, last_line = now - t0, now
                    print(step_line(epoch, i + 1, plan, state.step, loss_sum / seen,
                                     seen * ctx.world_size / max(spent, 1e-9), spent / (i + 1),
                                     val_seconds, t_cfg.val_every), flush=True)
            elapsed = time.perf_counter() - t0
            record: dict[str, Any] = {
                "epoch": epoch,
                "step": state.step,
                "lr": lr,
                "train_loss": _mean_across(loss_sum, seen, ctx, device),
                "train_images_per_s": seen * ctx.world_size / max(elapsed, 1e-9),
                "epoch_seconds": elapsed,
            }
            last_epoch = out_of_time or state.step >= plan.total_steps

            def validate(epoch: int = epoch, record: dict = record) -> bool:
                nonlocal val_seconds, hint
                tv = time.perf_counter()
                eval_model = ema.module if ema is not None else model
                indices = list(range(ctx.rank, len(val_ds), ctx.world_size))
                watched = ProgressDataset(val_ds, _val_reporter(talk), total=len(indices))
                summary, overlays = adapter.validate(
                    eval_model,
                    watched,
                    indices=indices,
                    distributed=ctx.enabled,
                    keep_overlays=t_cfg.overlays if ctx.is_main else 0,
                )
                val_seconds = time.perf_counter() - tv
                if getattr(adapter, "validation_loss", None) is not None:
                    record["val_loss"] = _mean_across(adapter.validation_loss, 1, ctx, device)
                record.update({f"val_{k}": v for k, v in summary.items()})
                if monitor not in summary:
                    raise ValueError(
                        f"train.monitor={monitor!r} is not reported by a {t_cfg.task.value}"
                        f" run; choose one of: {', '.join(summary)}"
                    )
                score = summary[monitor]
                better = _improved(score, state.best_score)
                if better:
                    state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
                else:
                    state.bad_epochs += 1
                hint = degenerate_prediction_hint(
                    getattr(adapter, "prediction_census", None), info.class_names
                )
                if ctx.is_main and overlays and better:
                    _save_overlays(run_dir, overlays, info, adapter, epoch, monitor, score)
                return better

            validated = epoch % t_cfg.val_every == 0 or epoch >= plan.epochs or last_epoch
            improved = validate() if validated else False
            if deadline is not None and state.planned_epochs is None and not last_epoch:
                val_cost = val_seconds if val_seconds is not None else (
                    elapsed * len(val_ds) / max(1, len(train_ds))
                )
                fitted = plan.fit_to_budget(
                    done=epoch,
                    seconds_left=deadline - time.monotonic(),
                    seconds_per_epoch=elapsed + val_cost / t_cfg.val_every,
                )
                if fitted is not None:
                    state.planned_epochs = fitted
                    _say(ctx, quiet, f"time limit {format_duration(t_cfg.time_limit)}: "
                                     f"{fitted} epoch(s) fit, so the run ends after epoch "
                                     f"{fitted} (step {plan.total_steps}) and its learning-rate "
                                     "schedule is fitted to that")
                    if not validated and epoch >= plan.epochs:
                        improved = validate()
            state.epoch = epoch
            state.history.append(record)
            if ctx.is_main:
                payload = _payload(config, info, model_args, model, ema, optimizer, scaler, state)
                save_checkpoint(run_dir / "last.pt", payload)
                if improved:
                    save_checkpoint(run_dir / "best.pt", weights_only_payload(payload))
                log.write(state.history)
            _say(ctx, quiet, _epoch_line(record, plan, improved, hint, time.monotonic() - started))
            dist_utils.barrier(ctx)
            if out_of_time:
                _say(ctx, quiet, f"time limit {format_duration(t_cfg.time_limit)} reached in "
                                 f"epoch {epoch}: stopped; best.pt is epoch {state.best_epoch}")
                break
            patience = t_cfg.patience
            if patience is not None and state.bad_epochs >= patience:
                _say(ctx, quiet, f"early stopping: no improvement for {patience} validations")
                stopped_early = True
                break
            if stop_after_epoch is not None and state.epoch >= stop_after_epoch:
                break
            if state.step >= plan.total_steps:
                break
    finally:
        log.close()
        dist_utils.cleanup(ctx)
    return FitResult(run_dir, state.best_score, state.best_epoch, state.history, stopped_early,
                     hint)


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
            "planned_epochs": state.planned_epochs,
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
        planned_epochs=training.get("planned_epochs"),
    )


def _config_from_checkpoint(ckpt: dict[str, Any]) -> RunConfig:
    from segwise.engine.config import config_from_dict

    return config_from_dict(ckpt["config"])


def _write_resolved(run_dir: Path, config: RunConfig, info: Any, model_args: dict) -> None:
    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    (run_dir / "data_info.json").write_text(json.dumps(info.to_dict(), indent=2))
    (run_dir / "model_args.json").write_text(json.dumps(model_args, indent=2))


def _val_reporter(talk: bool):
    def report(done: int, total: int, seconds: float) -> None:
        if talk and seconds >= VAL_PROGRESS_AFTER_S:
            print(progress_line("validating", done, total, seconds), flush=True)

    return report


def _save_overlays(run_dir, overlays, info, adapter, epoch, monitor, score) -> None:
    from segwise.viz import save_overlay_grid

    save_overlay_grid(
        run_dir / "overlays.png",
        overlays,
        list(info.labels.colors),
        ignore_index=adapter.ignore_index,
        title=f"best.pt: epoch {epoch}, validation {monitor} {score:.4f}",
        class_names=list(info.class_names),
    )


def _epoch_line(record: dict[str, Any], plan: RunPlan, improved: bool, hint: str | None,
                elapsed: float) -> str:
    parts = [
        f"epoch {record['epoch']}/{plan.epochs}",
        f"loss {record['train_loss']:.4f}",
        f"{record['train_images_per_s']:.1f} img/s",
    ]
    for key, value in record.items():
        if key.startswith("val_") and value is not None and not key.endswith("accuracy"):
            parts.append(f"{'val loss' if key == 'val_loss' else key[4:]} {value:.4f}")
    if improved:
        parts.append("* best")
    if hint is not None and any(k.startswith("val_") for k in record):
        parts.append(f"note: {hint}")
    parts.append(f"{format_duration(elapsed)} elapsed")
    return " | ".join(parts)
