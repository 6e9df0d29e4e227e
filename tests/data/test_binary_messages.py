"""Binary data said plainly (issue 31): stray labels named by file; JPEG 0/255 read as binary."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from segwise.data import discover_dataset
from segwise.data.formats import MaskKind


def _write(root, masks, suffix=".png"):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, mask in enumerate(masks):
        image = (rng.random((*mask.shape, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"im{i}{suffix}", quality=30)
    return root


def _discover(root):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = discover_dataset(root)
    return index, "\n".join(str(w.message) for w in caught)


def test_a_stray_label_in_a_binary_dataset_names_its_file(tmp_path):
    masks = [np.zeros((32, 32), np.uint8) for _ in range(10)]
    for m in masks:
        m[4:12, 4:12] = 1
    masks[6][20, 20] = 7  # one stray value in one file
    index, said = _discover(_write(tmp_path / "d", masks))
    assert index.info.labels.num_classes == 8  # read as asked by the values ...
    assert "im6.png" in said  # ... but the file that made it so is named, with the way out
    assert "9 of the 10 masks hold only" in said and "--mask-kind binary" in said
    assert "im5.png" not in said


def test_a_multiclass_dataset_gets_no_stray_note(tmp_path):
    masks = [np.zeros((32, 32), np.uint8) for _ in range(4)]
    for k, m in enumerate(masks):
        m[4:12, 4:12] = k % 3 + 1
    _, said = _discover(_write(tmp_path / "d", masks))
    assert "binary_strays" not in said and "--mask-kind binary" not in said


def test_jpeg_masks_of_small_objects_are_read_as_binary(tmp_path):
    # small bright objects at JPEG quality 30: more grey pixels than 255 ones
    masks = []
    for i in range(6):
        m = np.zeros((64, 64), np.uint8)
        for y in range(4, 60, 12):
            m[y:y + 3, 6 + i:9 + i] = 255
        masks.append(m)
    index, _ = _discover(_write(tmp_path / "d", masks, suffix=".jpg"))
    assert index.info.mask_kind is MaskKind.BINARY
    assert index.info.labels.num_classes == 2
