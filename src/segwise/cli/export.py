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
its metadata, and the label space (`segwise.label_space`: classes, colours, ignore and pad
labels, output channels); `segwise predict --onnx` uses them.

The export is verified: the artefact runs at two sizes, the trace size (64x64) and one not
divisible by 32 (97x131), and is compared with PyTorch; the max abs difference is printed and
the command fails above --atol. One artefact serves any image size: the model pads inside the
graph and crops back. The file is written under a temporary name and moved into place only
once verified, so a failed export leaves nothing behind (and an existing file is kept).

examples:
  segwise export --checkpoint runs/exp1/best.pt --out model.onnx
  segwise export --checkpoint runs/exp1/best.pt --format torchscript --out model.ts
  segwise export --checkpoint runs/exp1/best.pt --format exported-program --out model.pt2
"""

FORMATS = ("onnx", "torchscript", "exported-program")
SAMPLE_SIZE = (64, 64)  # trace size; verification adds 97x131 (not a multiple of 32)


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
    import os

    from segwise.cli._common import check_new_path
    from segwise.engine.checkpoint import load_run
    from segwise.inference.export import (
        export_onnx,
        export_program,
        export_torchscript,
        verification_sizes,
    )
    from segwise.inference.verify import verify_export

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
        "sample_size": SAMPLE_SIZE,
        "verify": False,  # verified below, at --atol
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".partial-{out.name}")  # same suffix: the format is read from it
    try:
        if args.format == "onnx":
            export_onnx(loaded.model, partial, opset=args.opset, **common)
            _add_onnx_metadata(partial, {"segwise.data_info": json.dumps(info.to_dict()),
                                         "segwise.label_space": json.dumps(info.labels.to_dict())})
        elif args.format == "torchscript":
            export_torchscript(loaded.model, partial, **common)
        else:
            export_program(loaded.model, partial, **common)
        sizes = verification_sizes(SAMPLE_SIZE)
        diff = verify_export(partial, loaded.model, sizes=sizes, atol=args.atol)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    checked = " and ".join(f"{h}x{w}" for h, w in sizes)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); verified: max abs diff {diff:.2e} "
          f"vs PyTorch at {checked} (tolerance {args.atol:g})")
    return 0


def _add_onnx_metadata(path: Path, values: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
