"""Benchmark: `segwise train` (the CLI) against the hand-written loop at equal work (issue 17).

The same model (``create_model("unet", encoder="resnet34")``, random init), the same number of
optimizer steps, batch and crop size, the same training images (the first ``--n-train`` of the
dsb2018 train split, given to the CLI as a folder of symbolic links in a temporary directory)
and the same evaluation: foreground Dice of ``logit > 0`` pooled over the centre
``2 * crop`` square of every dsb2018 val image (``bench_convergence.evaluate``). Arms
(``--arms``):

- ``loop``: ``bench_convergence.train``: crops drawn once per seed, h/v flips, no rescale,
  BCE + soft Dice, AdamW lr 1e-3 / weight decay 0.01, cosine to 0, no warmup, no clipping.
- ``cli_matched``: ``segwise train`` with the loop's recipe as flags (``--no-scale --vflip
  --warmup-epochs 0 --grad-clip 0 --weight-decay 0.01``).
- ``cli_default``: ``segwise train`` with only the budget given (crop, batch, steps): every
  other setting is the engine's default (banner: warmup one epoch at most 5 % of the run,
  rescale 0.5-2, no vertical flips, gradient clipping at 1, weight decay 1e-4).
- ``cli_old_default``: the defaults before issue 17's change, ``--warmup-epochs 1`` (one
  full epoch of warmup however short the run).
- ``cli_default_nowarmup``, ``cli_default_noscale``, ``cli_default_noclip``: the old
  defaults with one of them changed to the loop's value.

The CLI runs with ``--workers 0 --threads 1 --device cpu`` and validates only after the last
step; its own input normalisation (the data's mean/std) is applied by a wrapper when it is
scored, so the two are scored on the same pixels.

Usage:
    .venv/bin/python benchmarks/bench_engine_vs_loop.py --steps 60 --crop 64 --batch 8 \\
        --seeds 0 --arms loop cli_matched cli_default --out bench_engine_vs_loop.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_convergence as bc

MATCHED = ["--no-scale", "--vflip", "--warmup-epochs", "0", "--grad-clip", "0",
           "--weight-decay", "0.01"]
ARMS = {
    "loop": None,
    "cli_matched": MATCHED,
    "cli_default": [],
    "cli_old_default": ["--warmup-epochs", "1"],
    "cli_default_nowarmup": ["--warmup-epochs", "0"],
    "cli_default_noscale": ["--no-scale", "--warmup-epochs", "1"],
    "cli_default_noclip": ["--grad-clip", "0", "--warmup-epochs", "1"],
}


class Renormalise(nn.Module):
    """Feed an ImageNet-normalised batch to a model trained on the data's own mean/std."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, 3, H, W)`` ImageNet-normalised -> the model's logits."""
        unit = x * bc.STD + bc.MEAN
        return self.model((unit - self.mean) / self.std)


def _identity(out: torch.Tensor) -> torch.Tensor:
    return out


def subset(root: Path, dest: Path, n_train: int) -> Path:
    """A dataset folder under ``dest`` linking the first ``n_train`` train images.

    Its val split holds only the first 4 val images: the CLI's own validation is not used
    (every arm is scored by ``bench_convergence.evaluate``) and costs minutes on CPU.
    """
    splits = json.loads((root / "splits.json").read_text())
    sub = {"train": splits["train"][:n_train], "val": splits["val"][:4]}
    for folder in ("images", "instances"):
        (dest / folder).mkdir(parents=True)
        for i in sub["train"] + sub["val"]:
            os.symlink(root / folder / f"{i}.png", dest / folder / f"{i}.png")
    (dest / "splits.json").write_text(json.dumps(sub))
    return dest


def run_cli(
    data: Path, out: Path, extra: list[str], *, steps: int, crop: int, batch: int, seed: int,
    n_train: int
) -> float:
    """Train with ``segwise train``; returns the seconds it took."""
    epochs = math.ceil(steps / (n_train // batch))
    cmd = [
        sys.executable, "-m", "segwise.cli.main", "train", "--data", str(data),
        "--model", "unet", "--encoder", "resnet34", "--crop-size", str(crop),
        "--batch-size", str(batch), "--epochs", str(epochs), "--max-steps", str(steps),
        "--seed", str(seed), "--device", "cpu", "--workers", "0", "--threads", "1",
        "--val-every", "100000", "--overlay-images", "0", "--out", str(out), *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    (out.parent / f"{out.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"segwise train failed ({out}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--data", type=Path, default=bc.DATA)
    parser.add_argument("--out", type=Path, default=Path("bench_engine_vs_loop.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from segwise.runs.checkpoint import load_run

    task = bc.load_task("dsb2018", args.data, n_train=args.n_train, n_val=64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(args.data / "dsb2018", Path(tmp) / "dsb2018", args.n_train)
        for seed in args.seeds:
            plan = bc.crop_plan(task, steps=args.steps, batch=args.batch, crop=args.crop,
                                seed=seed)
            for arm in args.arms:
                row: dict = {"arm": arm, "seed": seed}
                if ARMS[arm] is None:
                    torch.manual_seed(seed)
                    model, to_logits = bc.build("segwise.unet-resnet34", 1)
                    torch.manual_seed(seed)
                    start = time.perf_counter()
                    losses = bc.train(model, to_logits, task, plan, crop=args.crop)
                    row |= {"seconds": time.perf_counter() - start, "losses": losses,
                            "mean_last_third": bc.summarise(losses, [])["mean_last_third"]}
                else:
                    run = Path(tmp) / f"{arm}-{seed}"
                    row["flags"] = ARMS[arm]
                    row["seconds"] = run_cli(data, run, ARMS[arm], steps=args.steps,
                                             crop=args.crop, batch=args.batch, seed=seed,
                                             n_train=args.n_train)
                    loaded = load_run(run / "best.pt", device="cpu")
                    model = Renormalise(loaded.model, loaded.info.mean, loaded.info.std)
                    to_logits = _identity
                    row["banner"] = (run.parent / f"{run.name}.log").read_text()[:4000]
                row["val"] = bc.evaluate(model, to_logits, task, crop=args.crop)
                rows.append(row)
                shown = {k: v for k, v in row.items() if k not in ("losses", "banner")}
                print(json.dumps(shown, default=lambda v: round(v, 4)), flush=True)
                config = vars(args) | {"out": str(args.out), "data": str(args.data)}
                args.out.write_text(json.dumps({"config": config, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
