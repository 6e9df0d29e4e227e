"""``segwise predict`` with a run trained on volumes (and the refusals of volumes given to a 2D
run): every check first, then ``ID.nii.gz`` (and ``ID_prob.npy``) per volume, on the input's
grid with its affine (docs/volumes.md, "Inference")."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["refuse_volume_files", "refuse_volume_folders", "run_volumes"]


def run_name(args: argparse.Namespace) -> str:
    """The run a predict command names (its checkpoint or ONNX file), for messages."""
    return str(args.checkpoint or args.onnx)


def _is_volume_file(path: Path) -> bool:
    from segwise.data.volumes import VOLUME_SUFFIXES

    return path.name.lower().endswith(VOLUME_SUFFIXES)


def refuse_volume_folders(args: argparse.Namespace) -> None:
    """A run trained on 2D images given a folder of volumes (and no images): refused."""
    from segwise.data.formats import IMAGE_SUFFIXES
    from segwise.data.volumes import is_volume_path

    for item in args.inputs:
        path = Path(item)
        if not path.is_dir():
            continue
        files = [p for p in path.iterdir() if p.is_file()]
        volumes = [path] if is_volume_path(path) else [p for p in files if _is_volume_file(p)]
        if volumes and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
            what = "is a DICOM series" if volumes == [path] else (
                f"holds volumes ({volumes[0].name}, ...) but no images")
            raise ValueError(
                f"{path} {what}; the run {run_name(args)} was trained on 2D images and "
                "predicts image files: predict volumes with a run trained on volumes"
            )


def refuse_volume_files(images: list[Path], args: argparse.Namespace) -> None:
    """A run trained on 2D images given volume files: refused before anything is written."""
    volumes = [p for p in images if _is_volume_file(p)]
    if volumes:
        more = f" (and {len(volumes) - 1} more)" if len(volumes) > 1 else ""
        raise ValueError(
            f"{volumes[0]} is a volume{more}; the run {run_name(args)} was trained on 2D "
            "images and predicts image files (.png, .jpg, .tif, ...): predict volumes with a "
            "run trained on volumes"
        )


def _expand_volumes(args: argparse.Namespace) -> list[Path]:
    """Volume files, DICOM series folders, folders of those and globs -> ordered, no repeats.

    Raises:
        FileNotFoundError: a folder without volumes, or an input that does not exist.
        ValueError: a file that is not a volume, or two inputs with one ID (naming both).
    """
    from segwise.cli._batch import expand_inputs
    from segwise.data.volumes import VOLUME_SUFFIXES, is_volume_path, volume_id

    found: list[Path] = []
    for item in args.inputs:
        path = Path(item)
        if path.is_dir() and is_volume_path(path):  # one DICOM series
            found.append(path)
        elif path.is_dir():
            listed = sorted(p for p in path.iterdir()
                            if not p.name.startswith(".") and is_volume_path(p))
            if not listed:
                raise FileNotFoundError(
                    f"{path} holds no volumes ({', '.join(VOLUME_SUFFIXES)} files or DICOM "
                    f"series folders); the run {run_name(args)} was trained on volumes"
                )
            found.extend(listed)
        else:
            found.extend(expand_inputs([item]))  # a file, or a glob's files
    others = [p for p in found if not p.is_dir() and not _is_volume_file(p)]
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise ValueError(
            f"{others[0]} is not a volume{more}; the run {run_name(args)} was trained on "
            f"volumes (3D) and predicts {', '.join(VOLUME_SUFFIXES)} files or DICOM series "
            "folders: predict images with a run trained on 2D images"
        )
    unique = list(dict.fromkeys(p.resolve() for p in found))
    ids: dict[str, Path] = {}
    for p in unique:
        if volume_id(p) in ids:
            raise ValueError(
                f"two inputs share the ID {volume_id(p)!r} ({ids[volume_id(p)]} and {p}); their "
                "outputs would collide: predict them into different --out folders"
            )
        ids[volume_id(p)] = p
    return unique


def _volume_options(args: argparse.Namespace) -> Any:
    """``VolumeOptions`` from the flags (``--amp`` resolved for ``--device``)."""
    from segwise.inferers.options import VOLUME_TTA_FLIPS, VolumeOptions

    patch = args.tile_size
    if isinstance(patch, int):
        patch = (patch,) * 3
    return VolumeOptions(
        patch_size=patch,
        overlap=0.5 if args.overlap is None else args.overlap,
        flips=VOLUME_TTA_FLIPS if args.tta else (),
        amp_dtype=_amp_dtype(args),
    )


def _amp_dtype(args: argparse.Namespace) -> Any:
    """``--amp`` as an autocast dtype on ``--device`` (``segwise train --amp``'s rule)."""
    from segwise.engine.config import AmpMode
    from segwise.engine.setup import resolve_amp
    from segwise.runs.device import resolve_device

    mode = AmpMode(args.amp)
    if mode is AmpMode.OFF:
        return None
    if args.onnx:
        raise ValueError(f"--amp {args.amp}: ONNX files run in float32 with onnxruntime; drop "
                         "--amp, or predict with --checkpoint")
    device = resolve_device(args.device)
    if mode is AmpMode.FP16 and device.type != "cuda":
        raise ValueError(f"--amp fp16 needs a CUDA device (--device {args.device} is "
                         f"{device.type}); use --amp bf16 or off")
    return resolve_amp(mode, device)[0]


def run_volumes(args: argparse.Namespace) -> int:
    """``segwise predict`` with a run trained on volumes: every check, then one file per
    volume."""
    from segwise.cli._batch import predict_all, refuse_clashes
    from segwise.inference.predictor import load_onnx_predictor, load_predictor

    writer = _VolumeOutputs(args)  # refuses flags that do not apply to volumes
    volumes = _expand_volumes(args)
    options = _volume_options(args)
    out = Path(args.out)
    if not args.overwrite:
        refuse_clashes([p for v in volumes for p in writer.outputs(v, out)])
    predictor = (load_onnx_predictor(args.onnx, options=options) if args.onnx
                 else load_predictor(args.checkpoint, device=args.device, options=options))
    return predict_all(volumes, out, lambda path: writer.write(path, out, predictor),
                       noun="volumes")


# image-only predict flags: (attribute, flag, what to do instead)
_IMAGE_ONLY = (
    ("overlay", "--overlay", "open ID.nii.gz over the scan in ITK-SNAP or 3D Slicer"),
    ("outline", "--outline", "open ID.nii.gz over the scan in ITK-SNAP or 3D Slicer"),
    ("coco", "--coco", "COCO results are for instance checkpoints"),
)


class _VolumeOutputs:
    """ID.nii.gz (and ID_prob.npy) per volume, with the input's affine and header."""

    def __init__(self, args: argparse.Namespace) -> None:
        for attr, flag, why in _IMAGE_ONLY:
            if getattr(args, attr, None):
                raise ValueError(f"{flag} does not apply to runs trained on volumes: {why}")
        self.args = args

    def outputs(self, path: Path, out: Path) -> list[Path]:
        from segwise.data.volumes import volume_id

        vid = volume_id(path)
        return [out / f"{vid}.nii.gz",
                *([out / f"{vid}_prob.npy"] if self.args.probabilities else [])]

    def write(self, path: Path, out: Path, predictor: Any) -> dict:
        import time

        import numpy as np

        from segwise.cli._batch import postprocess_labels, semantic_record
        from segwise.data.volumes import read_volume, write_labels

        args, start = self.args, time.perf_counter()
        volume = read_volume(path)
        pred = predictor.predict_volume(volume, probabilities=args.probabilities)
        labels = postprocess_labels(pred.labels, args, spatial_dims=3)
        target, *prob = self.outputs(path, out)
        written = [write_labels(target, labels, like=volume)]
        if prob:
            np.save(prob[0], pred.probabilities.astype(np.float16))
            written.append(prob[0])
        seconds = time.perf_counter() - start
        shape = "x".join(str(v) for v in labels.shape)
        if not args.quiet:
            print(f"{pred.name}: {shape} voxels in {seconds:.1f} s -> {target}", flush=True)
        return semantic_record(path, written, labels, predictor.label_space.names,
                               spacing=list(volume.spacing), seconds=round(seconds, 3))
