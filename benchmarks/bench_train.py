"""Training throughput: the segwise engine vs a plain hand-written PyTorch loop.

Both train a U-Net with a ResNet-34 encoder (segwise's ``unet``/``resnet34`` vs
segmentation_models.pytorch's ``Unet("resnet34")``) with Dice + cross-entropy (segwise's
``dicece`` vs MONAI's ``DiceCELoss``) and AdamW on the same CamVid images, same crop, batch and
workers; images/s counts data loading + forward + backward + optimizer step over the same number
of steps (validation and checkpoint writing excluded for both).

    python benchmarks/bench_train.py --data ../shared/data/camvid --steps 12 --out results.json
    python benchmarks/bench_train.py --device cuda --batch-size 16 --crop 512 --steps 50
    python benchmarks/bench_train.py --device cuda ... --compile --augment-on device  # variants

On CUDA both sides run bf16 autocast (segwise's ``--amp`` default there). ``--compile`` adds a
``torch.compile`` arm of the segwise engine, ``--augment-on device`` an arm that augments on the
GPU (``data.augment_on: device``); the hand loop is the same in every case.

Writes JSON (default ``benchmarks/results/train.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class HandDataset(Dataset):
    """What a user writes by hand: PIL decode, random crop, flip, ImageNet normalisation."""

    def __init__(self, root: Path, crop: int) -> None:
        names = (root / "train.txt").read_text().split()
        self.pairs = [(root / "train" / n, root / "trainannot" / n) for n in names]
        self.crop = crop
        self.mean = np.array([0.485, 0.456, 0.406], np.float32)
        self.std = np.array([0.229, 0.224, 0.225], np.float32)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        image = np.asarray(Image.open(self.pairs[i][0]).convert("RGB"), np.float32) / 255.0
        mask = np.asarray(Image.open(self.pairs[i][1]), np.int64)
        h, w = mask.shape
        y, x = random.randint(0, h - self.crop), random.randint(0, w - self.crop)
        image = image[y : y + self.crop, x : x + self.crop]
        mask = mask[y : y + self.crop, x : x + self.crop]
        if random.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        image = (image - self.mean) / self.std
        return torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(mask.copy())


def hand_loop(args, device) -> dict:
    import segmentation_models_pytorch as smp
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    model = smp.Unet("resnet34", encoder_weights=None, classes=12).to(device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)  # void (11) kept as a 12th class:
    # MONAI's DiceCELoss has no ignore_index, so the hand loop trains on 12 classes
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(
        HandDataset(Path(args.data), args.crop), batch_size=args.batch_size, shuffle=True,
        num_workers=args.workers, drop_last=True, pin_memory=device.type == "cuda",
    )
    model.train()
    seen = 0
    t0 = time.perf_counter()
    for step, (images, masks) in enumerate(loader):
        if step >= args.steps:
            break
        images, masks = images.to(device), masks.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(images)
        loss = loss_fn(logits.float(), masks.unsqueeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return {"images": seen, "seconds": elapsed, "images_per_s": seen / elapsed}


def segwise_engine(args, device, *, grad_clip: float | None = 1.0, compile: bool = False,
                   augment_on: str = "cpu") -> dict:
    from segwise.engine.config import config_from_dict
    from segwise.engine.trainer import fit

    config = config_from_dict({
        "model": {"name": "unet", "encoder": "resnet34"},
        "data": {"root": args.data, "crop_size": args.crop, "batch_size": args.batch_size,
                 "workers": args.workers, "scale": [1.0, 1.0], "augment_on": augment_on},
        "train": {"epochs": 1, "device": str(device), "max_steps_per_epoch": args.steps,
                  "overlays": 0, "compile": compile},
        "optim": {"warmup_epochs": 0, "grad_clip": grad_clip},
    })
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(config, Path(tmp) / "run", quiet=True)
    record = result.history[-1]
    images = args.steps * args.batch_size
    return {"images": images, "seconds": record["epoch_seconds"],
            "images_per_s": record["train_images_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/camvid")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop", type=int, default=352)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="alternate runs of each, best kept")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile arm")
    parser.add_argument("--augment-on", choices=["cpu", "device"], default=None,
                        help="add an arm that augments on the device")
    parser.add_argument("--out", default="benchmarks/results/train.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    results: dict[str, list[dict]] = {
        "segwise": [], "segwise_no_grad_clip": [], "hand_loop_smp_monai": []
    }
    for _ in range(args.repeats):  # alternate, so drift in machine load hits all alike
        results["segwise"].append(segwise_engine(args, device))
        # like for like: the hand loop does not clip gradients
        results["segwise_no_grad_clip"].append(segwise_engine(args, device, grad_clip=None))
        results["hand_loop_smp_monai"].append(hand_loop(args, device))
        if args.compile:
            results.setdefault("segwise_compile", []).append(
                segwise_engine(args, device, compile=True))
        if args.augment_on == "device":
            results.setdefault("segwise_augment_on_device", []).append(
                segwise_engine(args, device, augment_on="device"))
    best = {k: max(r["images_per_s"] for r in v) for k, v in results.items()}
    out = {
        "benchmark": "training throughput (data + forward + backward + step)",
        "setup": vars(args),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"},
        "runs": results,
        "best_images_per_s": best,
        "segwise_vs_hand_loop": best["segwise"] / best["hand_loop_smp_monai"],
        "segwise_no_clip_vs_hand_loop": best["segwise_no_grad_clip"] / best["hand_loop_smp_monai"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({"best_images_per_s": best, "ratio": out["segwise_vs_hand_loop"],
                      "ratio_no_clip": out["segwise_no_clip_vs_hand_loop"]}, indent=2))


if __name__ == "__main__":
    main()
