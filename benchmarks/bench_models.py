"""Benchmark: training-step throughput and peak memory of segwise models next to their peers.

Each model runs in its own child process (so one model's memory cannot inflate another's
peak) with the same input, the same loss (cross-entropy) and the same optimizer (AdamW,
lr 1e-4). Pairs compared in the same run:

- segwise ``unet`` / resnet34            vs smp ``Unet("resnet34")``
- segwise ``deeplabv3plus`` / resnet50   vs smp ``DeepLabV3Plus("resnet50")`` (both OS 16,
  separable ASPP and decoder convs, as smp's defaults)
- segwise ``fcn`` / resnet50             vs torchvision ``fcn_resnet50`` (OS 8)
- segwise ``deeplabv3`` / resnet50       vs torchvision ``deeplabv3_resnet50`` (OS 8)
- segwise ``unet_textbook``              (no installed peer)

Memory: CPU = peak resident set size of the child (VmHWM) minus its size after imports and
before building the model; CUDA = ``torch.cuda.max_memory_allocated()``.

Usage:
    .venv/bin/python benchmarks/bench_models.py                    # CPU, 2x3x256x256, 3 steps
    .venv/bin/python benchmarks/bench_models.py --device cuda      # 16x3x512x512, bf16, NHWC
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

NUM_CLASSES = 21

# name -> (family, how to build it); built in the child process only
MODELS = {
    "segwise.unet-resnet34": "unet",
    "smp.Unet-resnet34": "unet",
    "segwise.deeplabv3plus-resnet50": "deeplabv3plus",
    "smp.DeepLabV3Plus-resnet50": "deeplabv3plus",
    "segwise.fcn-resnet50": "fcn",
    "torchvision.fcn_resnet50": "fcn",
    "segwise.deeplabv3-resnet50": "deeplabv3",
    "torchvision.deeplabv3_resnet50": "deeplabv3",
    "segwise.unet_textbook": "unet_textbook",
}


def build(name: str):
    """Build model ``name`` with random weights; returns ``(module, output -> logits)``."""
    if name.startswith("segwise."):
        from segwise.models import create_model

        arch, _, encoder = name.removeprefix("segwise.").partition("-")
        options = {"separable": True} if arch == "deeplabv3plus" else {}
        model = create_model(arch, encoder=encoder or None, num_classes=NUM_CLASSES, **options)
        return model, lambda out: out
    if name.startswith("smp."):
        import segmentation_models_pytorch as smp

        arch, _, encoder = name.removeprefix("smp.").partition("-")
        model = getattr(smp, arch)(encoder, encoder_weights=None, classes=NUM_CLASSES)
        return model, lambda out: out
    from torchvision.models import segmentation

    builder = getattr(segmentation, name.removeprefix("torchvision."))
    model = builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
    return model, lambda out: out["out"]


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(args: argparse.Namespace) -> dict:
    """Run ``args.child`` for warm-up + timed steps and return its measurements."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    device = torch.device(args.device)
    n, c, h, w = args.shape
    base_rss = _rss_kib("VmRSS")
    model, logits_of = build(args.child)
    model = model.to(device).train()
    x = torch.randn(n, c, h, w, device=device)
    y = torch.randint(0, NUM_CLASSES, (n, h, w), device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = torch.bfloat16 if args.bf16 else torch.float32

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=args.bf16):
            loss = F.cross_entropy(logits_of(model(x)).float(), y)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (_rss_kib("VmHWM") - base_rss) / 1024
    best = min(times)
    return {
        "model": args.child,
        "family": MODELS[args.child],
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "step_s_median": round(sorted(times)[len(times) // 2], 4),
        "step_s_min": round(best, 4),
        "images_per_s": round(n / sorted(times)[len(times) // 2], 3),
        "peak_memory_mib": round(peak_mib, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--shape", default=None, help="N,C,H,W (cpu 2,3,256,256; cuda 16,3,512,512)"
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps (cpu 3, cuda 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (cpu 1, cuda 5)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/models.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    args.shape = tuple(
        int(v) for v in (args.shape or ("16,3,512,512" if cuda else "2,3,256,256")).split(",")
    )
    args.steps = args.steps or (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; expected some of {list(MODELS)}")
    results = []
    for name in names:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--device",
            args.device,
            "--shape",
            ",".join(map(str, args.shape)),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
        ]
        if cuda:
            cmd += ["--bf16", "--channels-last"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{name:<34} {result['params_m']:>8.2f} M  {result['images_per_s']:>8.2f} img/s  "
            f"peak {result['peak_memory_mib']:>8.1f} MiB",
            flush=True,
        )
    import torch

    report = {
        "benchmark": "models: one training step (forward, cross-entropy, backward, AdamW)",
        "device": args.device,
        "shape": args.shape,
        "bf16_autocast": cuda,
        "channels_last": cuda,
        "steps": args.steps,
        "warmup": args.warmup,
        "memory": "cuda: max_memory_allocated; cpu: VmHWM - VmRSS after imports (child process)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
