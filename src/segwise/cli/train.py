"""``segwise train``: train a segmentation model on a folder of images and masks."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "train a model on a folder of images and masks"
DESCRIPTION = """\
Train a semantic (default) or, with --task instance, an instance segmentation model
(--model maskrcnn, unet_watershed, yolact or solov2). Defaults are derived from the data
(task, classes, input channels, crop size, batch size, instance anchors) and printed at start;
the resolved config is saved in the run folder and in every checkpoint, so RUN/best.pt alone
is enough to predict.

Config: a YAML file (--config) with sections model/data/optim/train (see docs/cli.md), and/or
flags; flags win over the file.

examples:
  segwise train --data ../shared/data/dsb2018 --model unet --encoder resnet34 --epochs 30
  segwise train --data my_data --config run.yaml --lr 3e-4 --out runs/exp1
  segwise train --resume runs/exp1            # continue exactly where it stopped
  segwise train --task instance --model unet_watershed --data ../shared/data/dsb2018
  segwise train --task instance --model solov2 --encoder resnet18 --data ../shared/data/dsb2018
  torchrun --nproc_per_node 2 -m segwise.cli.main train --data my_data   # multi-process DDP

Time: the run folder is printed first; progress lines give the epoch's and the whole run's
ETA. --time-limit 2h plans the run from the budget after its first 3 steps (steps, warmup,
schedule and bounded validations that fit: the "time plan" line) and stops cleanly if the
budget runs out anyway; --max-steps caps the optimizer steps.
Ctrl-C says what was saved and how to --resume. A run that stopped before its first epoch
was saved can be started again with the same --out (the folder is reused).

