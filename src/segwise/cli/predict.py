"""``segwise predict``: masks for new images from a checkpoint (or an exported ONNX model)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "predict"
HELP = "write masks (and overlays, probabilities) for images, folders or globs"
DESCRIPTION = """\
Predict class masks for images. INPUT may be files, folders (all images inside) or quoted
globs. For each image STEM writes into --out:
  STEM.png           the class-index mask as a palette PNG (the training class colours;
                     16-bit greyscale PNG above 256 classes)
  STEM_overlay.png   with --overlay: the mask blended over the image (--outline: region
                     outlines drawn at full strength, fill kept light)
  STEM_prob.npy      with --probabilities: float16 (K, H, W) class probabilities
and summary.json (every input with its outcome). Existing outputs are never overwritten
unless --overwrite. A failing image does not stop the batch: failures are listed at the end
and in summary.json, and the exit code is 1.

Large images run as Gaussian-blended sliding windows (--tile-size), memory bounded by the tiles.

Instance checkpoints (segwise train --task instance) write instead, for each image:
  STEM_instances.png   16-bit instance IDs (0 = background)
  STEM_instances.json  {"height", "width", "instances": [{"id", "label", "score", "box", "area"}]}
  STEM_overlay.png     with --overlay: each instance in its own colour, outlined
and, with --coco, coco_results.json (COCO "segm" results; image_id = input order, from 1).

examples:
  segwise predict --checkpoint runs/exp1/best.pt scans/ --out masks/ --overlay
  segwise predict --checkpoint runs/exp1 scans/ --out masks/ --overlay --outline
  segwise predict --checkpoint runs/exp1/best.pt "data/*.tif" --out masks --tta --min-size 30
  segwise predict --onnx model.onnx img.png --out masks     # needs only onnxruntime
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a run folder (its best.pt) or a .pt file")
    source.add_argument("--onnx", metavar="MODEL", help="an ONNX file from `segwise export`")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--overlay", action="store_true", help="also write STEM_overlay.png")
    parser.add_argument(
        "--outline", action="store_true", help="overlays: outline each region (light fill)"
    )
    parser.add_argument(
        "--probabilities", action="store_true", help="also write STEM_prob.npy (float16)"
    )
    parser.add_argument(
        "--tta", action="store_true", help="average over horizontal and vertical flips (4x slower)"
    )
    parser.add_argument("--tile-size", type=int, help="sliding-window tile (default 2x crop)")
    parser.add_argument("--overlap", type=float, default=0.25, help="tile overlap, default 0.25")
    parser.add_argument("--min-size", type=int, default=0, help="remove objects below N pixels")
    parser.add_argument("--fill-holes", action="store_true", help="fill holes inside objects")
    parser.add_argument(
        "--largest-component", action="store_true", help="keep one component per class"
    )
    parser.add_argument(
        "--coco", action="store_true", help="instance checkpoints: also write coco_results.json"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")


def _outputs(path: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    paths = [out / f"{path.stem}.png"]
    if args.overlay:
        paths.append(out / f"{path.stem}_overlay.png")
    if args.probabilities:
        paths.append(out / f"{path.stem}_prob.npy")
    return paths


def run(args: argparse.Namespace) -> int:
    from segwise.cli._common import check_new_folder, resolve_checkpoint
    from segwise.notices import Level, printed

    check_new_folder(Path(args.out))
    if args.checkpoint:
        args.checkpoint = str(resolve_checkpoint(args.checkpoint))
    with printed(min_level=Level.WARNING):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from segwise.cli import _instance
    from segwise.cli._batch import expand_inputs, predict_all, refuse_clashes
    from segwise.engine.predictor import build_predictor

    if args.checkpoint and _instance.is_instance_checkpoint(args.checkpoint):
        return _instance.predict(args)
    if getattr(args, "coco", False):
        raise ValueError("--coco needs an instance checkpoint (segwise train --task instance)")
    images = expand_inputs(args.inputs)
    out = Path(args.out)
    if not args.overwrite:
        refuse_clashes([p for img in images for p in _outputs(img, out, args)])
    predictor = build_predictor(
        checkpoint=args.checkpoint,
        onnx=args.onnx,
        device=args.device,
        tile_size=args.tile_size,
        overlap=args.overlap,
        tta=args.tta,
    )
    return predict_all(images, out, lambda path: _predict_one(path, out, predictor, args))


def _predict_one(path: Path, out: Path, predictor: Any, args: argparse.Namespace) -> dict:
    import numpy as np

    from segwise.engine.predictor import write_label_png
    from segwise.inference.postprocess import (
        fill_holes,
        keep_largest_component,
        remove_small_objects,
    )

    probs = predictor.probabilities(path)  # (K, H, W) float32 numpy
    labels = predictor.labels_from_probabilities(probs)
    if args.min_size > 0:
        labels = remove_small_objects(labels, min_size=args.min_size)
    if args.fill_holes:
        labels = fill_holes(labels)
    if args.largest_component:
        labels = keep_largest_component(labels)
    written = [write_label_png(out / f"{path.stem}.png", labels, predictor.palette)]
    if args.overlay:
        written.append(_write_overlay(out / f"{path.stem}_overlay.png", path, labels, predictor,
                                      outline=args.outline))
    if args.probabilities:
        target = out / f"{path.stem}_prob.npy"
        np.save(target, probs.astype(np.float16))
        written.append(target)
    present = sorted(int(c) for c in np.unique(labels))
    return {
        "input": str(path),
        "ok": True,
        "outputs": [str(p) for p in written],
        "size": list(labels.shape),
        "classes_present": [predictor.class_names[c] for c in present],
    }


def _write_overlay(target: Path, image: Path, labels: Any, predictor: Any, *, outline: bool):
    from PIL import Image

    from segwise.viz import denormalize, overlay

    channels = predictor.info.in_channels
    rgb = denormalize(predictor.load_raw(image), [0.0] * channels, [1.0] * channels)
    drawn = overlay(rgb, labels, predictor.palette, alpha=0.3 if outline else 0.5,
                    outline=outline)
    Image.fromarray(drawn).save(target)
    return target
