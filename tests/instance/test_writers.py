"""Writers: 16-bit PNG round trip, JSON list, COCO results JSON, overlay image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segwise.instance.representation import InstancePrediction
from segwise.instance.writers import (
    read_instance_png,
    render_overlay,
    save_prediction,
    write_coco_results_json,
    write_instance_png,
)

from .conftest import rect_map


@pytest.fixture
def pred():
    inst = rect_map((12, 16), [(300, 1, 1, 4, 5), (2, 6, 8, 5, 6)])  # ID 300 needs 16 bits
    return InstancePrediction.from_label_map(inst, labels={2: 1, 300: 3}, scores=[0.5, 0.75])


def test_png_round_trip_16_bit(tmp_path, pred):
    path = write_instance_png(tmp_path / "x.png", pred)
    with Image.open(path) as img:
        assert img.mode.startswith("I")  # 16-bit greyscale
    assert np.array_equal(read_instance_png(path), pred.instance_map)
    big = InstancePrediction.from_label_map(np.full((2, 2), 70000))
    with pytest.raises(ValueError, match="relabel"):
        write_instance_png(tmp_path / "y.png", big)


def test_save_prediction_writes_everything(tmp_path, pred):
    image = np.random.default_rng(0).random((3, 12, 16)).astype(np.float32)  # item layout
    paths = save_prediction(tmp_path / "out", "img1", pred, image=image, coco_image_id=4)
    assert set(paths) == {"png", "json", "overlay", "coco"}
    payload = json.loads(paths["json"].read_text())
    assert payload["height"] == 12 and payload["width"] == 16
    assert payload["instances"][1] == {
        "id": 300,
        "label": 3,
        "score": 0.75,
        "box": [1.0, 1.0, 6.0, 5.0],
        "area": 20,
    }
    coco = json.loads(paths["coco"].read_text())
    assert [c["category_id"] for c in coco] == [1, 3] and coco[0]["image_id"] == 4
    with Image.open(paths["overlay"]) as img:
        assert img.size == (16, 12) and img.mode == "RGB"


def test_overlay_fill_and_contour(pred):
    image = np.zeros((12, 16), dtype=np.uint8)
    out = render_overlay(image, pred, alpha=0.5, contour_color=(255, 255, 255))
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    assert (out[0, 0] == 0).all()  # background untouched
    assert (out[1, 1] == 255).all()  # corner of instance 300 is on its contour
    inner = out[2, 2]
    assert 0 < inner.max() < 255  # filled with half-opacity colour
    assert not np.array_equal(out[3, 3], out[8, 10])  # different instances, different colours
    with pytest.raises(ValueError, match="image has shape"):
        render_overlay(np.zeros((5, 5)), pred)


def test_coco_results_json_needs_one_id_per_image(tmp_path, pred):
    with pytest.raises(ValueError, match="one id each"):
        write_coco_results_json(tmp_path / "c.json", [pred, pred], image_ids=[1])
