"""Benchmark: equal-work learning curves of segwise models next to their peers, one loop.

Every model is trained by the same hand-written loop (no segwise engine): the same crops in
the same order (a fixed plan drawn from ``--seed`` before any model is built), the same loss,
AdamW (lr 1e-3, weight decay 0.01) with cosine decay to 0 and no warmup, float32 on CPU
(``--device cuda --precision bf16``: the same loop on a GPU under bf16 autocast, weights and
optimizer in float32). Images smaller than ``--crop`` are reflect-padded to it once, at load
(dsb2018 has 256x256 images; a 512 crop needs it).
Models are built from the same torch seed, so a pair differs only in its architecture and
initialisation. Pairs (``--pairs``):

- ``unet``:          segwise ``unet`` / resnet34           vs smp ``Unet("resnet34")``
- ``deeplabv3plus``: segwise ``deeplabv3plus`` / resnet50  vs smp ``DeepLabV3Plus("resnet50")``
  (both output stride 16, separable ASPP/decoder convs as smp's defaults)
- ``fcn``:           segwise ``fcn`` / resnet50            vs torchvision ``fcn_resnet50``
- ``unet_textbook``: segwise ``unet_textbook``             vs MONAI ``BasicUNet`` (2-D,
  features (64, 128, 256, 512, 1024, 64): the textbook widths)

Tasks (``--tasks``):

- ``dsb2018``: nuclei, binary (one logit), loss = BCE + soft Dice (Milletari et al. 2016,
  batch-pooled, smooth 1); val score = foreground Dice pooled over the val crops.
- ``camvid``: 11 classes, label 11 (void) ignored, loss = cross-entropy + softmax Dice
  (classes present in the batch); val score = mIoU over the 11 classes pooled over the val crops.

Nothing is downloaded: every model starts from random weights (``encoder_weights=None``,
``weights=None, weights_backbone=None``). Needs the shared data under ``--data``.

Usage:
    .venv/bin/python benchmarks/bench_convergence.py --steps 80 --seeds 0 1 \\
        --crop 128 --batch 8 --pairs unet deeplabv3plus fcn unet_textbook --tasks dsb2018
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

DATA = Path("/work/shared/data")
CAMVID_VOID = 11
CAMVID_CLASSES = 11
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class Task:
    """One dataset held in memory.

    Attributes:
        name: ``"dsb2018"`` or ``"camvid"``.
        images: list of ``(3, H, W)`` float32 tensors, ImageNet-normalised.
        targets: list of ``(H, W)`` int64 tensors: 0/1 (dsb2018) or class 0..11 (camvid).
        val_images, val_targets: the same for validation.
        num_classes: model outputs (1 for binary).
    """

    name: str
    images: list[torch.Tensor]
    targets: list[torch.Tensor]
    val_images: list[torch.Tensor]
    val_targets: list[torch.Tensor]
    num_classes: int


def _image(path: Path) -> torch.Tensor:
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return ((torch.from_numpy(array).permute(2, 0, 1)[None] - MEAN) / STD)[0]


def load_dsb2018(root: Path, *, n_train: int, n_val: int) -> Task:
    """First ``n_train``/``n_val`` images of splits.json; instance ids > 0 are foreground."""
    splits = json.loads((root / "splits.json").read_text())

    def load(ids: list[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        images = [_image(root / "images" / f"{i}.png") for i in ids]
        targets = [
            torch.from_numpy(np.asarray(Image.open(root / "instances" / f"{i}.png")) > 0).long()
            for i in ids
        ]
        return images, targets

    train = load(splits["train"][:n_train])
    val = load(splits["val"][:n_val])
    return Task("dsb2018", *train, *val, num_classes=1)


def load_camvid(root: Path, *, n_train: int, n_val: int) -> Task:
    """First ``n_train``/``n_val`` images of train/ and val/ (sorted), labels from *annot/."""

    def load(split: str, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        names = sorted(p.name for p in (root / split).glob("*.png"))[:n]
        images = [_image(root / split / name) for name in names]
        targets = [
            torch.from_numpy(np.asarray(Image.open(root / f"{split}annot" / name), np.int64))
            for name in names
        ]
        return images, targets

    return Task("camvid", *load("train", n_train), *load("val", n_val), CAMVID_CLASSES)


def pad_to_crop(task: Task, crop: int) -> Task:
    """Reflect-pad every train image (and its target) smaller than ``crop`` to at least it.

    The padding is split evenly between the two sides; one reflection suffices while an image
    is larger than half the crop (every dsb2018 and CamVid image is for crops up to 512).
    """

    def pad(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        dh, dw = max(0, crop - size[0]), max(0, crop - size[1])
        if not dh and not dw:
            return x
        spec = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
        if x.dim() == 2:
            return F.pad(x[None, None].float(), spec, mode="reflect")[0, 0].to(x.dtype)
        return F.pad(x[None], spec, mode="reflect")[0]

    sizes = [tuple(x.shape[-2:]) for x in task.images]
    images = [pad(x, hw) for x, hw in zip(task.images, sizes, strict=True)]
    targets = [pad(y, hw) for y, hw in zip(task.targets, sizes, strict=True)]
    return Task(task.name, images, targets, task.val_images, task.val_targets, task.num_classes)


def to_device(task: Task, device: torch.device) -> Task:
    """The task with every tensor on ``device`` (crops are then cut there)."""

    def move(xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [x.to(device) for x in xs]

    return Task(
        task.name,
        move(task.images),
        move(task.targets),
        move(task.val_images),
        move(task.val_targets),
        task.num_classes,
    )


def crop_plan(task: Task, *, steps: int, batch: int, crop: int, seed: int) -> list[list[tuple]]:
    """``steps`` batches of ``(image index, top, left, hflip, vflip)``, drawn once per seed."""
    rng = np.random.default_rng(seed)
    plan = []
    for _ in range(steps):
        items = []
        for _ in range(batch):
            i = int(rng.integers(len(task.images)))
            h, w = task.images[i].shape[-2:]
            top, left = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
            items.append((i, top, left, bool(rng.integers(2)), bool(rng.integers(2))))
        plan.append(items)
    return plan


def make_batch(
    images: list[torch.Tensor], targets: list[torch.Tensor], items: list[tuple], crop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the crops of ``items``: ``(B, 3, crop, crop)`` images, ``(B, crop, crop)`` targets."""
    xs, ys = [], []
    for i, top, left, hflip, vflip in items:
        x = images[i][:, top : top + crop, left : left + crop]
        y = targets[i][top : top + crop, left : left + crop]
        dims = [d for d, flip in ((-1, hflip), (-2, vflip)) if flip]
        if dims:
            x, y = x.flip(dims), y.flip(dims)
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """BCE + soft Dice (binary, ``logits (B, 1, H, W)``) or CE + softmax Dice (multiclass).

    Soft Dice: ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` pooled over the batch
    (Milletari et al. 2016, with smoothing 1); multiclass: mean over the classes present in
    the target, void pixels excluded.
    """
    if num_classes == 1:
        t = target.float()[:, None]
        p = logits.sigmoid()
        dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
        return F.binary_cross_entropy_with_logits(logits, t) + dice
    valid = target != CAMVID_VOID
    ce = F.cross_entropy(logits, target, ignore_index=CAMVID_VOID)
    p = logits.softmax(1) * valid[:, None]
    t = F.one_hot(target.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2)
    t = t * valid[:, None]
    inter, denom = (p * t).sum((0, 2, 3)), (p + t).sum((0, 2, 3))
    present = t.sum((0, 2, 3)) > 0
    dice = 1 - ((2 * inter + 1) / (denom + 1))[present].mean()
    return ce + dice


