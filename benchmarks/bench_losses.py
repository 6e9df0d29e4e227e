"""Benchmark: forward + backward time and peak extra memory of the multiclass Dice losses.

Compares segwise ``DiceLoss`` / ``DiceCELoss`` with MONAI ``DiceLoss`` / ``DiceCELoss``
(``softmax=True, to_onehot_y=True``) and smp ``DiceLoss("multiclass")`` on the same tensors in
the same run, and writes JSON to ``--out``.

``--suite imbalance`` times the focal, Tversky and Lovasz losses instead: segwise
``FocalLoss`` (softmax) vs MONAI ``FocalLoss(use_softmax=True)`` and smp ``FocalLoss``
(one-vs-rest sigmoid: smp's multiclass focal, a different loss, timed as the practical
alternative); ``TverskyLoss(alpha=0.3, beta=0.7)`` vs MONAI and smp ``TverskyLoss``;
``LovaszLoss`` vs smp ``LovaszLoss`` (MONAI has none).

Usage:
    .venv/bin/python benchmarks/bench_losses.py                       # CPU, (8, 21, 256, 256)
    .venv/bin/python benchmarks/bench_losses.py --device cuda --shape 16,21,512,512
    .venv/bin/python benchmarks/bench_losses.py --suite imbalance --out \
        benchmarks/results/losses_imbalance.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

MEMORY_METHODS = {
    "cpu": (
        "Linux peak resident set: glibc malloc_trim(0) returns free heap pages to the OS, "
        "'5' written to /proc/self/clear_refs resets the peak (VmHWM) to the current RSS, then "
        "one forward+backward runs; peak extra = VmHWM - RSS before the call. It counts every "
        "page touched, temporaries inside ops included, beyond the inputs (logits, target) that "
        "existed before the call."
    ),
    "cpu-profiler": (
        "fallback where /proc/self/clear_refs is not writable: torch.profiler("
        "profile_memory=True) allocation/free events summed in time order (op granularity; "
        "approximate)."
    ),
    "cuda": (
        "torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus the memory "
        "allocated before the call (logits, target): the peak extra bytes of one "
        "forward+backward."
    ),
}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _peak_rss_bytes(fn: Callable[[], None]) -> int | None:
    """Peak RSS growth of ``fn()`` via VmHWM reset; None where /proc does not allow it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        base = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, KeyError):
        return None
    fn()
    return max(0, (_status_kib("VmHWM") - base) * 1024)


def build_losses(num_classes: int) -> dict[str, Callable]:
    """The compared losses, each configured as the same multiclass soft Dice (+ CE)."""
    import monai.losses
    import segmentation_models_pytorch.losses as smp_losses

    from segwise.losses import DiceCELoss, DiceLoss

    eps = 1e-5
    return {
        "segwise.DiceLoss": DiceLoss(task="multiclass", num_classes=num_classes, eps=eps),
        "segwise.DiceCELoss": DiceCELoss(task="multiclass", num_classes=num_classes, eps=eps),
        "monai.DiceLoss": _monai_index(
            monai.losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True)
        ),
        "monai.DiceCELoss": _monai_index(
            monai.losses.DiceCELoss(softmax=True, to_onehot_y=True, batch=True)
        ),
        "smp.DiceLoss": smp_losses.DiceLoss("multiclass", from_logits=True),
    }


# loss family -> (segwise name, peer names); values comparable as noted in the docstring
IMBALANCE_FAMILIES = {
    "focal": ("segwise.FocalLoss", ("monai.FocalLoss", "smp.FocalLoss")),
    "tversky": ("segwise.TverskyLoss", ("monai.TverskyLoss", "smp.TverskyLoss")),
    "lovasz": ("segwise.LovaszLoss", ("smp.LovaszLoss",)),
}


def build_imbalance_losses(num_classes: int) -> dict[str, Callable]:
    """Focal, Tversky and Lovasz losses of segwise and the peers (multiclass, index targets)."""
    import monai.losses
    import segmentation_models_pytorch.losses as smp_losses

    from segwise.losses import FocalLoss, LovaszLoss, TverskyLoss

    c = num_classes
    return {
        "segwise.FocalLoss": FocalLoss(task="multiclass", num_classes=c, gamma=2.0),
        "monai.FocalLoss": _monai_index(
            monai.losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)
        ),
        "smp.FocalLoss": smp_losses.FocalLoss("multiclass", gamma=2.0),
        "segwise.TverskyLoss": TverskyLoss(task="multiclass", num_classes=c, alpha=0.3,
                                           beta=0.7, eps=1e-5),
        "monai.TverskyLoss": _monai_index(
            monai.losses.TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7,
                                     batch=True, smooth_nr=0.0, smooth_dr=1e-5)
        ),
        "smp.TverskyLoss": smp_losses.TverskyLoss("multiclass", alpha=0.3, beta=0.7),
        "segwise.LovaszLoss": LovaszLoss(task="multiclass", num_classes=c),
        "smp.LovaszLoss": smp_losses.LovaszLoss("multiclass"),
    }


