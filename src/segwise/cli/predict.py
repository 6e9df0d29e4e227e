"""``segwise predict``: masks for new images from a checkpoint (or an exported ONNX model)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segwise.cli._volumes import refuse_volume_files, refuse_volume_folders, run_volumes

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
The instance ONNX files of `segwise export` (yolact, solov2) run with --onnx and write the
same files: the graph decodes, and the slots with a score above 0 are kept, their masks cut at
the method's mask threshold (recorded in the file), overlaps given to the higher score.

Runs trained on volumes (3D models; NIfTI, NRRD or MetaImage files, DICOM series folders)
write instead, for each volume ID (the file name without its suffix; a DICOM folder's name):
  ID.nii.gz        the label volume on the input's grid (its affine; a NIfTI input's
                   header too), so it overlays the scan in ITK-SNAP or 3D Slicer
  ID_prob.npy      with --probabilities: float16 (K, X, Y, Z) class probabilities
The volume is normalised by the run's own rule and predicted in sliding windows of the
training patch (--tile-size DxHxW to change it; overlap 0.5), patches' class probabilities
blended with Gaussian weights; --tta averages all 8 flips of the three axes; --min-size,
--fill-holes and --largest-component work in 3D. One line per volume (ID, shape, seconds)
unless --quiet. A run trained on 2D images refuses volumes, and a 3D run refuses images.

--onnx runs whole images without --tile-size or --tta (pass --checkpoint for those); the
export of a 3D run runs in sliding windows of the patch it records, --tta allowed. A SOLOv2
checkpoint decodes images larger than its training crops in tiles and its export does not,
so the two agree on images of about the training crop size (docs/inference.md).
The same prediction in Python: segwise.inference.load_predictor (docs/contracts.md,
docs/volumes.md).

examples:
  segwise predict --checkpoint runs/exp1/best.pt scans/ --out masks/ --overlay
  segwise predict --checkpoint runs/exp1 scans/ --out masks/ --overlay --outline
  segwise predict --checkpoint runs/exp1/best.pt "data/*.tif" --out masks --tta --min-size 30
  segwise predict --onnx model.onnx img.png --out masks     # needs only onnxruntime
  segwise predict --onnx yolact.onnx cells/ --out nuclei --overlay   # an instance export
  segwise predict --checkpoint runs/hippocampus imagesTs/ --out pred/ --tta --largest-component
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders or globs (3D runs: volume files, DICOM "
                        "series folders, folders of them)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a run folder (its best.pt) or a .pt file")
    source.add_argument("--onnx", metavar="MODEL",
                        help="an ONNX file from `segwise export` (semantic, 3D or instance)")
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
        "--tta", action="store_true",
        help="average over horizontal and vertical flips (4x slower); volumes: the flips of "
        "all three axes (8x)",
    )
    parser.add_argument(
        "--tile-size", type=_tile_size, metavar="N",
        help="sliding-window tile (default 2x crop); volumes: DxHxW (default the training patch)",
    )
    parser.add_argument("--overlap", type=float, default=None,
                        help="tile overlap, default 0.25 (volumes 0.5)")
    parser.add_argument("--min-size", type=int, default=0,
                        help="remove objects below N pixels (volumes: voxels)")
    parser.add_argument("--fill-holes", action="store_true", help="fill holes inside objects")
    parser.add_argument(
        "--largest-component", action="store_true", help="keep one component per class"
    )
    parser.add_argument(
        "--coco", action="store_true", help="instance checkpoints: also write coco_results.json"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    parser.add_argument(
        "--amp", default="off", choices=("auto", "bf16", "fp16", "off"),
        help="volumes: autocast precision of the model (default off; auto: bf16, or fp16 on "
        "older GPUs, off on CPU)",
    )
    parser.add_argument("--quiet", action="store_true",
                        help="volumes: no line per volume (failures and the total still print)")


def run(args: argparse.Namespace) -> int:
    from segwise.cli._common import check_new_folder, resolve_checkpoint
    from segwise.notices import Level, printed

    check_new_folder(Path(args.out))
    if args.checkpoint:
        args.checkpoint = str(resolve_checkpoint(args.checkpoint))
    with printed(min_level=Level.WARNING):
        return _run(args)


def _tile_size(text: str) -> int | tuple[int, ...]:
    """``--tile-size``: one side (images; a cube for volumes) or ``DxHxW`` (volumes)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 3) or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a tile size; write N (pixels), or "
                                         "DxHxW for a run trained on volumes, e.g. 64x128x128")
    sides = tuple(int(p) for p in parts)
    return sides[0] if len(sides) == 1 else sides