def build(name: str, num_classes: int) -> tuple[torch.nn.Module, Callable]:
    """``(model, output -> logits)`` for a benchmark model name (random weights)."""
    if name.startswith("segwise."):
        from segwise.models import create_model

        arch, _, encoder = name.removeprefix("segwise.").partition("-")
        options = {"separable": True} if arch == "deeplabv3plus" else {}
        model = create_model(arch, encoder=encoder or None, num_classes=num_classes, **options)
        return model, lambda out: out
    if name.startswith("smp."):
        import segmentation_models_pytorch as smp

        arch, _, encoder = name.removeprefix("smp.").partition("-")
        model = getattr(smp, arch)(encoder, encoder_weights=None, classes=num_classes)
        return model, lambda out: out
    if name == "monai.BasicUNet":
        from monai.networks.nets import BasicUNet

        model = BasicUNet(
            spatial_dims=2,
            in_channels=3,
            out_channels=num_classes,
            features=(64, 128, 256, 512, 1024, 64),
        )
        return model, lambda out: out
    from torchvision.models import segmentation

    builder = getattr(segmentation, name.removeprefix("torchvision."))
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
    return model, lambda out: out["out"]


PAIRS = {
    "unet": ("segwise.unet-resnet34", "smp.Unet-resnet34"),
    "deeplabv3plus": ("segwise.deeplabv3plus-resnet50", "smp.DeepLabV3Plus-resnet50"),
    "fcn": ("segwise.fcn-resnet50", "torchvision.fcn_resnet50"),
    "unet_textbook": ("segwise.unet_textbook", "monai.BasicUNet"),
}


