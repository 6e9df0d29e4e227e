"""Ablation: why segwise's textbook U-Net trained slower than MONAI's BasicUNet (issue 17).

(Written when segwise's textbook U-Net defaulted to BatchNorm; its default is GroupNorm since
2026-12-01, so ``shipped`` is now ``group``; ``batch`` is the old network.) The two are the same
graph up to a few choices: widths (64, 128, 256, 512, 1024), double 3x3
convs, 2x2 max-pool, 2x2 transposed-conv upsampling, 1x1 classifier. They differ in
normalisation (segwise: BatchNorm; BasicUNet: InstanceNorm with affine), activation (ReLU vs
LeakyReLU(0.1)), conv biases (none before a norm vs always), the classifier's init (Glorot vs
PyTorch's default) and the last up-convolution (halves the channels in segwise, not in
BasicUNet). Each arm changes one of these, on one side or the other, and is trained by the
hand-written loop of ``bench_convergence.py`` (same crops in the same order, the task's loss:
BCE + soft Dice on dsb2018, CE + softmax Dice on CamVid; AdamW lr 1e-3 + cosine, no warmup, same
torch seed for the weights).

Arms (``--arms``):

- ``shipped``       ``create_model("unet_textbook")`` as the library builds it (its default norm)
- ``batch``         ``create_model("unet_textbook", norm="batch")``
- ``group``         ``create_model("unet_textbook", norm="group")`` (GroupNorm, 32 groups)
- ``instance``      ``create_model("unet_textbook", norm="instance")`` (InstanceNorm2d(affine=True);
                    the same network and draws as the BatchNorm one with every BatchNorm2d swapped,
                    which is what this arm did before the option existed)
- ``leaky``         BatchNorm with every ReLU replaced by LeakyReLU(0.1)
- ``head_default``  BatchNorm with PyTorch's default init for the 1x1 classifier (as MONAI)
- ``monai``         MONAI ``BasicUNet`` (2-D, features (64, 128, 256, 512, 1024, 64))
- ``monai_batch``   the same with BatchNorm instead of InstanceNorm
- ``monai_relu``    the same with ReLU instead of LeakyReLU(0.1)

Usage:
    .venv/bin/python benchmarks/ablate_textbook.py --steps 60 --crop 64 --batch 8 --seeds 0 \\
        --arms batch instance monai monai_batch --out ablate_textbook.json
    # multiclass (11 CamVid classes, void ignored, val = mIoU):
    .venv/bin/python benchmarks/ablate_textbook.py --task camvid --n-train 100 --seeds 0 \\
        --arms batch instance monai
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_convergence as bc

ARMS = [
    "shipped",
    "batch",
    "group",
    "instance",
    "leaky",
    "head_default",
    "monai",
    "monai_batch",
    "monai_relu",
]


def _swap(model: nn.Module, kind: type, make) -> int:
    """Replace every submodule of type ``kind`` by ``make(old)``; returns how many."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kind):
                setattr(parent, name, make(child))
                count += 1
    return count


def build_arm(arm: str, seed: int, num_classes: int = 1) -> tuple[nn.Module, object]:
    """Build the variant ``arm`` from torch seed ``seed`` with ``num_classes`` outputs (1 for
    dsb2018's binary task); ``(model, output -> logits)``."""
    from monai.networks.nets import BasicUNet

    from segwise.models import create_model

    torch.manual_seed(seed)
    if arm.startswith("monai"):
        options = {
            "monai_batch": {"norm": ("batch", {})},
            "monai_relu": {"act": ("relu", {"inplace": True})},
        }.get(arm, {})
        model = BasicUNet(
            spatial_dims=2,
            in_channels=3,
            out_channels=num_classes,
            features=(64, 128, 256, 512, 1024, 64),
            **options,
        )
        return model, lambda out: out
    if arm not in ARMS:
        raise ValueError(f"arm={arm!r} is not valid; expected one of {ARMS}")
    norm = {"shipped": None, "group": "group", "instance": "instance"}.get(arm, "batch")
    options = {} if norm is None else {"norm": norm}
    model = create_model("unet_textbook", num_classes=num_classes, **options)
    if arm == "leaky":
        n = _swap(model, nn.ReLU, lambda _: nn.LeakyReLU(0.1, inplace=True))
        assert n > 0
    elif arm == "head_default":
        model.head.classifier.reset_parameters()
    return model, lambda out: out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--task", default="dsb2018", choices=["dsb2018", "camvid"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-val", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=bc.DATA)
    parser.add_argument("--out", type=Path, default=Path("ablate_textbook.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = bc.pad_to_crop(
        bc.load_task(args.task, args.data, n_train=args.n_train, n_val=args.n_val), args.crop
    )
    at = sorted({max(1, args.steps // 4), args.steps // 2, 3 * args.steps // 4, args.steps})
    rows = []
    for seed in args.seeds:
        plan = bc.crop_plan(task, steps=args.steps, batch=args.batch, crop=args.crop, seed=seed)
        for arm in args.arms:
            model, to_logits = build_arm(arm, seed, task.num_classes)
            std = bc.init_logit_std(model, to_logits, batch=args.batch, crop=args.crop)
            torch.manual_seed(seed)
            start = time.perf_counter()
            losses = bc.train(model, to_logits, task, plan, crop=args.crop)
            row = {"task": args.task, "arm": arm, "seed": seed, "init_logit_std": std}
            row |= bc.summarise(losses, at) | {
                "val": bc.evaluate(model, to_logits, task, crop=args.crop),
                "seconds": time.perf_counter() - start,
                "losses": losses,
            }
            bc.record_row(rows, row, args)


if __name__ == "__main__":
    main()