outputs in the run folder: config.yaml, data_info.json, last.pt (resumable state), best.pt
(weights + config: enough to predict), metrics.jsonl, metrics.csv, curves.png (losses,
learning rate, validation scores, best epoch starred), overlays.png (best.pt's epoch), and
tensorboard/ when tensorboard is installed.
"""

# flag -> (config section, key); a flag left unset does not override the YAML file
_FLAGS: dict[str, tuple[str, str]] = {
    "data": ("data", "root"),
    "mask_kind": ("data", "mask_kind"),
    "ignore_index": ("data", "ignore_index"),
    "val_fraction": ("data", "val_fraction"),
    "nonfinite": ("data", "nonfinite"),
    "crop_size": ("data", "crop_size"),
    "batch_size": ("data", "batch_size"),
    "workers": ("data", "workers"),
    "pin_memory": ("data", "pin_memory"),
    "persistent_workers": ("data", "persistent_workers"),
    "prefetch_factor": ("data", "prefetch_factor"),
    "augment_on": ("data", "augment_on"),
    "resident": ("data", "resident"),
    "cache": ("data", "cache"),
    "vflip": ("data", "vflip"),
    "rotation": ("data", "rotation"),
    "color_jitter": ("data", "color_jitter"),
    "patch_size": ("data", "patch_size"),
    "foreground_fraction": ("data", "foreground_fraction"),
    "normalization": ("data", "normalization"),
    "volume_augment": ("data", "volume_augment"),
    "model": ("model", "name"),
    "encoder": ("model", "encoder"),
    "weights": ("model", "weights"),
    "optimizer": ("optim", "optimizer"),
    "lr": ("optim", "lr"),
    "weight_decay": ("optim", "weight_decay"),
    "schedule": ("optim", "schedule"),
    "warmup_epochs": ("optim", "warmup_epochs"),
    "grad_clip": ("optim", "grad_clip"),
    "ema": ("optim", "ema_decay"),
    "task": ("train", "task"),
    "epochs": ("train", "epochs"),
    "seed": ("train", "seed"),
    "device": ("train", "device"),
    "amp": ("train", "amp"),
    "compile": ("train", "compile"),
    "loss": ("train", "loss"),
    "loss_weights": ("train", "loss_weights"),
    "dice_weight": ("train", "dice_weight"),
    "ce_weight": ("train", "ce_weight"),
    "class_weights": ("train", "class_weights"),
    "class_weights_beta": ("train", "class_weights_beta"),
    "monitor": ("train", "monitor"),
    "patience": ("train", "patience"),
    "max_steps_per_epoch": ("train", "max_steps_per_epoch"),
    "hflip": ("data", "hflip"),
    "val_every": ("train", "val_every"),
    "max_steps": ("train", "max_steps"),
    "time_limit": ("train", "time_limit"),
    "threads": ("train", "threads"),
    "overlay_images": ("train", "overlays"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", metavar="DIR", help="dataset folder (see `segwise data inspect`)")
    g.add_argument("--mask-kind", help="mask format, default auto-detected")
    g.add_argument("--ignore-index", type=int, help="label ignored in loss and metrics")
    g.add_argument("--val-fraction", type=float, help="held-out share when the data has no split")
    g.add_argument("--nonfinite", choices=("refuse", "ignore"),
                   help="NaN/inf pixels in float images: refuse (default: an error per file) or "
                        "ignore (read as the channel mean, their mask pixels left out)")
    g.add_argument("--crop-size", type=int, help="training crop (default: from image sizes)")
    g.add_argument("--batch-size", type=int, help="images per step (default: from crop, device)")
    g.add_argument("--workers", type=int,
                   help="DataLoader worker processes (default: from CPUs and device, printed)")
    g.add_argument("--pin-memory", action=argparse.BooleanOptionalAction, default=None,
                   help="page-locked batches (default: on for CUDA)")
    g.add_argument("--persistent-workers", action=argparse.BooleanOptionalAction, default=None,
                   help="keep loader workers between epochs (default: on with workers)")
    g.add_argument("--prefetch-factor", type=int,
                   help="batches each worker loads ahead (default: 4 with workers)")
    g.add_argument("--augment-on", choices=("cpu", "device"),
                   help="where augmentation runs: cpu (default; per item in the loader) or "
                        "device (per batch on the training device; semantic runs)")
    g.add_argument("--resident", action="store_true", default=None,
                   help="with --augment-on device: keep the decoded train set on the device "
                        "when it fits (half its free memory), no loader processes")
    g.add_argument("--cache", action="store_true", default=None, help="keep images in memory")
    g.add_argument("--vflip", action="store_true", default=None, help="random vertical flips")
    g.add_argument("--no-hflip", dest="hflip", action="store_const", const=False, default=None,
                   help="no random horizontal flips (on by default)")
    g.add_argument("--scale-range", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="random rescale factors before the crop, default 0.5 2")
    g.add_argument("--no-scale", action="store_true",
                   help="no random rescale (same as --scale-range 1 1)")
    g.add_argument("--rotation", type=float, help="max random rotation, degrees")
    g.add_argument("--color-jitter", type=float, help="colour jitter strength")
    g = parser.add_argument_group("volumes (3D data: NIfTI)")
    g.add_argument("--patch-size", type=_patch, metavar="D,H,W",
                   help="training patch in voxels, e.g. 40,56,40 (default: from the median "
                        "volume shape, printed)")
    g.add_argument("--foreground-fraction", type=float,
                   help="share of patches centred on a labelled voxel (default 0.33, nnU-Net's)")
    g.add_argument("--normalization", choices=("auto", "zscore", "ct"),
                   help="intensities: zscore per volume (MRI), ct (clip to the foreground's "
                        "0.5-99.5 percentiles, then its mean/std); default auto: ct when "
                        "dataset.json names CT, else zscore")
    g.add_argument("--volume-augment", choices=("light", "nnunet", "none"),
                   help="patch augmentation: light (default: flips on each axis), nnunet "
                        "(+ in-plane 90-degree turns, scaling, brightness, contrast, gamma, "
                        "noise: for long runs), none")
    g = parser.add_argument_group("model")
    g.add_argument("--model", help="architecture (see `segwise models`), default unet")
    g.add_argument(
        "--encoder", help="backbone (default: the architecture's own, see `segwise models`)"
    )
    g.add_argument("--weights", help="encoder weights: imagenet or a local .pth/.safetensors")
    g.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option, e.g. output_stride=8 (repeatable; VALUE parsed as YAML)",
    )
    g = parser.add_argument_group("optimisation")
    g.add_argument("--optimizer", help="adamw (default) or sgd")
    g.add_argument("--lr", type=float, help="peak learning rate, default 1e-3")
    g.add_argument("--weight-decay", type=float, help="default 1e-4")
    g.add_argument("--schedule", help="cosine (default), poly or constant")
    g.add_argument("--warmup-epochs", type=float,
                   help="linear warmup in epochs; default 1 epoch, at most 5 %% of the run")
    g.add_argument("--grad-clip", type=float, help="max gradient norm, default 1.0; 0 = off")
    g.add_argument("--ema", type=float, metavar="DECAY", help="keep an EMA of weights, e.g. 0.999")
    g = parser.add_argument_group("training")
    g.add_argument(
        "--task",
        choices=("semantic", "instance"),
        help="semantic (default) or instance (--model maskrcnn, unet_watershed, yolact, solov2)",
    )
    g.add_argument("--epochs", type=int, help="default 50")
    g.add_argument("--loss", help="dicece (default), dice, ce, jaccard, gdice, focal, tversky, "
                                  "focal_tversky, lovasz, or a sum of them such as dice+focal "
                                  "(docs/dice.md)")
    g.add_argument("--loss-weights", type=_floats, metavar="W1,W2,...",
                   help="one weight per term of a sum --loss, e.g. 1,0.5 (default all 1)")
    g.add_argument("--dice-weight", type=float, help="weight of the Dice term, default 1")
    g.add_argument("--ce-weight", type=float, help="weight of the cross-entropy term, default 1")
    g.add_argument("--class-weights", metavar="W0,W1,...|RULE",
                   help="per-class loss weights (CE/focal and the Dice family): one per class, "
                        "background included (binary: background,foreground), e.g. 1,2,5; or "
                        "a rule computed from the training split: inverse_frequency, "
                        "median_frequency, effective_number (printed at start; docs/dice.md)")
    g.add_argument("--class-weights-beta", type=float, metavar="BETA",
                   help="beta of --class-weights effective_number, 0 <= beta < 1 "
                        "(default 0.9999)")
    g.add_argument(
        "--monitor", help="mean_dice (default), mean_iou, pixel_accuracy, per_image_dice"
    )
    g.add_argument("--patience", type=int, help="early stopping after N epochs w/o improvement")
    g.add_argument("--seed", type=int, help="default 0; same seed, same metrics on CPU")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--amp", help="auto (default: bf16/fp16 on GPU), bf16, fp16, off")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--max-steps-per-epoch", type=int, help="cap steps per epoch (quick runs)")
    g.add_argument("--max-steps", type=int,
                   help="total optimizer-step budget; the schedule ends there")
    g.add_argument("--time-limit", type=_duration, metavar="DURATION",
                   help="wall-clock budget, e.g. 45m, 2h, 1h30m, 900 (seconds): the steps, "
                        "warmup, LR schedule and validations (a spread subset of the val "
                        "images) are planned from it after 3 measured steps, and the run "
                        "stops cleanly (best.pt/last.pt kept) if it runs out")
    g.add_argument("--val-every", type=int, help="validate every N epochs (default 1; always "
                                                  "after the last)")
    g.add_argument("--overlay-images", type=int, metavar="N",
                   help="validation images drawn in overlays.png (default 4)")
    g.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    g = parser.add_argument_group("run")
    g.add_argument("--config", metavar="YAML", help="run config file; flags override it")
    g.add_argument("--out", metavar="RUN", help="run folder (default runs/MODEL-TIMESTAMP)")
    g.add_argument("--resume", metavar="RUN", help="continue the run in RUN from last.pt")
    g.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _floats(text: str) -> list[float]:
    """``"1,0.5"`` -> [1.0, 0.5] (argparse type)."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of numbers; use e.g. 1,0.5"
        ) from None