def init_logit_std(
    model: torch.nn.Module,
    to_logits: Callable,
    *,
    batch: int,
    crop: int,
    device: torch.device | str = "cpu",
) -> float:
    """Std of the logits at initialisation on an N(0, 1) batch (train-mode BatchNorm)."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(batch, 3, crop, crop, generator=gen).to(device)
    model.train()
    with torch.no_grad():
        return float(to_logits(model(x)).std())


def train(
    model: torch.nn.Module,
    to_logits: Callable,
    task: Task,
    plan: list[list[tuple]],
    *,
    crop: int,
    lr: float = 1e-3,
    bf16: bool = False,
) -> list[float]:
    """Train on ``plan`` with AdamW + cosine (no warmup); returns the loss of every step.

    ``bf16``: forward and loss under ``torch.autocast(dtype=torch.bfloat16)`` on the task's
    device (the loss itself is computed from float32 logits).
    """
    device = task.images[0].device
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / len(plan)))
    )
    losses = []
    for items in plan:
        x, y = make_batch(task.images, task.targets, items, crop)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = to_logits(model(x))
        loss = loss_fn(logits.float(), y, task.num_classes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    to_logits: Callable,
    task: Task,
    *,
    crop: int,
    size: int | None = None,
    bf16: bool = False,
) -> float:
    """Val score on the centre ``size`` (default ``crop*2``) square of each val image, pooled.

    dsb2018: foreground Dice ``2 TP / (2 TP + FP + FN)`` of ``logit > 0``; camvid: mean over
    the 11 classes of ``TP / (TP + FP + FN)`` of the argmax, void pixels excluded.
    """
    model.eval()
    size = size or 2 * crop
    k = max(task.num_classes, 2)
    device = task.val_images[0].device
    conf = torch.zeros(k, k, dtype=torch.long, device=device)
    for image, target in zip(task.val_images, task.val_targets, strict=True):
        h, w = image.shape[-2:]
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
        x = image[None, :, top : top + size, left : left + size]
        t = target[top : top + size, left : left + size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = to_logits(model(x))[0].float()
        pred = (logits[0] > 0).long() if task.num_classes == 1 else logits.argmax(0)
        valid = t != CAMVID_VOID if task.num_classes > 1 else torch.ones_like(t, dtype=torch.bool)
        conf += torch.bincount(t[valid] * k + pred[valid], minlength=k * k).view(k, k)
    tp = conf.diag().double()
    fp, fn = conf.sum(0).double() - tp, conf.sum(1).double() - tp
    if task.num_classes == 1:
        return float(2 * tp[1] / (2 * tp[1] + fp[1] + fn[1]).clamp(min=1))
    return float((tp / (tp + fp + fn).clamp(min=1)).mean())


def record_row(rows: list[dict], row: dict, args) -> None:
    """Append ``row``, print it without its loss curve, and rewrite ``args.out`` with every row
    so far (a partial run keeps what it measured); used by the ablation scripts."""
    rows.append(row)
    shown = {k: v for k, v in row.items() if k != "losses"}
    print(json.dumps(shown, default=lambda v: round(v, 4)), flush=True)
    config = vars(args) | {"out": str(args.out), "data": str(args.data)}
    args.out.write_text(json.dumps({"config": config, "rows": rows}, indent=1))


def summarise(losses: list[float], at: list[int]) -> dict:
    """Loss at the steps ``at`` (1-based, mean of a 5-step window ending there) and last third."""
    third = len(losses) - len(losses) // 3
    return {
        "loss_at": {str(s): float(np.mean(losses[max(0, s - 5) : s])) for s in at},
        "mean_last_third": float(np.mean(losses[third:])),
    }


def load_task(name: str, data: Path, *, n_train: int, n_val: int) -> Task:
    """Load ``dsb2018`` or ``camvid`` from ``data``."""
    if name == "dsb2018":
        return load_dsb2018(data / "dsb2018", n_train=n_train, n_val=n_val)
    return load_camvid(data / "camvid", n_train=n_train, n_val=n_val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--tasks", nargs="+", default=["dsb2018"], choices=["dsb2018", "camvid"])
    parser.add_argument("--n-train", type=int, default=200, help="train images loaded")
    parser.add_argument("--n-val", type=int, default=8, help="val images scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("bench_convergence.json"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast"
    )
    parser.add_argument(
        "--val-size", type=int, default=None, help="centre square scored (default 2 x crop)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bf16 = args.precision == "bf16"
    torch.backends.cudnn.benchmark = device.type == "cuda"
    at = sorted({max(1, args.steps // 4), args.steps // 2, 3 * args.steps // 4, args.steps})
    results = []
    for task_name in args.tasks:
        task = load_task(task_name, args.data, n_train=args.n_train, n_val=args.n_val)
        task = to_device(pad_to_crop(task, args.crop), device)
        for seed in args.seeds:
            plan = crop_plan(task, steps=args.steps, batch=args.batch, crop=args.crop, seed=seed)
            for pair in args.pairs:
                for name in PAIRS[pair]:
                    torch.manual_seed(seed)
                    model, to_logits = build(name, task.num_classes)
                    model = model.to(device)
                    std = init_logit_std(
                        model, to_logits, batch=args.batch, crop=args.crop, device=device
                    )
                    torch.manual_seed(seed)
                    start = time.perf_counter()
                    losses = train(model, to_logits, task, plan, crop=args.crop, bf16=bf16)
                    row = {
                        "task": task_name,
                        "pair": pair,
                        "model": name,
                        "seed": seed,
                        "init_logit_std": std,
                        **summarise(losses, at),
                        "val": evaluate(
                            model, to_logits, task, crop=args.crop, size=args.val_size, bf16=bf16
                        ),
                        "seconds": time.perf_counter() - start,
                        "losses": losses,
                    }
                    results.append(row)
                    print(
                        f"{task_name} seed {seed} {name:32s} std0 {std:.2f} "
                        f"loss@{at} {[round(v, 3) for v in row['loss_at'].values()]} "
                        f"last3 {row['mean_last_third']:.3f} val {row['val']:.3f} "
                        f"({row['seconds']:.0f}s)",
                        flush=True,
                    )
                    args.out.write_text(json.dumps(_report(args, results), indent=1))


def _report(args: argparse.Namespace, results: list[dict]) -> dict:
    return {
        "config": {
            "steps": args.steps,
            "seeds": args.seeds,
            "crop": args.crop,
            "batch": args.batch,
            "n_train": args.n_train,
            "n_val": args.n_val,
            "optimizer": "AdamW lr 1e-3 wd 0.01, cosine to 0, no warmup",
            "device": args.device,
            "precision": args.precision,
            "val_size": args.val_size or 2 * args.crop,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
        },
        "results": results,
    }


if __name__ == "__main__":
    main()
