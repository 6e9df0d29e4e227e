"""``segwise export``: a checkpoint as ONNX, TorchScript or a torch.export program."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "export"
HELP = "export a checkpoint to ONNX / TorchScript / torch.export, verified against PyTorch"
DESCRIPTION = """\
Export RUN/best.pt for deployment. By default the input normalisation and the class
probabilities are baked into the graph (softmax; binary: two channels, background 1 - p and
foreground p = sigmoid(logit), as `segwise predict` gives them), so a deployment feeds raw
pixels scaled to [0, 1] and needs only the runtime. The ONNX file also carries in its metadata
the label space (`segwise.labels`: task, classes, colours, ignore and pad labels, output
channels) and the training data's normalisation (`segwise.data_info`); `segwise predict --onnx`
uses them.

The export is verified: the artefact runs at two sizes, the trace size (--size, default 64x64)
and one not divisible by 32 near it (97x131), and is compared with PyTorch; the max abs
difference is printed and the command fails above --atol. One artefact serves any image size:
the model pads inside the graph and crops back. The file is written under a temporary name and
moved into place only once verified, so a failed export leaves nothing behind (and an existing
file is kept).

Instance checkpoints (--task instance): single-stage methods (yolact, solov2) export with their
decoding in the graph and fixed-size outputs: `scores (N, K)` descending, `labels (N, K)` int64
(0 in empty slots), `masks (N, K, H, W)` mask probabilities, K = --max-instances (default the
method's own detections cap, max_detections / max_instances: 400 for both; else 100). All three
formats; an exported-program takes any image size where torch.export keeps the sizes symbolic,
else it is fixed to --size (the message and the file's metadata say which model line forced
it; segwise.inference.load_instance_program refuses other sizes with that reason). maskrcnn (two
stages, a data-dependent number of RoIs) and unet_watershed (the watershed runs in scikit-image,
outside any graph) are refused with the reason, before anything is written. `segwise predict
--onnx MODEL.onnx` runs an instance ONNX export and writes the instance outputs of `segwise
predict`; run a .pt2 with segwise.inference.load_instance_program(path)(images).

Runs trained on volumes (3D models) export with free batch, depth, height and width: the
input is (N, C, D, H, W). The trace size is the training patch (or --size DxHxW) and the check
adds an odd size about 1.5 times it (a 32x32x32 patch: 49x49x49). The graph takes volumes
already normalised by the run's rule (z-score per volume, or the CT window); in an ONNX file
the rule travels in `segwise.data_info` with the voxel spacing and the patch in
`segwise.patch_size`, and `segwise predict --onnx` reads both.

examples:
  segwise export --checkpoint runs/exp1/best.pt --out model.onnx
  segwise export --checkpoint runs/hippocampus --out hippocampus.onnx   # a 3D run
  segwise export --checkpoint runs/exp1/best.pt --format torchscript --out model.ts
  segwise export --checkpoint runs/exp1/best.pt --format exported-program --out model.pt2
  segwise export --checkpoint runs/dsb/best.pt --format exported-program --size 256x256 --out n.pt2
"""

FORMATS = ("onnx", "torchscript", "exported-program")
SAMPLE_SIZE = (64, 64)  # trace size; verification adds 97x131 (not a multiple of 32)
# volumes: the trace size is the run's training patch (data.patch_size)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="a run folder (its best.pt) or a checkpoint file")
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--format", default="onnx", choices=FORMATS, help="default onnx")
    parser.add_argument(
        "--head",
        default=None,
        choices=("logits", "probabilities", "labels"),
        help="what the graph outputs (default probabilities; semantic checkpoints only)",
    )
    parser.add_argument(
        "--max-instances",
        type=int,
        default=None,
        metavar="K",
        help="instance checkpoints: output slots per image (default the method's own "
        "detections cap, else 100)",
    )
    parser.add_argument(
        "--no-normalization",
        action="store_true",
        help="leave normalisation out of the graph (feed normalised images)",
    )
    parser.add_argument(
        "--size",
        type=_sample_size,
        default=None,
        metavar="HxW",
        help="trace size (default 64x64; a 3D run: DxHxW, default its training patch; "
        "verification adds an odd size near it); an instance exported-program that cannot "
        "take every size is fixed to it",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--atol", type=float, default=1e-3, help="verification tolerance")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")


def run(args: argparse.Namespace) -> int:
    import os

    from segwise.cli._common import check_new_path, resolve_checkpoint
    from segwise.inference.export import (
        export_onnx,
        export_program,
        export_torchscript,
        verification_sizes,
    )
    from segwise.inference.metadata import DATA_INFO_KEY, PATCH_SIZE_KEY, data_info_metadata
    from segwise.inference.verify import verify_export
    from segwise.runs.checkpoint import load_run

    out = Path(args.out)
    check_new_path(out, overwrite=args.overwrite, what="output file")
    args.checkpoint = resolve_checkpoint(args.checkpoint)  # a run folder: its best.pt
    loaded = load_run(args.checkpoint, device="cpu")
    info = loaded.info
    args.size = _trace_size(args.size, loaded)
    # a volume's rule (z-score per volume, CT window) is not (x - mean) / std: never baked in
    volumes = info.spatial_dims == 3
    mean = None if args.no_normalization or volumes else list(info.mean)
    std = None if args.no_normalization or volumes else list(info.std)
    if loaded.model_args.get("kind") == "instance":
        return _run_instance(args, loaded, out, mean=mean, std=std)
    if args.max_instances is not None:
        raise ValueError("--max-instances applies to instance checkpoints only; "
                         f"{args.checkpoint} holds a semantic model: drop it")
    common = {
        "in_channels": info.in_channels,
        "mean": mean,
        "std": std,
        "head": args.head or "probabilities",
        "labels": info.labels,  # the probabilities/labels heads follow its rules
        "sample_size": args.size,
        "verify": False,  # verified below, at --atol
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".partial-{out.name}")  # same suffix: the format is read from it
    try:
        if args.format == "onnx":
            export_onnx(loaded.model, partial, opset=args.opset, **common)
            # segwise.labels is the exporter's; the data description goes without it
            extra = {DATA_INFO_KEY: data_info_metadata(info.to_dict())}
            if volumes:  # the sliding window of `segwise predict --onnx`
                extra[PATCH_SIZE_KEY] = json.dumps(list(_run_patch(loaded) or args.size))
            _add_onnx_metadata(partial, extra)
        elif args.format == "torchscript":
            export_torchscript(loaded.model, partial, **common)
        else:
            export_program(loaded.model, partial, **common)
        sizes = verification_sizes(args.size)
        diff = verify_export(partial, loaded.model, sizes=sizes, atol=args.atol,
                             batch=1 if volumes else 2)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    checked = " and ".join(_size_text(size) for size in sizes)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); verified: max abs diff {diff:.2e} "
          f"vs PyTorch at {checked} (tolerance {args.atol:g})")
    if volumes:
        where = ("recorded in segwise.data_info; `segwise predict --onnx` applies it"
                 if args.format == "onnx" else "segwise.data.volume_norm.normalize_volume")
        print(f"note: the graph takes (N, {info.in_channels}, D, H, W) volumes normalised by "
              f"the run's rule ({info.normalization.value}: {where}), not raw intensities")
    return 0


def _run_instance(args: argparse.Namespace, loaded, out: Path, *, mean, std) -> int:
    """Export an instance checkpoint with its decoding (`segwise.inference.instance_export`)."""
    import os

    from segwise.inference.instance_export import export_instance
    from segwise.inference.metadata import (
        DATA_INFO_KEY,
        LABELS_KEY,
        OPTIONS_KEY,
        data_info_metadata,
    )

    if args.head is not None:
        raise ValueError("--head does not apply to instance checkpoints: the graph outputs "
                         "scores, labels and masks (see --help); drop --head")
    info, model_args = loaded.info, loaded.model_args
    method = model_args["method"]
    partial = out.with_name(f".partial-{out.name}")
    metadata = {LABELS_KEY: json.dumps(info.labels.to_dict()),
                DATA_INFO_KEY: data_info_metadata(info.to_dict()),
                OPTIONS_KEY: json.dumps(model_args.get("options") or {})}
    try:
        done = export_instance(
            loaded.model, partial, method=method, in_channels=info.in_channels,
            options=model_args.get("options"), max_instances=args.max_instances, mean=mean,
            std=std, format=args.format, opset=args.opset, sample_size=args.size,
            metadata=metadata, atol=args.atol,
        )
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    checked = " and ".join(_size_text(size) for size in done.sizes)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; {method}, decoding included, "
          f"{done.max_instances} instance slots); verified: max abs diff "
          f"{done.max_abs_diff:.2e} over scores, labels and masks vs PyTorch at {checked}, "
          f"{done.detections_compared} detections compared (tolerance {args.atol:g})")
    if done.fixed_size is not None:
        h, w = done.fixed_size
        print(f"note: the program takes {h}x{w} images only ({done.fixed_size_reason}); "
              f"load_instance_program refuses other sizes with this reason. Export at your "
              f"image size with --size HxW, or use --format onnx (any size)")
    if not done.detections_compared:
        print("note: the model detects nothing in the random verification images, so only "
              "empty output slots were compared; check the file on real images (docs/inference.md)")
    return 0


def _size(text: str) -> tuple[int, int]:
    """``--size`` ``HxW`` (or one number for a square) -> ``(H, W)``."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write HxW, e.g. 256x256")
    h, w = int(parts[0]), int(parts[-1])
    return h, w