def _patch(text: str) -> list[int]:
    """``"40,56,40"`` (or ``"48"`` for a cube) -> [40, 56, 40] (argparse type)."""
    try:
        values = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a patch size; use D,H,W in voxels, e.g. 40,56,40")
    return values


def _duration(text: str) -> float:
    """``"90"``/``"90s"``, ``"45m"``, ``"2h"``, ``"1h30m"`` -> seconds (argparse type)."""
    import re

    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                         r"(?:(\d+(?:\.\d+)?)s?)?\s*", text.lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use e.g. 45m, 2h, 1h30m or 900 (seconds)"
        )
    h, m, sec = (float(g) if g else 0.0 for g in match.groups())
    seconds = 3600 * h + 60 * m + sec
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the time limit must be > 0")
    return seconds


def _option_value(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--model-option {text!r} is not KEY=VALUE (e.g. output_stride=8)")
    return key.strip(), yaml.safe_load(value)


def config_dict_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Nested config dict: the YAML file (if any) overridden by the flags that were given."""
    from segwise.engine.config import load_yaml

    values: dict[str, dict[str, Any]] = {}
    if args.config:
        values = {k: dict(v or {}) for k, v in load_yaml(args.config).items()}
    for flag, (section, key) in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values.setdefault(section, {})[key] = value
    if getattr(args, "grad_clip", None) == 0:
        values["optim"]["grad_clip"] = None  # 0 switches clipping off
    if getattr(args, "no_scale", False):
        values.setdefault("data", {})["scale"] = [1.0, 1.0]
    elif getattr(args, "scale_range", None):
        values.setdefault("data", {})["scale"] = list(args.scale_range)
    if args.model_option:
        options = values.setdefault("model", {}).setdefault("options", {})
        options.update(dict(_option_value(o) for o in args.model_option))
    return values


def _refuse_options_on_resume(args: argparse.Namespace) -> None:
    """``--resume`` continues a run exactly as it was configured (the config in its
    ``last.pt``; the schedule was planned for its length): options that would change it, such
    as ``--epochs`` on a finished run, are refused with the way to train longer, not ignored."""
    from segwise.cli.main import UserError

    given = [f"--{flag.replace('_', '-')}" for flag in _FLAGS
             if flag != "quiet" and getattr(args, flag, None) is not None]
    given += ["--config"] * bool(args.config) + ["--model-option"] * bool(args.model_option)
    if given:
        raise UserError(
            f"--resume {args.resume} continues the run exactly as it was configured (the config "
            f"in its last.pt; the learning-rate schedule ends at its planned last step), so "
            f"{', '.join(given)} cannot change it. To train longer or differently, start a new "
            "run: segwise train --data DATA --epochs N --out NEW_RUN (the old run's config.yaml "
            "as --config keeps the rest)"
        )


def run(args: argparse.Namespace) -> int:
    from segwise.notices import Level, printed

    with printed(min_level=Level.WARNING if args.quiet else Level.INFO):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from segwise.cli.main import UserError
    from segwise.engine.config import config_from_dict
    from segwise.engine.trainer import TrainingDivergedError, fit

    try:
        if args.resume:
            _refuse_options_on_resume(args)
            result = fit(None, Path(args.resume), resume=True, quiet=args.quiet)
        else:
            config = config_from_dict(config_dict_from_args(args))
            if not config.data.root:
                raise UserError("no dataset: pass --data DIR (or data.root in --config)")
            if not Path(config.data.root).is_dir():
                raise FileNotFoundError(f"--data {config.data.root} is not a folder")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            default = Path("runs") / f"{config.model.name}-{stamp}"
            result = fit(config, Path(args.out) if args.out else default, quiet=args.quiet)
    except TrainingDivergedError as err:
        raise UserError(str(err)) from err
    if not args.quiet and os.environ.get("RANK", "0") == "0":  # one summary under torchrun
        best = "n/a" if result.best_score is None else f"{result.best_score:.4f}"
        print(f"done: best {best} at epoch {result.best_epoch}; run folder {result.run_dir}")
        print(f"  checkpoint  {result.run_dir / 'best.pt'} (weights + config, for predict)")
        print(f"  resumable   {result.run_dir / 'last.pt'}")
        print(f"  curves      {result.run_dir / 'curves.png'}")
        print(f"  overlays    {result.run_dir / 'overlays.png'} (best.pt's epoch)")
        if result.hint:
            print(f"note: at the last validation the model {result.hint}")
    return 0
