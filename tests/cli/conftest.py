"""Tiny synthetic datasets and a fast model config for engine and CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# The smallest real configuration: U-Net decoder on ResNet-18, 48x48 crops.
FAST_MODEL = {"name": "unet", "encoder": "resnet18"}


@pytest.fixture(scope="session")
def tiny_multiclass(tmp_path_factory) -> Path:
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_multiclass")
    return write_synthetic_dataset(
        root / "data", flavour="multiclass", num_images=12, size=(48, 48), seed=0
    )


@pytest.fixture(scope="session")
def tiny_binary(tmp_path_factory) -> Path:
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_binary")
    return write_synthetic_dataset(
        root / "data", flavour="binary", num_images=10, size=(48, 48), seed=1
    )


def fast_config(root: Path, **train):
    from segwise.engine.config import config_from_dict

    return config_from_dict(
        {
            "model": dict(FAST_MODEL),
            "data": {"root": str(root), "crop_size": 48, "batch_size": 4, "workers": 0},
            "optim": {"lr": 1e-3, "warmup_epochs": 0.5},
            "train": {"epochs": 2, "device": "cpu", "overlays": 2, **train},
        }
    )
