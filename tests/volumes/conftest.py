"""Tiny volume datasets written by the tests (NIfTI through nibabel)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")


def write_nifti(path: Path, array: np.ndarray, *, spacing=(1.0, 1.0, 1.0),
                affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if affine is None:
        affine = np.diag([*spacing, 1.0])
    image = nib.Nifti1Image(array, affine)
    image.header.set_zooms(tuple(spacing) + image.header.get_zooms()[3:])
    nib.save(image, path)
    return path


def blob_pair(rng: np.random.Generator, shape=(12, 14, 10)) -> tuple[np.ndarray, np.ndarray]:
    """An MRI-like image (float32) with two labelled boxes: class 1 bright, class 2 dark."""
    labels = np.zeros(shape, np.uint8)
    d, h, w = shape
    a = rng.integers(1, 3)
    labels[a:a + 4, 2:6, 2:5] = 1
    labels[d - 6:d - 2, h - 6:h - 2, w - 5:w - 2] = 2
    image = rng.normal(100.0, 10.0, shape).astype(np.float32)
    image[labels == 1] += 80.0
    image[labels == 2] -= 60.0
    return image, labels


def write_volume_dataset(root: Path, *, n: int = 6, shape=(12, 14, 10), spacing=(1.0, 1.0, 1.0),
                         layout: str = "msd", modality: str = "MRI", seed: int = 0,
                         dataset_json: bool = True) -> Path:
    """``n`` pairs in ``imagesTr``/``labelsTr`` (``layout="msd"``, nnU-Net's ``_0000`` image
    suffix) or ``images``/``labels``, a ``dataset.json`` naming 3 classes and the modality,
    and a ``splits.json`` holding out the last two."""
    rng = np.random.default_rng(seed)
    images, labels = ("imagesTr", "labelsTr") if layout == "msd" else ("images", "labels")
    ids = [f"case_{i:03d}" for i in range(n)]
    for case in ids:
        image, label = blob_pair(rng, shape)
        suffix = "_0000" if layout == "msd" else ""
        write_nifti(root / images / f"{case}{suffix}.nii.gz", image, spacing=spacing)
        write_nifti(root / labels / f"{case}.nii.gz", label, spacing=spacing)
    if dataset_json:
        (root / "dataset.json").write_text(json.dumps({
            "modality": {"0": modality},
            "labels": {"0": "background", "1": "bright", "2": "dark"}}))
    (root / "splits.json").write_text(json.dumps({"train": ids[:-2], "val": ids[-2:]}))
    return root


@pytest.fixture
def volume_data(tmp_path: Path) -> Path:
    return write_volume_dataset(tmp_path / "vols")
