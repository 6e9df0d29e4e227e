"""Benchmark: HD95 + normalised surface Dice of label maps, segwise vs MONAI, same run.

segwise computes both from one pass (``BoundaryMetrics``: boundary pixels of every class found
at once, a k-d tree per (image, class) and direction); MONAI runs ``HausdorffDistanceMetric(
percentile=95)`` and ``SurfaceDiceMetric`` on one-hot tensors (made before the clock starts).
The label maps are smooth random regions (argmax of upsampled noise), the prediction a
perturbed copy of the target, so boundaries look like real segmentations. Writes JSON to
``--out``; also checks that both give the same values.

Usage:
    .venv/bin/python benchmarks/bench_metrics.py                 # (16, 4, 512, 512) on CPU
    .venv/bin/python benchmarks/bench_metrics.py --shape 2,3,64,64 --reps 1
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F


def label_maps(n: int, c: int, size: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, target) (N, size, size) int64: regions of smooth noise, prediction perturbed."""
    g = torch.Generator().manual_seed(seed)
    grid = max(size // 16, 2)
    field = F.interpolate(torch.randn(n, c, grid, grid, generator=g), size=(size, size),
                          mode="bicubic", align_corners=False)  # fmt: skip
    noise = F.interpolate(torch.randn(n, c, grid * 2, grid * 2, generator=g),
                          size=(size, size), mode="bicubic", align_corners=False)  # fmt: skip
    return (field + 0.3 * noise).argmax(1), field.argmax(1)


def run_segwise(pred, target, c, spacing, tolerance):
    from segwise.metrics import BoundaryMetrics

    bm = BoundaryMetrics(c, spacing=spacing, tolerance=tolerance, percentile=95.0)
    bm.update(pred, target)
    scores = bm.compute()
    return scores.hd_percentile, scores.nsd


def run_monai(pred_oh, target_oh, c, spacing, tolerance):
    from monai.metrics import HausdorffDistanceMetric, SurfaceDiceMetric

    hd = HausdorffDistanceMetric(include_background=True, percentile=95.0, reduction="none")
    nsd = SurfaceDiceMetric([tolerance] * c, include_background=True, reduction="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd(pred_oh, target_oh, spacing=spacing), nsd(pred_oh, target_oh, spacing=spacing)


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    same_special = (a.isnan() & b.isnan()) | (a.isinf() & b.isinf() & (a.sign() == b.sign()))
    if bool((a.isnan() ^ b.isnan()).any()) or bool((a.isinf() ^ b.isinf()).any()):
        return math.inf
    d = (a - b).abs()
    return float(torch.where(same_special, torch.zeros_like(d), d).max())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="16,4,512,512", help="N,C,H,W (C classes)")
    parser.add_argument("--spacing", default="1.0,1.0", help="pixel size per axis")
    parser.add_argument("--tolerance", type=float, default=2.0, help="NSD tolerance")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", default="benchmarks/results/metrics.json")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    n, c, h, w = (int(s) for s in args.shape.split(","))
    if h != w:
        raise SystemExit(f"--shape {args.shape}: expected square images (H == W)")
    spacing = tuple(float(s) for s in args.spacing.split(","))
    pred, target = label_maps(n, c, h)
    pred_oh = F.one_hot(pred, c).permute(0, 3, 1, 2).float()
    target_oh = F.one_hot(target, c).permute(0, 3, 1, 2).float()

    runs = {
        "segwise.BoundaryMetrics": lambda: run_segwise(pred, target, c, spacing, args.tolerance),
        "monai.Hausdorff95+SurfaceDice": lambda: run_monai(pred_oh, target_oh, c, spacing,
                                                           args.tolerance),
    }
    values = {}
    for _ in range(args.warmup):
        for fn in runs.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.reps):
        for name, fn in runs.items():  # interleaved so load noise is shared
            t0 = time.perf_counter()
            values[name] = fn()
            times[name].append(time.perf_counter() - t0)
    (s_hd, s_nsd), (m_hd, m_nsd) = values.values()
    results = {
        name: {"median_s": statistics.median(t), "min_s": min(t), "times_s": t}
        for name, t in times.items()
    }
    seg, mon = results["segwise.BoundaryMetrics"], results["monai.Hausdorff95+SurfaceDice"]
    summary = {
        "speedup_vs_monai": mon["median_s"] / seg["median_s"],
        "max_abs_diff_hd95": _max_abs_diff(s_hd, m_hd),
        "max_abs_diff_nsd": _max_abs_diff(s_nsd, m_nsd),
        "mean_hd95": float(s_hd[~s_hd.isnan()].mean()),
        "mean_nsd": float(s_nsd[~s_nsd.isnan()].mean()),
    }
    report = {
        "benchmark": "HD95 + NSD per (image, class) of label maps",
        "shape_NCHW": [n, c, h, w],
        "spacing": list(spacing),
        "tolerance": args.tolerance,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "reps": args.reps,
        "warmup": args.warmup,
        "timing_method": "time.perf_counter around the whole computation of both metrics "
        "(MONAI: both metric calls on one-hot inputs made beforehand), median of reps, "
        "interleaved",
        "values_method": "max |segwise - MONAI| over every (image, class); NaN/inf must match "
        "exactly (MONAI works in float32)",
        "results": results,
        "summary": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    for name, r in results.items():
        print(f"{name:32s} median {r['median_s']:8.3f} s")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