def _monai_index(loss: Callable) -> Callable:
    """MONAI wants the index target with a channel axis: (N, 1, H, W)."""
    return lambda logits, target: loss(logits, target.unsqueeze(1))


def _step(loss: Callable, logits: torch.Tensor, target: torch.Tensor) -> None:
    x = logits.detach().requires_grad_(True)
    loss(x, target).backward()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_all(losses, logits, target, *, warmup: int, reps: int) -> dict[str, list[float]]:
    """Seconds per forward+backward; losses interleaved round-robin so load noise is shared."""
    device = logits.device
    for _ in range(warmup):
        for loss in losses.values():
            _step(loss, logits, target)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(reps):
        for name, loss in losses.items():
            _sync(device)
            t0 = time.perf_counter()
            _step(loss, logits, target)
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def peak_memory(loss: Callable, logits: torch.Tensor, target: torch.Tensor) -> int:
    """Peak extra bytes of one forward+backward (method: MEMORY_METHODS)."""
    if logits.device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _step(loss, logits, target)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    rss = _peak_rss_bytes(lambda: _step(loss, logits, target))
    if rss is not None:
        return rss
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(loss, logits, target)
    events = [e for e in prof.events() if e.self_cpu_memory_usage != 0]
    events.sort(key=lambda e: e.time_range.start)
    running = peak = 0
    for e in events:
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return int(peak)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shape", default="8,21,256,256", help="N,C,H,W of the logits")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--suite", default="dice", choices=["dice", "imbalance"],
                        help="dice: Dice/DiceCE (default); imbalance: focal, Tversky, Lovasz")
    parser.add_argument("--out", default=None,
                        help="JSON path (default benchmarks/results/losses[_imbalance].json)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    n, c, h, w = (int(s) for s in args.shape.split(","))
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(n, c, h, w, generator=gen).to(device)
    target = torch.randint(0, c, (n, h, w), generator=gen).to(device)
    losses = build_imbalance_losses(c) if args.suite == "imbalance" else build_losses(c)
    if args.out is None:
        suffix = "_imbalance" if args.suite == "imbalance" else ""
        args.out = f"benchmarks/results/losses{suffix}.json"

    values = {name: float(loss(logits, target)) for name, loss in losses.items()}
    times = time_all(losses, logits, target, warmup=args.warmup, reps=args.reps)
    memory = {name: peak_memory(loss, logits, target) for name, loss in losses.items()}
    memory_method = device.type
    if device.type == "cpu" and _peak_rss_bytes(lambda: None) is None:
        memory_method = "cpu-profiler"
    results = {
        name: {
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "times_s": times[name],
            "peak_extra_bytes": memory[name],
            "peak_extra_mib": memory[name] / 2**20,
            "loss_value": values[name],
        }
        for name in losses
    }
    if args.suite == "imbalance":
        summary = {}
        for family, (ours, peers) in IMBALANCE_FAMILIES.items():
            fastest = min(peers, key=lambda k: results[k]["median_s"])
            summary[family] = {
                "fastest_peer": fastest,
                "speedup_vs_fastest_peer": results[fastest]["median_s"]
                / results[ours]["median_s"],
                "memory_ratio_vs_fastest_peer": results[ours]["peak_extra_bytes"]
                / max(results[fastest]["peak_extra_bytes"], 1),
            }
        return _write(args, results, summary, (n, c, h, w), device, memory_method)
    dice_peers = ("monai.DiceLoss", "smp.DiceLoss")
    fastest = min(dice_peers, key=lambda k: results[k]["median_s"])
    summary = {
        "fastest_dice_peer": fastest,
        "speedup_dice_vs_fastest_peer": results[fastest]["median_s"]
        / results["segwise.DiceLoss"]["median_s"],
        "speedup_dicece_vs_monai_dicece": results["monai.DiceCELoss"]["median_s"]
        / results["segwise.DiceCELoss"]["median_s"],
        "memory_ratio_dice_vs_fastest_peer": results["segwise.DiceLoss"]["peak_extra_bytes"]
        / max(results[fastest]["peak_extra_bytes"], 1),
    }
    return _write(args, results, summary, (n, c, h, w), device, memory_method)


def _write(args, results: dict, summary: dict, shape, device, memory_method: str) -> dict:
    n, c, h, w = shape
    what = ("multiclass focal, Tversky, Lovasz" if args.suite == "imbalance"
            else "multiclass soft Dice (+CE)")
    report = {
        "benchmark": f"{what}, forward+backward, index targets",
        "shape_NCHW": [n, c, h, w],
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name() if device.type == "cuda" else platform.processor()
        )
        or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "reps": args.reps,
        "warmup": args.warmup,
        "timing_method": "time.perf_counter around forward+backward (cuda synchronised), "
        "median of reps after warmup, losses interleaved round-robin",
        "memory_method": MEMORY_METHODS[memory_method],
        "results": results,
        "summary": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    for name, r in results.items():
        print(f"{name:20s} median {r['median_s'] * 1e3:8.1f} ms  peak extra "
              f"{r['peak_extra_mib']:8.1f} MiB  loss {r['loss_value']:.5f}")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
