"""Issue 15: odd and corrupt inputs through `segwise data inspect` and the training start-up
(discovery, then decoding every image): a named error or a precise warning, never a
traceback, never a silent drop. Each case is a clean 3-pair dataset plus one odd thing."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segwise.cli.main import main
from segwise.data import discover_dataset
from segwise.engine.data_check import decode_every_image


def _png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def _rgb(h=12, w=14, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(h=12, w=14):
    m = np.zeros((h, w), np.uint8)
    m[2:8, 3:9] = 1
    return m


def _base(root: Path) -> Path:
    for i in range(3):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        (root / "images" / f"ok{i}.png").write_bytes(_png_bytes(_rgb(seed=i)))
        (root / "masks" / f"ok{i}.png").write_bytes(_png_bytes(_mask()))
    return root


GOOD_IMAGE, GOOD_MASK = _png_bytes(_rgb(seed=9)), _png_bytes(_mask())

# case -> (image name, image bytes, mask name or None, mask bytes, the file that must be named
#          or None when the pair must simply be read, expected severity)
CASES = {
    "zero_byte_image": ("odd.png", b"", "odd.png", GOOD_MASK, "images/odd.png", "error"),
    "zero_byte_mask": ("odd.png", GOOD_IMAGE, "odd.png", b"", "masks/odd.png", "error"),
    "truncated_image": ("odd.png", GOOD_IMAGE[: len(GOOD_IMAGE) // 2], "odd.png", GOOD_MASK,
                        "images/odd.png", "error"),
    "truncated_mask": ("odd.png", GOOD_IMAGE, "odd.png", GOOD_MASK[: len(GOOD_MASK) // 2],
                       "masks/odd.png", "error"),
    "text_named_png": ("odd.png", b"not an image at all\n" * 10, "odd.png", GOOD_MASK,
                       "images/odd.png", "error"),
    "jpeg_named_png": ("odd.png", _png_bytes(_rgb(seed=9), "JPEG"), "odd.png", GOOD_MASK, None,
                       None),
    "png_named_tif_mask": ("odd.png", GOOD_IMAGE, "odd.tif", GOOD_MASK, "masks/odd.tif",
                           "error"),
    "upper_case_extension": ("odd.PNG", GOOD_IMAGE, "odd.PNG", GOOD_MASK, None, None),
    "spaces_and_non_ascii": ("ímage ünï 01.png", GOOD_IMAGE, "ímage ünï 01.png", GOOD_MASK,
                             None, None),
    "size_mismatch": ("odd.png", GOOD_IMAGE, "odd.png", _png_bytes(_mask(10, 14)),
                      "masks/odd.png", "error"),
    "image_without_mask": ("odd.png", GOOD_IMAGE, None, b"", "images/odd.png", "warning"),
    "mask_without_image": (None, b"", "odd.png", GOOD_MASK, "masks/odd.png", "warning"),
    "unsupported_image_format": ("odd.webp", _png_bytes(_rgb(seed=9), "WEBP"), "odd.png",
                                 GOOD_MASK, "images/odd.webp", "warning"),
}


def _make(root: Path, case: str) -> tuple[Path, str | None, str | None]:
    image, image_bytes, mask, mask_bytes, named, severity = CASES[case]
    _base(root)
    if image is not None:
        (root / "images" / image).write_bytes(image_bytes)
    if mask is not None:
        (root / "masks" / mask).write_bytes(mask_bytes)
    return root, named, severity


@pytest.mark.parametrize("case", sorted(CASES))
def test_data_inspect_names_the_file_or_reads_it(tmp_path, capsys, case):
    root, named, severity = _make(tmp_path / "my data" / "dätä", case)
    code = main(["data", "inspect", str(root), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    report = json.loads(out)
    if named is None:  # read as the user meant: all 4 pairs, no error
        assert code == 0 and report["summary"]["train"] + report["summary"]["val"] == 4
        assert report["problem_counts"]["error"] == 0
        return
    hits = [p for p in report["problems"] if p["file"].endswith(named)
            or named.rsplit("/", 1)[-1] in p["message"]]
    assert hits, f"{named} is not named in {report['problems']}"
    assert severity in {p["severity"] for p in hits}
    assert code == (1 if severity == "error" else 0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_start_up_names_the_file_or_reads_it(tmp_path, case):
    root, named, severity = _make(tmp_path / "my data" / "dätä", case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            index = discover_dataset(root)
            decode_every_image(index.samples, root)
        except ValueError as err:  # DataError is a ValueError: a named, clean refusal
            assert named is not None and severity == "error", f"unexpected refusal: {err}"
            assert named.rsplit("/", 1)[-1] in str(err)
            return
    texts = " ".join(str(w.message) for w in caught)
    if named is None:
        assert len(index.samples) == 4
    else:
        assert severity == "warning", f"{named} should have stopped the start"
        assert named.rsplit("/", 1)[-1] in texts  # left out, but said so by name
