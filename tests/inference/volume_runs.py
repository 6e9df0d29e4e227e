"""Tiny 3D (and 2D) runs and NIfTI volumes for the volume inference tests.

A run is a checkpoint in the format ``segwise train`` writes (``runs.checkpoint``), with random
weights of a small ``unet3d`` (base width 4, two levels: divisor 4 on every axis).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from segwise.data import DataInfo
from segwise.enums import Normalization, Task
from segwise.labels import LabelSpace
from segwise.runs.builders import build_model_from_args
from segwise.runs.checkpoint import save_checkpoint
from segwise.runs.model_args import complete_model_args

#: an affine with anisotropic voxels, a flipped first axis and an offset (mm)
AFFINE = np.array([[-0.7, 0.0, 0.0, 91.25],
                   [0.0, 0.9, 0.0, -126.5],
                   [0.0, 0.0, 2.5, -72.125],
                   [0.0, 0.0, 0.0, 1.0]])


def volume_info(*, in_channels: int = 1, classes: tuple[str, ...] = ("bg", "liver", "tumour"),
                normalization: Normalization = Normalization.ZSCORE) -> DataInfo:
    task = Task.BINARY if len(classes) == 2 else Task.MULTICLASS
    return DataInfo(labels=LabelSpace(task=task, names=classes), in_channels=in_channels,
                    mask_kind="index", mean=(0.0,) * in_channels, std=(1.0,) * in_channels,
                    spatial_dims=3, spacing=(0.7, 0.9, 2.5), normalization=normalization)


def volume_run(root: Path, *, patch=(16, 16, 16), in_channels: int = 1,
               classes: tuple[str, ...] = ("bg", "liver", "tumour"), seed: int = 0) -> Path:
    """``root/best.pt`` of a tiny 3D run (unet3d, random weights); returns the folder."""
    out_channels = 1 if len(classes) == 2 else len(classes)
    args = complete_model_args({"kind": "semantic", "name": "unet3d", "encoder": "unet3d",
                                "in_channels": in_channels, "num_classes": out_channels,
                                "options": {"base_width": 4, "depth": 2}})
    torch.manual_seed(seed)
    model = build_model_from_args(args)
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    info = volume_info(in_channels=in_channels, classes=classes)
    save_checkpoint(root / "best.pt", {
        "config": {"data": {"patch_size": list(patch)}},
        "data_info": info.to_dict(),
        "model_args": args,
        "model": model.state_dict(),
    })
    return root


def image_run(root: Path) -> Path:
    """``root/best.pt`` of a small 2D run (U-Net on ResNet-18, random weights)."""
    args = complete_model_args({"kind": "semantic", "name": "unet", "encoder": "resnet18",
                                "in_channels": 3, "num_classes": 3, "options": {}})
    model = build_model_from_args(args)
    info = DataInfo(labels=LabelSpace(task=Task.MULTICLASS, names=("a", "b", "c")),
                    in_channels=3, mask_kind="index", mean=(0.5,) * 3, std=(0.25,) * 3)
    save_checkpoint(root / "best.pt", {
        "config": {"data": {"crop_size": 32}}, "data_info": info.to_dict(),
        "model_args": args, "model": model.state_dict(),
    })
    return root


def write_volume(path: Path, shape=(19, 23, 29), *, channels: int = 0, seed: int = 0) -> Path:
    """A NIfTI file of random CT-like intensities (float32) with :data:`AFFINE`; ``channels``
    > 0 adds a trailing channel axis."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    full = (*shape, channels) if channels else shape
    data = (rng.normal(40.0, 25.0, full)).astype(np.float32)
    image = nib.Nifti1Image(data, AFFINE)
    image.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path
