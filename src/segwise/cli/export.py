"""``segwise export``: a checkpoint as ONNX, TorchScript or a torch.export program."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "export"
HELP = "export a checkpoint to ONNX / TorchScript / torch.export, verified against PyTorch"
DESCRIPTION = """\
Export RUN/best.pt for deployment. By default the input normalisation and the softmax (sigmoid
for binary) are baked into the graph, so a deployment feeds raw pixels scaled to [0, 1] and
needs only the runtime. The ONNX file also carries the classes, colours and normalisation in
its metadata (`segwise predict --onnx` uses them).

The export is verified: the artefact runs on a test image and is compared with PyTorch; the
max abs difference is printed and the command fails above --atol.

examples:
  segwise export --checkpoint runs/exp1/best.pt --out model.onnx
  segwise export --checkpoint runs/exp1/best.pt --format torchscript --out model.ts
  segwise export --checkpoint runs/exp1/best.pt --format exported-program --out model.pt2
"""

FORMATS = ("onnx", "torchscript", "exported-program")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="RUN/best.pt")
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--format", default="onnx", choices=FORMATS, help="default onnx")
    parser.add_argument(
        "--head",
        default="probabilities",
        choices=("logits", "probabilities", "labels"),
        help="what the graph outputs (default probabilities)",
    )
    parser.add_argument(
        "--no-normalization",
        action="store_true",
        help="leave normalisation out of the graph (feed normalised images)",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--atol", type=float, default=1e-3, help="verification tolerance")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")


def run(args: argparse.Namespace) -> int:
    import torch

    from segwise.cli._common import check_new_path
    from segwise.engine.checkpoint import load_run
    from segwise.inference.export import export_onnx, export_program, export_torchscript

    out = Path(args.out)
    check_new_path(out, overwrite=args.overwrite, what="output file")
    loaded = load_run(args.checkpoint, device="cpu")
    info = loaded.info
    mean = None if args.no_normalization else list(info.mean)
    std = None if args.no_normalization else list(info.std)
    common = {
        "in_channels": info.in_channels,
        "mean": mean,
        "std": std,
        "head": args.head,
        "task": info.task,
    }
    sample_size = (64, 64)
    if args.format == "onnx":
        path = export_onnx(loaded.model, out, opset=args.opset, **common)
        _add_onnx_metadata(path, {"segwise.data_info": json.dumps(info.to_dict())})
        sample = torch.rand(1, info.in_channels, 96, 80, generator=torch.Generator().manual_seed(0))
        from segwise.inference.export import verify_onnx

        diff = verify_onnx(path, loaded.model, sample, atol=args.atol)
    else:
        exporter = export_torchscript if args.format == "torchscript" else export_program
        path = exporter(loaded.model, out, sample_size=sample_size, **common)
        diff = _verify_torch(path, args.format, loaded.model, common, args.atol)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); verified: max abs diff {diff:.2e} "
          f"vs PyTorch (tolerance {args.atol:g})")
    return 0


def _add_onnx_metadata(path: Path, values: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _verify_torch(path: Path, fmt: str, model, common: dict, atol: float) -> float:
    import torch

    from segwise.inference.export import DeployModule

    reference = DeployModule(model, **common).eval()
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path))
    runner = loaded if fmt == "torchscript" else loaded.module()
    gen = torch.Generator().manual_seed(0)
    sample = torch.rand(2, common["in_channels"], 96, 96, generator=gen)
    with torch.no_grad():
        diff = float((runner(sample).float() - reference(sample).float()).abs().max())
    if diff > atol:
        raise ValueError(f"{path}: the exported model differs from PyTorch by {diff:.3g} > {atol}")
    return diff
