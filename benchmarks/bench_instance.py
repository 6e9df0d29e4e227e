"""Instance segmentation on DSB2018: Mask R-CNN vs U-Net + watershed after a fixed budget.

Both methods train through the segwise engine (``fit`` with ``train.task = instance``, the
same code as ``segwise train --task instance``) on the same training images, crop and batch
size, from random weights (nothing is downloaded), for ``--steps`` optimizer steps
(``--maskrcnn-steps`` gives Mask R-CNN its own count: on a CPU one of its steps costs about
seven U-Net steps). They are then scored on the ``val`` split of ``splits.json`` (DSB2018
score, AP50, PQ; definitions in docs/instance.md). The budget is a step count, so results do
not depend on the machine's speed; the JSON also records the seconds spent.

    python benchmarks/bench_instance.py --steps 40 --train-images 64 --val-images 16
    python benchmarks/bench_instance.py --device cuda --steps 2000 --batch-size 8 --crop 256

Writes JSON (default ``benchmarks/results/instance.json``). ``--train-images`` /
``--val-images`` pick a seeded random subset (0 = all) through a folder of symbolic links.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

METHODS = ("unet_watershed", "maskrcnn")


def subset_dataset(root: Path, out: Path, *, train: int, val: int, seed: int) -> dict:
    """Symlink a seeded subset of ``root``'s train/val splits into ``out``; returns the lists."""
    splits = json.loads((root / "splits.json").read_text())
    rng = random.Random(seed)
    chosen = {}
    for name, n in (("train", train), ("val", val)):
        ids = sorted(splits[name])
        chosen[name] = sorted(rng.sample(ids, n)) if 0 < n < len(ids) else ids
    keep = set(chosen["train"] + chosen["val"])
    for folder in ("images", "instances"):
        (out / folder).mkdir(parents=True)
        for src in (root / folder).iterdir():  # the image/mask and any per-image class file
            if src.stem in keep:
                (out / folder / src.name).symlink_to(src.resolve())
    for src in root.iterdir():  # e.g. a classes file
        if src.is_file() and src.name != "splits.json":
            (out / src.name).symlink_to(src.resolve())
    (out / "splits.json").write_text(json.dumps(chosen))
    return chosen


def run_method(method: str, data: Path, run_dir: Path, args: argparse.Namespace) -> dict:
    from segwise.engine.config import config_from_dict
    from segwise.engine.trainer import fit

    n_train = len(json.loads((data / "splits.json").read_text())["train"])
    steps = args.steps
    if method == "maskrcnn" and args.maskrcnn_steps is not None:
        steps = args.maskrcnn_steps
    per_epoch = max(1, n_train // args.batch_size)  # the loader drops the last partial batch
    # epochs x steps_per_epoch == steps exactly, steps_per_epoch <= the loader's length
    epochs = math.ceil(steps / per_epoch)
    while steps % epochs:
        epochs += 1
    steps_per_epoch = steps // epochs
    options: dict = {}
    model: dict = {"name": method, "options": options}
    if method == "unet_watershed":
        model["encoder"] = args.encoder
    config = config_from_dict({
        "model": model,
        "data": {"root": str(data), "crop_size": args.crop, "batch_size": args.batch_size,
                 "workers": args.workers, "vflip": True, "scale": [0.75, 1.33]},
        "optim": {"lr": args.lr, "warmup_epochs": min(1.0, 0.1 * epochs)},
        "train": {"task": "instance", "epochs": epochs, "max_steps_per_epoch": steps_per_epoch,
                  "val_every": epochs, "device": args.device, "seed": args.seed,
                  "overlays": 0},
    })
    t0 = time.perf_counter()
    result = fit(config, run_dir, quiet=not args.verbose)
    total = time.perf_counter() - t0
    last = result.history[-1]
    train_s = sum(r["epoch_seconds"] for r in result.history)
    return {
        "method": method,
        "steps": last["step"],
        "epochs": epochs,
        "final_train_loss": last["train_loss"],
        "dsb_score": last["val_dsb_score"],
        "ap50": last["val_ap50"],
        "pq": last["val_pq"],
        "f1_50": last["val_f1_50"],
        "train_seconds": train_s,
        "validation_and_setup_seconds": total - train_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/dsb2018", help="DSB2018 folder")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--steps", type=int, default=40, help="optimizer steps per method")
    p.add_argument(
        "--maskrcnn-steps", type=int, help="steps for maskrcnn only (default: --steps)"
    )
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=int, default=128, help="training crop side")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--encoder", default="resnet18", help="unet_watershed encoder")
    p.add_argument("--train-images", type=int, default=0, help="random subset (0: all 500)")
    p.add_argument("--val-images", type=int, default=0, help="random subset (0: all 64)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--verbose", action="store_true", help="print the training log")
    p.add_argument("--out", default="benchmarks/results/instance.json")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "splits.json").is_file():
        raise SystemExit(f"{root} has no splits.json; expected the DSB2018 folder")
    out = Path(args.out)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_instance_") as tmp:
        data = Path(tmp) / "data"
        chosen = subset_dataset(root, data, train=args.train_images, val=args.val_images,
                                seed=args.seed)
        for method in args.methods:
            row = run_method(method, data, Path(tmp) / f"run_{method}", args)
            print(json.dumps(row), flush=True)
            results.append(row)
    payload = {
        "benchmark": "instance",
        "command": "python benchmarks/bench_instance.py " + " ".join(argv),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "train_images": len(chosen["train"]),
        "val_images": len(chosen["val"]),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name() if args.device.startswith("cuda")
                    else None},
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
