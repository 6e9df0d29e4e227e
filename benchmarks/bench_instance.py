"""Instance segmentation on DSB2018: every registered method vs torchvision's Mask R-CNN loop.

Each method of ``segwise.instance.methods.INSTANCE_METHODS`` trains through the segwise engine
(``fit`` with ``train.task = instance``, the code of ``segwise train --task instance``) with one
recipe: the same training images, encoder (``--encoder``, default resnet18, random init:
nothing is downloaded), crop (no rescale jitter), h/v flips, batch size, AdamW lr / weight
decay, cosine schedule with the same linear warmup (``--warmup``, a share of the steps), grad
clip 1, seed, and the same number of optimizer steps (``--steps``). Each method keeps its own
defaults otherwise (anchors etc. derived from the data, as a user's run does).

The peer (``tv_maskrcnn``) is a hand-written loop around torchvision's
``maskrcnn_resnet50_fpn_v2`` (random init, torchvision's default anchors 32-512 px and its own
normalisation), trained in the same run with the same crops, flips, batch, optimizer,
schedule, warmup and step count. Everything is scored on the ``val`` split of ``splits.json``
at full resolution with ``segwise.metrics.instance`` (DSB score = mean over IoU 0.5:0.05:0.95
of TP/(TP+FP+FN); AP50; PQ; docs/instance.md). Overlays of the first ``--overlays`` val images
per method go to ``<out stem>_overlays/<method>.png``: look at them.

    python benchmarks/bench_instance.py --steps 150 --crop 128 --val-images 16
    python benchmarks/bench_instance.py --device cuda --steps 2000 --batch-size 8 --crop 256

Writes JSON (default ``benchmarks/results/instance.json``).
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

import numpy as np
import torch

PEER = "tv_maskrcnn"


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


def _save_overlays(path: Path, pictures: list[np.ndarray]) -> None:
    from PIL import Image

    h = max(p.shape[0] for p in pictures)
    row = np.concatenate([np.pad(p, ((0, h - p.shape[0]), (0, 4), (0, 0))) for p in pictures], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(row).save(path)


def _option(text: str) -> tuple[str, str, object]:
    import yaml

    method, _, rest = text.partition(":")
    key, _, value = rest.partition("=")
    return method, key, yaml.safe_load(value)


def run_method(method: str, data: Path, run_dir: Path, args: argparse.Namespace) -> dict:
    from segwise.data import InstanceDataset, discover_dataset, eval_transforms
    from segwise.engine.config import config_from_dict
    from segwise.engine.trainer import fit
    from segwise.instance import render_overlay
    from segwise.instance.methods import predict_image
    from segwise.runs.checkpoint import load_run
    from segwise.viz import denormalize

    options = {k: v for m, k, v in map(_option, args.option) if m == method}
    config = config_from_dict({
        "model": {"name": method, "encoder": args.encoder, "options": options},
        "data": {"root": str(data), "crop_size": args.crop, "batch_size": args.batch_size,
                 "workers": args.workers, "vflip": True, "scale": [1.0, 1.0]},
        # the engine's warmup is in epochs: the same share of the steps as the peer's
        "optim": {"lr": args.lr, "warmup_epochs": _warmup_epochs(data, args)},
        "train": {"task": "instance", "epochs": 1000, "max_steps": args.steps,
                  "device": args.device, "seed": args.seed, "overlays": 0,
                  "val_every": 1000},
    })
    t0 = time.perf_counter()
    result = fit(config, run_dir, quiet=not args.verbose)
    train_s = time.perf_counter() - t0
    loaded = load_run(run_dir / "last.pt", device=args.device)
    index = discover_dataset(data)
    val = InstanceDataset(index.val, index.info, transform=eval_transforms(index.info))

    def predict(item):
        return predict_image(loaded.model, item["image"], device=loaded.device)

    scores, pictures = _score(val, predict, args)
    for i in range(min(args.overlays, len(val))):
        item = val[i]
        rgb = denormalize(item["image"].numpy(), index.info.mean, index.info.std)
        pictures.append(render_overlay(rgb, predict(item)))
    return {"method": method, "steps": result.history[-1]["step"],
            "final_train_loss": result.history[-1]["train_loss"],
            "derived": loaded.model_args.get("derived"), **scores,
            "train_and_setup_seconds": train_s}, pictures


def _score(val, predict, args) -> tuple[dict, list]:
    from segwise.instance import InstancePrediction
    from segwise.metrics.instance import InstanceMetrics

    metrics = InstanceMetrics()
    t0 = time.perf_counter()
    counts = []
    for i in range(len(val)):
        item = val[i]
        pred = predict(item)
        target = InstancePrediction.from_target(item["instances"])  # cleaned by the dataset
        metrics.update(pred, target)
        counts.append((len(pred), len(target)))
    r = metrics.compute()
    return {"dsb_score": float(r.dsb_score), "ap50": float(r.ap50), "pq": float(r.pq),
            "f1_50": float(r.f1_50), "val_seconds": time.perf_counter() - t0,
            "predicted_per_image": float(np.mean([c[0] for c in counts])),
            "true_per_image": float(np.mean([c[1] for c in counts]))}, []


def _warmup_epochs(data: Path, args: argparse.Namespace) -> float:
    """``--warmup`` (a share of the run's steps) in the engine's unit, epochs."""
    n_train = len(json.loads((data / "splits.json").read_text())["train"])
    return args.warmup * args.steps / max(1, n_train // args.batch_size)


def _peer_item(path_img: Path, path_inst: Path) -> tuple[torch.Tensor, np.ndarray]:
    from PIL import Image

    img = np.asarray(Image.open(path_img).convert("RGB"), dtype=np.float32) / 255.0
    inst = np.asarray(Image.open(path_inst)).astype(np.int64)
    return torch.from_numpy(img).permute(2, 0, 1), inst


def _peer_target(inst: np.ndarray) -> dict:
    ids = np.unique(inst)
    ids = ids[ids > 0]
    masks = torch.from_numpy((inst[None] == ids[:, None, None]).astype(np.uint8))
    boxes = torch.zeros((len(ids), 4))
    if len(ids):
        from torchvision.ops import masks_to_boxes

        boxes = masks_to_boxes(masks.bool())
        boxes[:, 2:] += 1
    return {"boxes": boxes, "labels": torch.ones(len(ids), dtype=torch.int64), "masks": masks}


def run_peer(data: Path, args: argparse.Namespace) -> tuple[dict, list]:
    """torchvision's maskrcnn_resnet50_fpn_v2, trained by a plain loop (no segwise code)."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)
    splits = json.loads((data / "splits.json").read_text())
    train = [_peer_item(data / "images" / f"{i}.png", data / "instances" / f"{i}.png")
             for i in splits["train"]]
    c = args.crop
    options = {"box_detections_per_img": 400,
               **{k: v for m, k, v in map(_option, args.option) if m == PEER}}
    model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=2,
                                     min_size=c, max_size=c, **options).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warm = max(1, round(args.warmup * args.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) /
                                                                  max(1, args.steps - warm))))
    model.train()
    t0 = time.perf_counter()
    loss = torch.zeros(())
    for step in range(args.steps):
        images, targets = [], []
        for k in rng.choice(len(train), args.batch_size, replace=False):
            img, inst = train[k]
            h, w = inst.shape
            y, x = rng.integers(0, max(1, h - c) + 1), rng.integers(0, max(1, w - c) + 1)
            img, inst = img[:, y:y + c, x:x + c], inst[y:y + c, x:x + c]
            if rng.random() < 0.5:
                img, inst = img.flip(-1), inst[:, ::-1]
            if rng.random() < 0.5:
                img, inst = img.flip(-2), inst[::-1]
            images.append(img.contiguous().to(device))
            targets.append({k2: v.to(device) for k2, v in _peer_target(inst.copy()).items()})
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if args.verbose and (step + 1) % 10 == 0:
            print(f"{PEER} step {step + 1}: loss {float(loss):.3f}, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    train_s = time.perf_counter() - t0
    model.eval()
    from segwise.instance import InstancePrediction, render_overlay
    from segwise.metrics.instance import InstanceMetrics

    metrics, pictures, counts = InstanceMetrics(), [], []
    t1 = time.perf_counter()
    with torch.no_grad():
        for n, i in enumerate(splits["val"]):
            img, inst = _peer_item(data / "images" / f"{i}.png", data / "instances" / f"{i}.png")
            h, w = inst.shape
            model.transform.min_size, model.transform.max_size = (min(h, w),), max(h, w)
            out = model([img.to(device)])[0]
            pred = (InstancePrediction.from_maskrcnn_output(out) if len(out["scores"])
                    else InstancePrediction.empty((h, w)))
            target = InstancePrediction.from_label_map(inst.astype(np.int32))
            metrics.update(pred, target)
            counts.append((len(pred), len(target)))
            if n < args.overlays:
                pictures.append(render_overlay(img.numpy(), pred))
    r = metrics.compute()
    return {"method": PEER, "steps": args.steps, "final_train_loss": float(loss.detach()),
            "derived": "torchvision defaults: anchors 32-512 px", "dsb_score": float(r.dsb_score),
            "ap50": float(r.ap50), "pq": float(r.pq), "f1_50": float(r.f1_50),
            "val_seconds": time.perf_counter() - t1,
            "predicted_per_image": float(np.mean([x[0] for x in counts])),
            "true_per_image": float(np.mean([x[1] for x in counts])),
            "train_and_setup_seconds": train_s}, pictures


def main(argv: list[str] | None = None) -> int:
    from segwise.instance.methods import INSTANCE_METHODS

    methods = [*INSTANCE_METHODS.names(), PEER]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/dsb2018", help="DSB2018 folder")
    p.add_argument("--methods", nargs="+", default=methods, choices=methods)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--steps", type=int, default=150, help="optimizer steps per method")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=int, default=128, help="training crop side")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.1,
                   help="linear warmup, share of --steps, for every method and the peer")
    p.add_argument("--encoder", default="resnet18", help="encoder of every segwise method")
    p.add_argument("--option", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="a --model-option for one method (recorded in the JSON)")
    p.add_argument("--train-images", type=int, default=0, help="random subset (0: all 500)")
    p.add_argument("--val-images", type=int, default=0, help="random subset (0: all 64)")
    p.add_argument("--overlays", type=int, default=3, help="val images drawn per method")
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
    pictures_dir = out.with_name(out.stem + "_overlays")
    results = []
    payload = {
        "benchmark": "instance",
        "command": "python benchmarks/bench_instance.py " + " ".join(argv),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name() if args.device.startswith("cuda")
                    else None},
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_instance_") as tmp:
        data = Path(tmp) / "data"
        chosen = subset_dataset(root, data, train=args.train_images, val=args.val_images,
                                seed=args.seed)
        for method in args.methods:
            if method == PEER:
                row, pictures = run_peer(data, args)
            else:
                row, pictures = run_method(method, data, Path(tmp) / f"run_{method}", args)
            if pictures:
                _save_overlays(pictures_dir / f"{method}.png", pictures)
            print(json.dumps(row), flush=True)
            results.append(row)
            payload["train_images"] = len(chosen["train"])
            payload["val_images"] = len(chosen["val"])
            out.write_text(json.dumps(payload, indent=2))  # after each method: partial runs

    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
