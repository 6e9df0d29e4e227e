"""Issue 25: colour spaces (CMYK, YCCK, Lab, MinIsWhite, YCbCr), NaN pixels in float images,
and `data inspect`'s notices through the one channel (colour-coded instance masks:
``test_instance_colors.py``). Each input is the one the issue names; each test failed on the
code before the fix where that code was wrong."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from segwise.cli.main import main
from segwise.data import SegmentationDataset, discover_dataset
from segwise.data.colorspace import ColorSpaceError, cmyk_to_rgb
from segwise.data.formats import read_header, read_image
from segwise.data.info import DataError
from segwise.data.inspect import inspect_dataset

GREY = 55  # the known grey: RGB (55, 55, 55)


def _cmyk_jpeg(ink: tuple[int, int, int, int], h: int = 6, w: int = 8) -> bytes:
    """A CMYK JPEG of one colour, written by Pillow (libjpeg adds the Adobe APP14 marker and
    Pillow stores the inks inverted, as Photoshop does)."""
    arr = np.empty((h, w, 4), np.uint8)
    arr[:] = ink
    buf = io.BytesIO()
    Image.frombytes("CMYK", (w, h), arr.tobytes()).save(buf, "JPEG", quality=100)
    return buf.getvalue()


def _without_adobe_marker(data: bytes) -> bytes:
    i = data.find(b"\xff\xee")  # APP14
    length = int.from_bytes(data[i + 2:i + 4], "big")
    return data[:i] + data[i + 2 + length:]


def _as_ycck(data: bytes) -> bytes:
    """Mark the file's components as Adobe YCCK (APP14 transform flag 2)."""
    i = data.find(b"Adobe")
    out = bytearray(data)
    assert out[i + 11] == 0  # Pillow wrote "no transform"
    out[i + 11] = 2
    return bytes(out)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- 1. colour spaces -------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "data"), [
    ("black ink only", _cmyk_jpeg((0, 0, 0, 255 - GREY))),  # was read as white
    ("C = M = Y, no black", _cmyk_jpeg((255 - GREY,) * 3 + (0,))),
    ("without the Adobe marker", _without_adobe_marker(_cmyk_jpeg((0, 0, 0, 255 - GREY)))),
    # stored (Y, Cb, Cr, K) = (200, 128, 128, 255): libjpeg's YCCK -> inverted CMYK gives
    # C = M = Y = 200, K = 0 after Adobe's inversion, i.e. grey 255 - 200 = 55
    ("YCCK", _as_ycck(_cmyk_jpeg((GREY, 127, 127, 0)))),
])
def test_cmyk_and_ycck_jpegs_of_a_known_grey_read_as_that_grey(tmp_path, name, data):
    path = _write(tmp_path / "grey.jpg", data)
    got = read_image(path)
    assert got.shape == (6, 8, 3)
    np.testing.assert_allclose(got.astype(int), GREY, atol=1)
    # OpenCV, a second reference decoder (its own CMYK conversion), sees the same grey
    ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_allclose(got.astype(int), ref.astype(int), atol=1)
    head = read_header(path)
    assert (head.channels, head.alpha) == (3, False)
    assert head.space.value == ("ycck" if name == "YCCK" else "cmyk")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_cmyk_tiff_of_a_known_grey(tmp_path, dtype):
    top = np.iinfo(dtype).max
    ink = np.zeros((5, 7, 4), dtype)
    ink[..., 3] = top - GREY * (top // 255)  # black ink only; TIFF inks are not inverted
    tifffile.imwrite(tmp_path / "grey.tif", ink, photometric="separated")
    got = read_image(tmp_path / "grey.tif")
    assert got.dtype == dtype and got.shape == (5, 7, 3)
    assert np.all(got == GREY * (top // 255))


def test_cmyk_to_rgb_is_pillows_conversion_exactly():
    ink = np.random.default_rng(0).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    ref = np.asarray(Image.frombytes("CMYK", (11, 9), ink.tobytes()).convert("RGB"))
    np.testing.assert_array_equal(cmyk_to_rgb(ink), ref)


def test_miniswhite_and_ycbcr_tiffs_read_as_pillow_shows_them(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (4, 6), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "white.tif", grey, photometric="miniswhite")
    with Image.open(tmp_path / "white.tif") as im:
        np.testing.assert_array_equal(read_image(tmp_path / "white.tif")[..., 0], np.asarray(im))
    ycc = np.random.default_rng(2).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.frombytes("YCbCr", (6, 4), ycc.tobytes()).save(tmp_path / "ycc.tif")
    with Image.open(tmp_path / "ycc.tif") as im:
        ref = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "ycc.tif"), ref)


def test_a_lab_tiff_is_refused_by_name_before_training(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 1]),
                             "c": files.labels([0, 1])})
    (tmp_path / "images" / "b.png").unlink()
    Image.new("LAB", (10, 8), (50, 0, 0)).save(tmp_path / "images" / "b.tif")
    with pytest.raises(ColorSpaceError, match="CIELab"):
        read_image(tmp_path / "images" / "b.tif")
    with pytest.raises(DataError, match=r"b\.tif.*CIELab"):
        discover_dataset(tmp_path)
    report = inspect_dataset(tmp_path)
    assert [(p.code, Path(p.file).name) for p in report.errors] == [("color_space", "b.tif")]


