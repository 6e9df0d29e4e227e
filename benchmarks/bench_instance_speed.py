"""Inference speed of trained instance methods: images/s at one image size, in one run.

Each checkpoint (``--checkpoint METHOD=PATH``, e.g. the runs of ``bench_instance.py``) is loaded
with ``segwise.runs.checkpoint.load_run`` and predicts, through the one prediction path
``segwise.instance.methods.predict_image`` (network + decoding to `InstancePrediction`,
what ``segwise predict`` runs), the centre ``--size`` x ``--size`` crop of each image of the
DSB2018 ``val`` split (images smaller than the crop are skipped). Two warm-up images, then the
median of ``--rounds`` timed passes over the crops. Trained checkpoints matter: the decoding
cost grows with the number of objects found, which random weights do not represent.

    python benchmarks/bench_instance_speed.py --checkpoint unet_watershed=runs/a/last.pt \
        --checkpoint solov2=runs/b/last.pt --size 256 --threads 1

Writes JSON (default ``benchmarks/results/instance_speed.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch


def crops(data: Path, size: int, limit: int) -> list[torch.Tensor]:
    """Normalised centre crops ``(C, size, size)`` of the val split's images."""
    from segwise.data import InstanceDataset, discover_dataset, eval_transforms

    index = discover_dataset(data)
    ds = InstanceDataset(index.val, index.info, transform=eval_transforms(index.info))
    out = []
    for i in range(len(ds)):
        image = ds[i]["image"]
        h, w = image.shape[-2:]
        if h < size or w < size:
            continue
        y, x = (h - size) // 2, (w - size) // 2
        out.append(image[:, y : y + size, x : x + size].contiguous())
        if len(out) == limit:
            break
    return out


def time_method(path: Path, images: list[torch.Tensor], rounds: int) -> dict:
    from segwise.instance.methods import predict_image
    from segwise.runs.checkpoint import load_run

    run = load_run(path, device="cpu")

    def one_pass() -> tuple[float, int]:
        t0, found = time.perf_counter(), 0
        for image in images:
            pred = predict_image(run.model, image, device=run.device)
            found += len(pred)
        return time.perf_counter() - t0, found

    for image in images[:2]:  # warm-up
        predict_image(run.model, image, device=run.device)
    seconds, found = zip(*(one_pass() for _ in range(rounds)), strict=True)
    median = statistics.median(seconds)
    return {"checkpoint": str(path), "encoder": run.model_args.get("encoder"),
            "images": len(images), "seconds_per_pass": list(seconds),
            "images_per_s": len(images) / median, "objects_per_image": found[0] / len(images)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/dsb2018", help="DSB2018 folder")
    p.add_argument("--checkpoint", action="append", required=True, metavar="METHOD=PATH")
    p.add_argument("--size", type=int, default=256, help="crop side, px")
    p.add_argument("--images", type=int, default=16, help="val crops timed per pass")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/instance_speed.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images = crops(Path(args.data), args.size, args.images)
    if not images:
        raise SystemExit(f"no val image of {args.data} is at least {args.size} px on each side")
    results = {}
    for spec in args.checkpoint:
        method, _, path = spec.partition("=")
        results[method] = time_method(Path(path), images, args.rounds)
        print(method, json.dumps(results[method]), flush=True)
    payload = {"benchmark": "instance_speed", "settings": vars(args),
               "machine": {"platform": platform.platform(), "torch": torch.__version__,
                           "threads": torch.get_num_threads()},
               "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
