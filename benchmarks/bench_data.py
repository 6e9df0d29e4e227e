"""Data pipeline throughput: decoding (torchvision.io vs PIL), the train pipeline with 0 and 2
workers, and ``inspect_dataset`` wall time, on CamVid and dsb2018 from ../shared/data.

    .venv/bin/python benchmarks/bench_data.py [--data-root ../shared/data] [--images 48]
        [--workers 0 2] [--out benchmarks/results/data.json]

Writes JSON (figures in images/s; wall-clock seconds for inspect). Numbers depend on the machine
and its load; compare only figures from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segwise.data import (
    SegmentationDataset,
    discover_dataset,
    inspect_dataset,
    make_loader,
    read_image,
    train_transforms,
)

REPO = Path(__file__).resolve().parents[1]
CROPS = {"camvid": (352, 480), "dsb2018": (256, 256)}


def _decode_rate(paths: list[Path], fn) -> float:
    fn(paths[0])  # warm-up (imports, caches)
    t = time.perf_counter()
    for p in paths:
        fn(p)
    return len(paths) / (time.perf_counter() - t)


def _pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _pipeline_rate(ds, workers: int, n_images: int, batch_size: int) -> float:
    loader = make_loader(ds, batch_size=batch_size, shuffle=True, workers=workers, seed=0)
    it = iter(loader)
    next(it)  # warm-up: worker start-up is not throughput
    seen, t = 0, time.perf_counter()
    while seen < n_images:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        seen += batch["image"].shape[0]
    rate = seen / (time.perf_counter() - t)
    del it, loader
    return rate


def bench(root: Path, name: str, args) -> dict:
    t = time.perf_counter()
    report = inspect_dataset(root)
    inspect_s = time.perf_counter() - t
    t = time.perf_counter()
    index = discover_dataset(root)  # scans are cached by inspect: this is the warm cost
    discover_warm_s = time.perf_counter() - t
    paths = [s.image_path for s in index.train[: args.images]]
    out = {
        "images_in_dataset": len(index.samples),
        "inspect_s": round(inspect_s, 2),
        "inspect_problems": report.to_dict()["problem_counts"],
        "discover_after_inspect_s": round(discover_warm_s, 2),
        "decode_images_per_s": {
            "segwise.read_image (torchvision.io)": round(_decode_rate(paths, read_image), 1),
            "PIL": round(_decode_rate(paths, _pil), 1),
        },
        "crop_size": list(CROPS[name]),
        "batch_size": args.batch_size,
        "train_pipeline_images_per_s": {},
    }
    info = index.info
    tf = train_transforms(info, crop_size=CROPS[name], rotation=10, color_jitter=0.2)
    rates = out["train_pipeline_images_per_s"]
    threads = torch.get_num_threads()
    for workers in args.workers:
        ds = SegmentationDataset(index.train, info, transform=tf)
        rate = _pipeline_rate(ds, workers, args.images, args.batch_size)
        rates[f"workers={workers}, main torch threads={threads}"] = round(rate, 1)
    # Workers run with 1 torch thread each; in the main process intra-op threads fight over
    # the CPUs on small per-image ops, so time workers=0 with 1 thread as well.
    torch.set_num_threads(1)
    try:
        ds = SegmentationDataset(index.train, info, transform=tf)
        rates["workers=0, main torch threads=1"] = round(
            _pipeline_rate(ds, 0, args.images, args.batch_size), 1)
        ds = SegmentationDataset(index.train[: args.images], info, transform=tf, cache=True)
        for i in range(len(ds)):
            ds[i]  # fill the cache
        rates["workers=0, main torch threads=1, cache=True (warm)"] = round(
            _pipeline_rate(ds, 0, args.images, args.batch_size), 1)
    finally:
        torch.set_num_threads(threads)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--images", type=int, default=48, help="images timed per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--datasets", nargs="+", default=["camvid", "dsb2018"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "data.json")
    args = parser.parse_args()
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "datasets": {},
    }
    for name in args.datasets:
        root = args.data_root / name
        if not root.is_dir():
            print(f"skip {name}: {root} not found")
            continue
        results["datasets"][name] = bench(root, name, args)
        print(name, json.dumps(results["datasets"][name], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
