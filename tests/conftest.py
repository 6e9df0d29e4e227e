"""Shared fixtures and markers.

Markers: ``slow`` (seconds on a 2-core CPU), ``gpu`` (skipped without CUDA), ``shared_data``
(reads ``../shared/data``; skipped when that folder is absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_data = pytest.mark.skip(reason=f"shared data not found at {SHARED_DATA}")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip_data)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same RNG state, so failures reproduce."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch thread (restored after): 3D convolutions on the CPU run many
    times faster on one thread than on two on a loaded 2-core machine. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data`` (tests using it must carry the ``shared_data`` marker)."""
    return SHARED_DATA


# The smallest real training configuration: the textbook U-Net at width 8 and depth 3
# (0.12 M parameters) on 48x48 crops. The architecture sweep lives in tests/models.
_FAST_MODEL = {"name": "unet_textbook", "options": {"base_width": 8, "depth": 3}}


@pytest.fixture(scope="session")
def fast_flags() -> list[str]:
    """CLI flags selecting the fast model (for ``segwise train``)."""
    return ["--model", "unet_textbook", "--model-option", "base_width=8",
            "--model-option", "depth=3"]


@pytest.fixture(scope="session")
def fast_config():
    """``fast_config(root, **train_overrides) -> RunConfig`` for the fast model on CPU."""
    from segwise.engine.config import config_from_dict

    def build(root: Path, **train):
        return config_from_dict(
            {
                "model": {"name": _FAST_MODEL["name"], "options": dict(_FAST_MODEL["options"])},
                "data": {"root": str(root), "crop_size": 48, "batch_size": 4, "workers": 0},
                "optim": {"lr": 1e-3, "warmup_epochs": 0.5},
                "train": {"epochs": 2, "device": "cpu", "overlays": 2, **train},
            }
        )

    return build


@pytest.fixture(scope="session")
def tiny_multiclass(tmp_path_factory) -> Path:
    """12 synthetic 48x48 images, 4 classes, with a split file."""
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_multiclass")
    return write_synthetic_dataset(
        root / "data", flavour="multiclass", num_images=12, size=(48, 48), seed=0
    )


@pytest.fixture(scope="session")
def tiny_binary(tmp_path_factory) -> Path:
    """10 synthetic 48x48 binary images with a split file."""
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny_binary")
    return write_synthetic_dataset(
        root / "data", flavour="binary", num_images=10, size=(48, 48), seed=1
    )