def _options(args: argparse.Namespace) -> Any:
    from segwise.inferers.options import TTA_FLIPS, PredictOptions

    if isinstance(args.tile_size, tuple):
        raise ValueError(f"--tile-size {'x'.join(map(str, args.tile_size))}: this run predicts "
                         "2D images and takes one tile side (pixels), e.g. --tile-size 512")
    if args.amp != "off":
        raise ValueError(f"--amp {args.amp} applies to runs trained on volumes; 2D images are "
                         "predicted in full precision: drop --amp")
    overlap = 0.25 if args.overlap is None else args.overlap
    return PredictOptions(tile_size=args.tile_size, overlap=overlap,
                          flips=TTA_FLIPS if args.tta else ())


def _is_volume_run(args: argparse.Namespace) -> bool:
    """Whether the checkpoint (or ONNX export) comes from a run trained on volumes (cheap)."""
    from segwise.inference.predictor import checkpoint_spatial_dims, onnx_spatial_dims

    if args.checkpoint:
        return checkpoint_spatial_dims(args.checkpoint) == 3
    return Path(args.onnx).is_file() and onnx_spatial_dims(args.onnx) == 3


def _run(args: argparse.Namespace) -> int:
    """Check the flags against the model kind, load the predictor, refuse clashes, write."""
    from segwise.cli._batch import expand_inputs, predict_all, refuse_clashes
    from segwise.inference.predictor import (
        PredictionKind,
        is_instance_checkpoint,
        is_instance_onnx,
        load_onnx_predictor,
        load_predictor,
    )

    if _is_volume_run(args):
        return run_volumes(args)
    options = _options(args)
    instance = (is_instance_checkpoint(args.checkpoint) if args.checkpoint
                else is_instance_onnx(args.onnx))
    kind = PredictionKind.INSTANCE if instance else PredictionKind.SEMANTIC
    refuse_volume_folders(args)
    images = expand_inputs(args.inputs)
    refuse_volume_files(images, args)
    writer = _WRITERS[kind](args, images)  # refuses flags that do not apply to this kind
    out = Path(args.out)
    if not args.overwrite:
        refuse_clashes([p for img in images for p in writer.outputs(img, out)]
                       + writer.batch_outputs(out))
    predictor = (load_onnx_predictor(args.onnx, options=options) if args.onnx
                 else load_predictor(args.checkpoint, device=args.device, options=options))
    code = predict_all(images, out, lambda path: writer.write(path, out, predictor))
    writer.finish(out)
    return code


class _SemanticOutputs:
    """STEM.png, STEM_overlay.png, STEM_prob.npy per image (see the verb's help)."""

    def __init__(self, args: argparse.Namespace, images: list[Path]) -> None:
        if getattr(args, "coco", False):
            raise ValueError("--coco needs an instance checkpoint (segwise train --task instance)")
        self.args = args

    def outputs(self, path: Path, out: Path) -> list[Path]:
        paths = [out / f"{path.stem}.png"]
        if self.args.overlay:
            paths.append(out / f"{path.stem}_overlay.png")
        if self.args.probabilities:
            paths.append(out / f"{path.stem}_prob.npy")
        return paths

    def batch_outputs(self, out: Path) -> list[Path]:
        return []

    def write(self, path: Path, out: Path, predictor: Any) -> dict:
        import numpy as np

        from segwise.cli._batch import postprocess_labels, semantic_record
        from segwise.inference.inputs import prepare_images
        from segwise.inference.predictor import write_label_png
        from segwise.viz.overlays import background_label

        args = self.args
        [image] = prepare_images(path, predictor.info)
        [pred] = predictor.predict(image)
        labels = postprocess_labels(pred.labels, args)
        colors = list(predictor.label_space.colors)
        written = [write_label_png(out / f"{path.stem}.png", labels, colors)]
        if args.overlay:
            written.append(_write_overlay(out / f"{path.stem}_overlay.png", image.unit, labels,
                                          colors, outline=args.outline,
                                          background=background_label(predictor.label_space)))
        if args.probabilities:
            target = out / f"{path.stem}_prob.npy"
            np.save(target, pred.probabilities.astype(np.float16))
            written.append(target)
        return semantic_record(path, written, labels, predictor.label_space.names)

    def finish(self, out: Path) -> None:
        pass