def test_inspect_names_the_colour_space_and_the_rule_and_no_alpha(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 1]),
                             "c": files.labels([0, 1])})
    (tmp_path / "images" / "a.png").unlink()
    _write(tmp_path / "images" / "a.jpg", _cmyk_jpeg((0, 0, 0, 255 - GREY), h=8, w=10))
    report = inspect_dataset(tmp_path)
    # before: "image has an alpha channel; it is dropped", and the K channel was lost
    assert not [p for p in report.problems if p.code == "alpha_dropped"]
    notes = [p for p in report.problems if p.code == "color_space"]
    assert [Path(p.file).name for p in notes] == ["a.jpg"] and "RGB" in notes[0].message
    spaces = report.summary()["color_spaces"]
    assert spaces["cmyk"]["images"] == 1 and spaces["rgb"]["images"] == 2
    assert "Pillow" in spaces["cmyk"]["rule"]
    assert report.summary()["value_scale"] == {"uint8": "/ 255"}
    index = report.index
    item = SegmentationDataset(index.samples, index.info, normalize=False)
    a = next(i for i, s in enumerate(index.samples) if s.id == "a")
    np.testing.assert_allclose(item[a]["image"].numpy().astype(int), GREY, atol=1)


# -- 2. non-finite pixels ---------------------------------------------------------------------

def _float_dataset(root: Path, nan_in: dict[str, tuple[int, int]]) -> Path:
    """Float TIFF images a, b (train) and c (val); a NaN pixel where ``nan_in`` says."""
    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mask = np.zeros((8, 10), np.uint8)
    mask[2:6, 3:8] = 1
    for sid in ("a", "b", "c"):
        img = rng.random((8, 10, 3)).astype(np.float32)
        if sid in nan_in:
            img[nan_in[sid]] = np.nan
        tifffile.imwrite(root / "images" / f"{sid}.tif", img)
        Image.fromarray(mask).save(root / "masks" / f"{sid}.png")
    (root / "splits.json").write_text(json.dumps({"train": ["a", "b"], "val": ["c"]}))
    return root


def test_a_nan_pixel_in_train_and_in_val_is_refused_naming_both_files(tmp_path):
    root = _float_dataset(tmp_path / "data", {"a": (1, 2), "c": (4, 4)})
    with pytest.raises(DataError) as err:
        discover_dataset(root)
    text = str(err.value)
    assert "a.tif" in text and "c.tif" in text and "b.tif" not in text
    assert "1 of 80 pixels hold NaN" in text
    report = inspect_dataset(root, decode_images=False)
    bad = sorted(Path(p.file).name for p in report.errors if p.code == "nonfinite_pixels")
    assert bad == ["a.tif", "c.tif"]
    # the statistics pass never produces NaN (before: mean/std NaN)
    assert np.isfinite(report.index.info.mean).all() and np.isfinite(report.index.info.std).all()


def test_segwise_train_is_refused_before_it_writes_anything(tmp_path, capsys):
    root = _float_dataset(tmp_path / "data", {"a": (1, 2), "c": (4, 4)})
    out = tmp_path / "run"
    code = main(["train", "--data", str(root), "--out", str(out), "--model", "unet_textbook",
                 "--model-option", "base_width=8", "--model-option", "depth=3", "--epochs", "1",
                 "--device", "cpu", "--batch-size", "2", "--crop-size", "8", "--workers", "0",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and not out.exists()
    assert "a.tif" in err and "c.tif" in err and "NaN" in err
    assert main(["data", "inspect", str(root)]) == 1


def test_nonfinite_ignore_reads_the_mean_and_ignores_the_mask_pixels(tmp_path):
    root = _float_dataset(tmp_path / "data", {"a": (1, 2), "c": (4, 4)})
    with pytest.warns(UserWarning, match="NaN"):
        index = discover_dataset(root, nonfinite="ignore")
    info = index.info
    assert np.isfinite(info.mean).all() and np.isfinite(info.std).all()
    ds = SegmentationDataset(index.train, info)
    item = ds[[s.id for s in index.train].index("a")]
    assert torch_all_finite(item["image"])
    assert item["image"][:, 1, 2].abs().max() < 1e-6  # the mean: 0 after normalisation
    assert int(item["mask"][1, 2]) == info.labels.pad_value
    assert int((item["mask"] == info.labels.pad_value).sum()) == 1
    with pytest.raises(ValueError, match="nonfinite"):
        discover_dataset(root, nonfinite="skip")


def torch_all_finite(t) -> bool:
    import torch

    return bool(torch.isfinite(t).all())


# -- 4. notices through the one channel -------------------------------------------------------

def test_data_inspect_prints_notices_without_python_source_lines(tmp_path, files, capsys,
                                                                 monkeypatch):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 1]),
                             "c": files.labels([0, 1])})
    (tmp_path / "images" / "a.png").unlink()
    _write(tmp_path / "images" / "a.jpg", _cmyk_jpeg((0, 0, 0, 200), h=8, w=10))
    rgba = np.dstack([files.rgb(), np.full((8, 10), 255, np.uint8)])
    files.png(tmp_path / "images" / "b.png", rgba)  # an alpha channel: a notice when decoded

    import warnings

    import segwise.data.inspect as inspect_module

    real = inspect_module.read_image

    def chatty(path):  # a library that warns while reading
        warnings.warn("a reader library says hello", UserWarning, stacklevel=1)
        return real(path)

    monkeypatch.setattr(inspect_module, "read_image", chatty)
    assert main(["data", "inspect", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "UserWarning:" not in err.replace("segwise warning: UserWarning:", "")
    assert "warnings.warn" not in err and ".py:" not in err
    assert err.count("segwise warning: UserWarning: a reader library says hello") == 1
    assert err.count("alpha channel is dropped") == 1
