"""Benchmark: sliding-window inference throughput and peak memory, segwise vs MONAI; plus ONNX
Runtime vs PyTorch eager latency on one tile.

Every method runs in a fresh subprocess, with the same model (same seed), image, tile size,
overlap, tile batch size and Gaussian blending; the parent compares the label maps the methods
produce and writes JSON to ``--out``.

Usage:
    .venv/bin/python benchmarks/bench_inference.py          # CPU: 2048x2048, small U-Net, tile 256
    .venv/bin/python benchmarks/bench_inference.py --device cuda   # 4096x4096, U-Net-ResNet34,
                                                                    # tile 512, bf16 autocast
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEMORY_METHODS = {
    "cpu": (
        "peak resident set size of a fresh subprocess per method: after building the model and "
        "the image and one warm-up model call, the kernel's peak-RSS counter is reset "
        "(write '5' to /proc/self/clear_refs) and the baseline VmRSS read; after the call, "
        "VmHWM - baseline is the peak extra memory of the call (tiles, model activations, "
        "accumulators, output). Workers run with MALLOC_MMAP_THRESHOLD_=65536 so that freed "
        "blocks >= 64 KiB go back to the OS and RSS tracks live memory rather than heap "
        "fragmentation; page granularity."
    ),
    "cuda": (
        "torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus the memory "
        "allocated before the call (model, image); the output is accumulated on the GPU too."
    ),
}
METHODS = ("monai", "segwise_full", "segwise_argmax", "segwise_full_contiguous")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _build_model(args):
    import torch

    import segwise

    torch.manual_seed(0)
    if args.device == "cuda":
        model = segwise.create_model("unet", encoder="resnet34", num_classes=args.classes)
    else:  # a small U-Net: the textbook U-Net at 1/8 width and 3 levels
        model = segwise.create_model(
            "unet_textbook", num_classes=args.classes, base_width=8, depth=3
        )
    return model.eval().to(args.device)


def _worker(args) -> dict:
    """Run one method once; print its figures as JSON."""
    import monai.inferers  # imported by every method before the baseline, so not measured
    import torch

    from segwise.inference import sliding_window_inference

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _build_model(args)
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, args.size, args.size, generator=gen).to(args.device)
    tile, batch = args.tile, args.tile_batch_size
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device == "cuda")

    def run():
        with torch.no_grad(), autocast:
            if args.worker == "monai":
                out = monai.inferers.sliding_window_inference(
                    image,
                    (tile, tile),
                    batch,
                    model,
                    overlap=args.overlap,
                    mode="gaussian",
                    sigma_scale=0.125,
                    padding_mode="constant",
                )
                return out.argmax(1)
            output = "argmax" if args.worker == "segwise_argmax" else "full"
            out = sliding_window_inference(
                model,
                image,
                tile_size=tile,
                overlap=args.overlap,
                tile_batch_size=batch,
                blend="gaussian",
                sigma_scale=0.125,
                output=output,
                channels_last=args.worker != "segwise_full_contiguous",
            )
            return out.labels if output == "argmax" else out.argmax(1)

    with torch.no_grad(), autocast:  # warm-up: one tile batch (kernels, allocator)
        model(torch.rand(batch, 3, tile, tile, device=args.device))
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        reset = True
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            reset = False
        base = _status_kb("VmRSS") * 1024
    start = time.perf_counter()
    labels = run()
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _status_kb("VmHWM") * 1024 - base
    import numpy as np

    np.save(args.labels_out, labels[0].to(torch.uint8).cpu().numpy())
    result = {
        "seconds": seconds,
        "megapixels_per_s": args.size * args.size / 1e6 / seconds,
        "peak_extra_mib": peak / 2**20,
    }
    if args.device == "cpu":
        result["peak_rss_counter_reset"] = reset
    return result


def _latency_worker(args) -> dict:
    """Median latency of one (1, 3, tile, tile) forward: PyTorch eager vs ONNX Runtime (CPU)."""
    import numpy as np
    import torch

    from segwise.inference import OnnxPredictor, export_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = "cpu"
    model = _build_model(args)
    x = torch.rand(1, 3, args.tile, args.tile, generator=torch.Generator().manual_seed(2))
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(
            model, Path(tmp) / "model.onnx", in_channels=3, sample_size=(args.tile, args.tile)
        )
        predictor = OnnxPredictor(path, threads=args.threads or torch.get_num_threads())

        def timed(fn) -> list[float]:
            fn()  # warm-up
            times = []
            for _ in range(args.latency_repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return times

        with torch.no_grad():
            eager = timed(lambda: model(x))
            ort = timed(lambda: predictor(x.numpy()))
            diff = float(np.abs(predictor(x.numpy()) - model(x).numpy()).max())
    return {
        "input": [1, 3, args.tile, args.tile],
        "repeats": args.latency_repeats,
        "torch_eager_ms_median": 1000 * statistics.median(eager),
        "onnxruntime_ms_median": 1000 * statistics.median(ort),
        "onnxruntime_speedup": statistics.median(eager) / statistics.median(ort),
        "max_abs_diff": diff,
    }


def _spawn(args, worker: str, labels_out: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        worker,
        "--labels-out",
        labels_out,
        "--device",
        args.device,
        "--size",
        str(args.size),
        "--tile",
        str(args.tile),
        "--overlap",
        str(args.overlap),
        "--tile-batch-size",
        str(args.tile_batch_size),
        "--classes",
        str(args.classes),
        "--threads",
        str(args.threads),
        "--latency-repeats",
        str(args.latency_repeats),
    ]
    # a fixed mmap threshold: every block >= 64 KiB is its own mapping, returned to the OS when
    # freed, so peak RSS follows the live memory instead of glibc's heap fragmentation
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"worker {worker} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", type=int, default=None, help="image side (2048 cpu, 4096 cuda)")
    parser.add_argument("--tile", type=int, default=None, help="tile side (256 cpu, 512 cuda)")
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--tile-batch-size", type=int, default=4)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch/ORT threads (0: default)")
    parser.add_argument("--latency-repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="runs per method (best time kept)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inference.json"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--labels-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    args.size = args.size or (4096 if cuda else 2048)
    args.tile = args.tile or (512 if cuda else 256)
    if args.worker == "latency":
        print(json.dumps(_latency_worker(args)))
        return
    if args.worker:
        print(json.dumps(_worker(args)))
        return

    import numpy as np
    import torch

    methods = args.methods.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    labels = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):  # interleaved, order rotated: load drifts hit every method
            for method in methods[r % len(methods) :] + methods[: r % len(methods)]:
                path = str(Path(tmp) / f"{method}.npy")
                runs[method].append(_spawn(args, method, path))
                labels[method] = np.load(path)
                print(method, json.dumps(runs[method][-1]), flush=True)
    results = {}
    for method, rs in runs.items():
        best = min(rs, key=lambda x: x["seconds"])
        results[method] = {
            "seconds_best": best["seconds"],
            "seconds_all": [x["seconds"] for x in rs],
            "megapixels_per_s": best["megapixels_per_s"],
            "peak_extra_mib": max(x["peak_extra_mib"] for x in rs),
            "peak_extra_mib_all": [x["peak_extra_mib"] for x in rs],
        }
    ref = labels.get("monai")
    if ref is not None:
        for method, lab in labels.items():
            results[method]["label_agreement_with_monai"] = float((lab == ref).mean())
            results[method]["speedup_vs_monai"] = (
                results[method]["megapixels_per_s"] / results["monai"]["megapixels_per_s"]
            )
            results[method]["peak_memory_ratio_vs_monai"] = (
                results[method]["peak_extra_mib"] / results["monai"]["peak_extra_mib"]
            )
    latency = _spawn(args, "latency", "") if not cuda else None
    report = {
        "benchmark": "sliding-window inference",
        "command": "python " + " ".join(sys.argv),
        "settings": {
            "device": args.device,
            "image": [1, 3, args.size, args.size],
            "tile": args.tile,
            "overlap": args.overlap,
            "tile_batch_size": args.tile_batch_size,
            "blend": "gaussian, sigma_scale=0.125",
            "classes": args.classes,
            "model": (
                "create_model('unet', encoder='resnet34')"
                if cuda
                else "create_model('unet_textbook', base_width=8, depth=3)"
            ),
            "precision": "bf16 autocast" if cuda else "float32",
            "threads": args.threads or torch.get_num_threads(),
            "runs_per_method": args.rounds,
            "statistic": "throughput from the fastest run (least disturbed by other load); "
            "peak memory: the largest of the runs",
        },
        "memory_method": MEMORY_METHODS[args.device],
        "methods": results,
        "onnxruntime_vs_eager": latency,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "load_average_1_5_15": list(os.getloadavg()),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
