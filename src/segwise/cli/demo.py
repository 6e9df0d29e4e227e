"""``segwise demo``: the whole job end to end on built-in synthetic data, no download."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "demo"
HELP = "worked Dice examples, then train -> evaluate -> predict on built-in synthetic data"
DESCRIPTION = """\
Runs the main job end to end with no download and no GPU (about 3 minutes on 2 CPU cores):
  1. the Dice worked examples, computed by segwise.metrics and segwise.losses;
  2. writes a synthetic multi-class dataset (shapes with strong class imbalance) to disk;
  3. trains the textbook U-Net (Ronneberger et al. 2015) at base width 16 (1.9 M parameters,
     small enough for a CPU) with Dice + cross-entropy on it (`segwise train`);
  4. evaluates the best checkpoint (`segwise evaluate`);
  5. predicts masks and overlays for a few images (`segwise predict`);
and prints where the checkpoint, curves, overlays and masks are.
"""

DEMO_EPOCHS = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="DIR", help="demo folder (default demo_runs/TIMESTAMP; must be new)"
    )
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="training epochs")
    parser.add_argument("--images", type=int, default=160, help="synthetic images to generate")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")


def worked_examples() -> list[tuple[str, str, float, float]]:
    """The seed's Dice examples: (description, formula, segwise value, hand value)."""
    import torch

    from segwise.losses.functional import soft_dice_loss
    from segwise.metrics.functional import dice_score

    gt = torch.tensor([1, 0, 0, 1, 0, 0])
    pred = torch.tensor([1, 0, 1, 1, 0, 0])
    hard = float(dice_score(pred.bool(), gt.bool()))

    g = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 1, 4)
    p = torch.tensor([0.9, 0.6, 0.4, 0.1]).view(1, 1, 1, 4)
    soft_loss = float(soft_dice_loss(p, g, task="binary", from_logits=False, eps=0.0))

    # multi-class, 3 pixels, GT [0, 2, 1], prediction [0, 2, 2] as one-hot probabilities
    gt_mc = torch.tensor([[[0, 2, 1]]])
    p_mc = torch.nn.functional.one_hot(torch.tensor([[[0, 2, 2]]]), 3).permute(0, 3, 1, 2).float()
    mc_loss = float(
        soft_dice_loss(p_mc, gt_mc, task="multiclass", from_logits=False, eps=0.0)
    )
    return [
        ("hard Dice, GT 100100 vs pred 101100", "2*2/(3+2)", hard, 0.8),
        ("soft Dice, GT 1100, p .9 .6 .4 .1", "2*1.5/(2.0+2)", 1 - soft_loss, 0.75),
        ("soft Dice loss, same", "1 - 0.75", soft_loss, 0.25),
        ("perfect prediction, loss", "1 - 2|A|/(|A|+|A|)", 0.0, 0.0),
        (
            "3-class Dice loss, GT [0,2,1] vs pred [0,2,2]",
            "1 - mean(1, 0, 2/3)",
            mc_loss,
            1 - (1 + 0 + 2 / 3) / 3,
        ),
    ]


def _print_examples() -> None:
    from rich.table import Table

    from segwise.cli._common import console

    table = Table(title="Dice, worked examples (segwise vs by hand)")
    for col in ("example", "by hand", "hand value", "segwise"):
        table.add_column(col)
    for text, formula, ours, hand in worked_examples():
        table.add_row(text, formula, f"{hand:.4f}", f"{ours:.4f}")
    console().print(table)


def run(args: argparse.Namespace) -> int:
    from segwise.cli.main import main as cli

    _print_examples()
    out = Path(args.out) if args.out else Path("demo_runs") / time.strftime("%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"demo folder {out} already holds files; pass a new --out")
    from segwise.data.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(
        out / "data", flavour="multiclass", num_images=args.images, size=(96, 96), seed=args.seed
    )
    print(f"\nsynthetic dataset written to {data} ({args.images} images)")
    run_dir = out / "run"
    t0 = time.perf_counter()
    code = cli([
        "train", "--data", str(data), "--out", str(run_dir), "--model", "unet_textbook",
        "--model-option", "base_width=16", "--loss", "dicece", "--epochs", str(args.epochs),
        "--lr", "3e-3", "--seed", str(args.seed), "--device", "cpu", "--batch-size", "8",
        "--crop-size", "96", "--warmup-epochs", "1",
    ])
    if code:
        return code
    print(f"trained in {time.perf_counter() - t0:.0f} s\n")
    code = cli([
        "evaluate", "--checkpoint", str(run_dir / "best.pt"), "--data", str(data),
        "--out", str(out / "evaluation"), "--device", "cpu",
    ])
    if code:
        return code
    images = sorted((data / "images").iterdir())[:4]
    code = cli([
        "predict", "--checkpoint", str(run_dir / "best.pt"), *map(str, images),
        "--out", str(out / "predictions"), "--overlay", "--device", "cpu",
    ])
    if code:
        return code
    print("\nwhere things are:")
    for label, path in (
        ("checkpoint", run_dir / "best.pt"),
        ("curves", run_dir / "curves.png"),
        ("val overlays", run_dir / "overlays.png"),
        ("evaluation", out / "evaluation"),
        ("report", out / "evaluation" / "report.html"),
        ("masks", out / "predictions"),
    ):
        print(f"  {label:<13}{path}")
    return 0
