"""Mask R-CNN and U-Net + watershed learn the built-in synthetic instance data.

A fixed, small budget through the engine (`fit`, the code of ``segwise train --task
instance``); the validation AP50 and DSB score must exceed floors that untrained weights and a
deliberately broken loss or target did not reach (measured below).
"""

from __future__ import annotations

import pytest

from segwise.instance.methods import INSTANCE_METHODS

from .conftest import tiny_options

pytestmark = pytest.mark.slow

# Measured on the shared 2-core CPU (32 images of 64x64, 8 of them val), validation
# (AP50, DSB score): maskrcnn after 1 step (AP50 0.000, with
# conftest.tiny_options), 40 steps (0.189, 0.087), 80 steps
# (0.533, 0.237), 80 steps with its mask loss switched off (0.358, 0.110); unet_watershed
# after 1 step (0.000, 0.000), 60 steps (0.686, 0.554), 60 steps with interior and boundary
# swapped in its targets (0.426, 0.346). The floors sit between the broken and the sound run.
# YOLACT and SOLOv2 have their own tests (test_yolact_learns.py, test_solov2_learning.py).
BUDGET = {"maskrcnn": 80, "unet_watershed": 60}
FLOOR = {"maskrcnn": (0.43, 0.17), "unet_watershed": (0.55, 0.45)}  # (AP50, DSB score)
_LEARN_OPTIONS = {  # a small pyramid and few RoIs: seconds per step on a CPU
    "maskrcnn": {"fpn_channels": 32, "rpn_pre_nms_top_n": [100, 100],
                 "rpn_post_nms_top_n": [50, 50], "box_batch_size_per_image": 32},
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from segwise.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("learn")
    return write_synthetic_dataset(root / "data", flavour="instance", num_images=32,
                                   size=(64, 64), seed=7)


def train_and_score(method: str, root, run, *, steps: int) -> dict:
    """The last validation record of ``method`` after ``steps`` optimizer steps on ``root``."""
    from segwise.engine.config import config_from_dict
    from segwise.engine.trainer import fit

    options = _LEARN_OPTIONS.get(method, tiny_options(method))
    config = config_from_dict({
        "model": {"name": method, "encoder": "resnet18", "options": options},
        "data": {"root": str(root), "crop_size": 64, "batch_size": 4, "workers": 0,
                 "scale": [1.0, 1.0], "vflip": True},
        "optim": {"lr": 2e-3, "warmup_epochs": 0.0},
        "train": {"task": "instance", "epochs": 100, "max_steps": steps, "device": "cpu",
                  "seed": 0, "overlays": 0, "val_every": 100},
    })
    return fit(config, run, quiet=True).history[-1]


@pytest.mark.parametrize("method", sorted(BUDGET))
def test_method_learns_synthetic_instances(method, synthetic, tmp_path):
    assert method in INSTANCE_METHODS
    record = train_and_score(method, synthetic, tmp_path / "run", steps=BUDGET[method])
    ap50, dsb = record["val_ap50"], record["val_dsb_score"]
    assert ap50 > FLOOR[method][0] and dsb > FLOOR[method][1], (
        f"{method}: AP50 {ap50:.3f}, DSB score {dsb:.3f} after {BUDGET[method]} steps")