def _sample_size(text: str) -> tuple[int, ...]:
    """``--size``: ``HxW``, ``DxHxW`` (a 3D run) or one number (a square or a cube, by the
    run); :func:`_trace_size` completes it once the run is known."""
    parts = text.lower().split("x")
    if len(parts) == 1 and parts[0].strip().isdigit() and int(parts[0]) >= 1:
        return (int(parts[0]),)
    if len(parts) == 3:
        if not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not a size; write HxW, or DxHxW for "
                                             "a 3D run, e.g. 64x128x128")
        return tuple(int(p) for p in parts)
    return _size(text)


def _run_patch(loaded) -> tuple[int, ...] | None:
    patch = (loaded.config.get("data") or {}).get("patch_size")
    return tuple(int(v) for v in patch) if patch else None


def _trace_size(size: tuple[int, ...] | None, loaded) -> tuple[int, ...]:
    """The trace size for this run: ``--size`` as given (one number: a square, or a cube for a
    3D run), else 64x64, or a 3D run's training patch."""
    dims = loaded.info.spatial_dims
    if size is None:
        if dims == 2:
            return SAMPLE_SIZE
        patch = _run_patch(loaded)
        if patch is None:
            raise ValueError(f"{loaded.checkpoint} records no training patch "
                             "(data.patch_size); pass --size DxHxW")
        return patch
    if len(size) == 1:
        return size * dims
    if len(size) != dims:
        what = "HxW (a 2D run)" if dims == 2 else "DxHxW (a run trained on volumes)"
        raise ValueError(f"--size {_size_text(size)} does not fit {loaded.checkpoint}: write "
                         f"{what}")
    return size


def _size_text(size) -> str:
    return "x".join(str(v) for v in size)


def _add_onnx_metadata(path: Path, values: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
