"""Real-data checks on ../shared/data/dsb2018 (skipped when absent): targets decode back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segwise.instance.methods.unet_watershed.decode import decode_three_class
from segwise.instance.methods.unet_watershed.targets import border_weight_map, three_class_target
from segwise.metrics.instance import InstanceMetrics

pytestmark = pytest.mark.shared_data


def test_three_class_targets_decode_back_on_real_nuclei(shared_data):
    root = shared_data / "dsb2018"
    ids = json.loads((root / "splits.json").read_text())["val"][:4]
    metrics = InstanceMetrics()
    for name in ids:
        inst = np.array(Image.open(root / "instances" / f"{name}.png")).astype(np.int64)
        weights = border_weight_map(inst)
        assert weights.shape == inst.shape and np.isfinite(weights).all()
        metrics.update(decode_three_class(three_class_target(inst)), inst)
    result = metrics.compute()
    # an oracle (perfect targets) loses only objects too thin to keep an interior
    assert result.dsb_score > 0.95 and result.pq > 0.95