# semantic-only predict flags: (attribute, flag, why)
_SEMANTIC_ONLY = (
    ("probabilities", "--probabilities", "instance outputs have no class probabilities"),
    ("tta", "--tta", "flip averaging is not defined for instances"),
    ("fill_holes", "--fill-holes", "not available for instances"),
    ("largest_component", "--largest-component", "not available for instances"),
)


class _InstanceOutputs:
    """STEM_instances.png/.json, STEM_overlay.png per image and coco_results.json."""

    def __init__(self, args: argparse.Namespace, images: list[Path]) -> None:
        for attr, flag, why in _SEMANTIC_ONLY:
            if getattr(args, attr, None):
                raise ValueError(f"{flag} does not apply to instance models: {why}")
        self.args = args
        self.coco = bool(getattr(args, "coco", False))
        self.predictions: dict[int, Any] = {}
        # COCO image_id: input order, from 1 (a failed image keeps its number)
        self.image_ids = {path: i + 1 for i, path in enumerate(images)}

    def outputs(self, path: Path, out: Path) -> list[Path]:
        names = ["_instances.png", "_instances.json",
                 *(["_overlay.png"] if self.args.overlay else [])]
        return [out / f"{path.stem}{suffix}" for suffix in names]

    def batch_outputs(self, out: Path) -> list[Path]:
        return [out / "coco_results.json"] if self.coco else []

    def write(self, path: Path, out: Path, predictor: Any) -> dict:
        import numpy as np

        from segwise.inference.inputs import prepare_images
        from segwise.instance import save_prediction

        [image] = prepare_images(path, predictor.info)
        [pred] = predictor.predict(image)
        if self.args.min_size > 0:
            pred = _remove_small(pred, self.args.min_size)
        raw = np.round(image.unit * 255).astype(np.uint8) if self.args.overlay else None
        written = save_prediction(out, path.stem, pred, image=raw)
        image_id = self.image_ids[path]
        self.predictions[image_id] = pred
        names = predictor.label_space.names
        return {
            "input": str(path),
            "ok": True,
            "outputs": [str(p) for p in written.values()],
            "size": list(pred.shape),
            "instances": len(pred),
            "classes_present": sorted({names[int(c)] for c in pred.labels}),
            **({"coco_image_id": image_id} if self.coco else {}),
        }

    def finish(self, out: Path) -> None:
        from segwise.instance import write_coco_results_json

        if self.coco:
            ids = sorted(self.predictions)
            target = write_coco_results_json(
                out / "coco_results.json", [self.predictions[i] for i in ids], image_ids=ids
            )
            print(f"COCO results for {len(ids)} image(s) in {target}")


def _remove_small(pred: Any, min_size: int) -> Any:
    import numpy as np

    from segwise.instance import InstancePrediction

    keep = pred.areas >= min_size
    if keep.all():
        return pred
    inst = np.where(np.isin(pred.instance_map, pred.ids[keep]), pred.instance_map, 0)
    return InstancePrediction.from_label_map(
        inst, labels=pred.labels[keep], scores=pred.scores[keep]
    ).relabel()


def _write_overlay(target: Path, unit: Any, labels: Any, colors: list, *, outline: bool,
                   background: int | None = 0) -> Path:
    from PIL import Image

    from segwise.viz import denormalize, overlay

    channels = unit.shape[0]
    rgb = denormalize(unit, [0.0] * channels, [1.0] * channels)
    drawn = overlay(rgb, labels, colors, alpha=0.3 if outline else 0.5, outline=outline,
                    background=background)
    Image.fromarray(drawn).save(target)
    return target


# one output writer per prediction kind (plug-ins, not branches); keys: PredictionKind values
_WRITERS = {"semantic": _SemanticOutputs, "instance": _InstanceOutputs}
