"""Issue 15: a user's file is read as what it means, or refused by name (grey-edged binary
masks, JPEG masks, EXIF orientation, alpha in masks, pairing reasons)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from segwise.data import SegmentationDataset, discover_dataset
from segwise.data.formats import BINARY_SNAP_RULE, read_image
from segwise.data.info import Severity
from segwise.data.inspect import inspect_dataset
from segwise.enums import Task


def _square_mask(size: int = 16, *, lo: int = 4, hi: int = 12) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[lo:hi, lo:hi] = 255
    return m


def _grey_edged(size: int = 60) -> np.ndarray:
    """A 0/255 mask resized with bilinear interpolation: its edges hold grey values."""
    small = _square_mask(40, lo=8, hi=32)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR))


def _codes(report, code: str) -> list:
    return [p for p in report.problems if p.code == code]


def test_grey_edged_binary_masks_are_binary_and_snapped_per_file(tmp_path, files):
    grey = _grey_edged()
    assert len(np.unique(grey)) > 5  # the premise: interpolation made grey values
    files.dataset(tmp_path, {"a": grey, "b": grey, "c": _square_mask(60, lo=10, hi=40)})
    report = inspect_dataset(tmp_path)
    info = report.index.info
    # before: INDEX with ~250 classes and 255 (the object) taken as the ignore label
    labels = info.labels
    assert (labels.task, labels.num_classes, labels.ignore_index) == (Task.BINARY, 2, None)
    snapped = _codes(report, "binary_grey_snapped")
    assert sorted(p.file.rsplit("/", 1)[-1] for p in snapped) == ["a.png", "b.png"]
    assert BINARY_SNAP_RULE in snapped[0].message
    assert not report.errors
    expected = (grey >= 128).astype(np.int64)  # the printed rule, by hand
    index = discover_dataset(tmp_path)
    ds = SegmentationDataset(index.samples, index.info)
    item = next(ds[i] for i in range(len(ds)) if ds.samples[i].id == "a")
    np.testing.assert_array_equal(item["mask"].numpy(), expected)


def test_voc_style_index_masks_keep_255_as_ignore(tmp_path, files):
    """The grey-edge rule must not swallow class-index masks with a thin 255 outline."""
    m = np.zeros((20, 20), np.uint8)
    m[4:14, 4:14] = 3
    m[3, 3:15] = 255  # thin outline
    files.dataset(tmp_path, {"a": m, "b": m})
    info = inspect_dataset(tmp_path).index.info
    assert info.labels.ignore_index == 255 and info.labels.num_classes == 4


def test_jpeg_binary_masks_are_read_with_a_lossy_warning(tmp_path, files):
    masks = {"a": _square_mask(64, lo=16, hi=48), "b": _square_mask(64, lo=8, hi=40)}
    files.dataset(tmp_path, masks)
    for sid in ("a", "b"):  # re-save the masks as JPEG, as an editor would
        png = tmp_path / "masks" / f"{sid}.png"
        Image.open(png).save(png.with_suffix(".jpg"), quality=75)
        png.unlink()
    report = inspect_dataset(tmp_path)  # before: "no image/mask pairs found"
    assert report.index.info.labels.task == Task.BINARY and not report.errors
    lossy = _codes(report, "lossy_mask")
    assert len(lossy) == 2 and all(p.severity == Severity.WARNING for p in lossy)
    assert "JPEG" in lossy[0].message and "PNG" in lossy[0].message
    index = discover_dataset(tmp_path)
    mask = SegmentationDataset(index.samples, index.info)[0]["mask"].numpy()
    assert set(np.unique(mask).tolist()) <= {0, 1}


def test_jpeg_index_masks_are_refused_by_name(tmp_path, files):
    m = files.labels([0, 1, 2, 3], h=16, w=16) * 40
    files.dataset(tmp_path, {"a": m, "b": m})
    for sid in ("a", "b"):
        png = tmp_path / "masks" / f"{sid}.png"
        Image.open(png).save(png.with_suffix(".jpg"))
        png.unlink()
    report = inspect_dataset(tmp_path, mask_kind="index", num_classes=121)
    errors = _codes(report, "lossy_mask")
    assert [p.severity for p in errors] == [Severity.ERROR] * 2
    assert errors[0].file.endswith(".jpg") and "re-save the masks as PNG" in errors[0].message


def _exif_image(path, array: np.ndarray, orientation: int):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied_like_pillow(tmp_path, suffix):
    stored = np.zeros((12, 20, 3), np.uint8)
    stored[:4, :4] = 255  # a bright top-left corner, as stored
    path = tmp_path / f"x{suffix}"
    _exif_image(path, stored, 6)
    got = read_image(path)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    assert got.shape == (20, 12, 3)  # as displayed: rotated by 90 degrees
    tol = 0 if suffix == ".png" else 40
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= tol
    assert got[:4, -4:].mean() > 200  # Orientation 6: the stored top-left is displayed top-right


def test_exif_rotated_square_image_lines_up_with_its_mask(tmp_path, files):
    """A square photo with Orientation=6 and a mask drawn on the displayed picture."""
    stored = np.zeros((16, 16, 3), np.uint8)
    stored[:, :8] = 200  # left half bright as stored = top half bright as displayed
    displayed_mask = np.zeros((16, 16), np.uint8)
    displayed_mask[:8] = 1
    for sid in ("a", "b"):
        (tmp_path / "images").mkdir(exist_ok=True)
        _exif_image(tmp_path / "images" / f"{sid}.png", stored, 6)
        files.png(tmp_path / "masks" / f"{sid}.png", displayed_mask)
    report = inspect_dataset(tmp_path)
    assert len(_codes(report, "exif_orientation")) == 2 and not report.errors
    index = discover_dataset(tmp_path)
    info = index.info
    item = SegmentationDataset(index.samples, info)[0]
    bright = item["image"][0] > 0  # normalised: above the mean
    # before: the image was decoded as stored, so the object (IoU 0) missed the mask
    assert (bright.numpy() == (item["mask"].numpy() == 1)).all()


def test_size_mismatch_from_exif_names_exif(tmp_path, files):
    stored = files.rgb(12, 20)
    mask_as_stored = np.zeros((12, 20), np.uint8)
    mask_as_stored[2:6, 2:6] = 1
    for sid in ("a", "b"):
        (tmp_path / "images").mkdir(exist_ok=True)
        _exif_image(tmp_path / "images" / f"{sid}.png", stored, 6)
        files.png(tmp_path / "masks" / f"{sid}.png", mask_as_stored)
    [p, _] = _codes(inspect_dataset(tmp_path), "size_mismatch")
    assert "EXIF Orientation=6" in p.message and "displayed" in p.message


def _rgba_mask(background: tuple[int, int, int, int]) -> np.ndarray:
    m = np.empty((16, 16, 4), np.uint8)
    m[:] = background
    m[4:12, 4:12] = (255, 0, 0, 255)
    return m


@pytest.mark.parametrize("background", [(255, 255, 255, 0), (0, 0, 0, 0)])
def test_transparent_mask_background_is_background(tmp_path, files, background):
    m = _rgba_mask(background)
    files.dataset(tmp_path, {"a": m, "b": m})
    report = inspect_dataset(tmp_path)
    info = report.index.info
    assert info.labels.num_classes == 2 and info.labels.colors[0] == (0, 0, 0)
    assert info.labels.colors[1] == (255, 0, 0)
    assert len(_codes(report, "mask_alpha")) == 2
    index = discover_dataset(tmp_path)
    mask = SegmentationDataset(index.samples, info)[0]["mask"].numpy()
    expected = np.zeros((16, 16), np.int64)
    expected[4:12, 4:12] = 1  # the red square is the foreground, whatever the background colour
    np.testing.assert_array_equal(mask, expected)


def test_unsupported_mask_format_is_named(tmp_path, files):
    files.dataset(tmp_path, {"img_00": files.labels([0, 1]), "img_01": files.labels([0, 1]),
                             "img_02": files.labels([0, 1])})
    gif = tmp_path / "masks" / "img_02.gif"
    Image.open(tmp_path / "masks" / "img_02.png").save(gif)
    (tmp_path / "masks" / "img_02.png").unlink()
    report = inspect_dataset(tmp_path)
    [left_out] = _codes(report, "image_without_mask")
    assert "img_02.gif" in left_out.message and "unsupported format" in left_out.message
    [odd] = _codes(report, "unsupported_file")
    assert odd.file.endswith("img_02.gif")


def test_all_masks_unsupported_names_the_files(tmp_path, files):
    files.dataset(tmp_path, {"a": files.labels([0, 1]), "b": files.labels([0, 1])},
                  splits=False)
    for sid in ("a", "b"):
        png = tmp_path / "masks" / f"{sid}.png"
        Image.open(png).save(png.with_suffix(".gif"))
        png.unlink()
    expected = r"(?s)no image/mask pairs.*a\.gif: \.gif is not a supported mask"
    with pytest.raises(ValueError, match=expected):
        discover_dataset(tmp_path)


def test_names_differing_in_case_are_paired_with_a_notice(tmp_path, files):
    files.png(tmp_path / "images" / "IMG_00.JPG", files.rgb(8, 10))
    files.png(tmp_path / "images" / "IMG_01.JPG", files.rgb(8, 10, seed=1))
    files.png(tmp_path / "masks" / "img_00.png", files.labels([0, 1]))
    files.png(tmp_path / "masks" / "img_01.png", files.labels([0, 1]))
    report = inspect_dataset(tmp_path)  # before: "no image/mask pairs found"
    assert len(report.index.samples) == 2 and not report.errors
    notes = _codes(report, "paired_ignoring_case")
    assert len(notes) == 2 and "letter case" in notes[0].message


def test_transparent_pixels_against_a_class_table_without_black_say_why(tmp_path, files):
    import json

    m = _rgba_mask((255, 255, 255, 0))
    files.dataset(tmp_path, {"a": m, "b": m})
    (tmp_path / "classes.json").write_text(json.dumps(
        {"names": ["background", "object"], "colors": [[255, 255, 255], [255, 0, 0]]}))
    [p, _] = _codes(inspect_dataset(tmp_path), "unexpected_labels")
    assert "transparent pixels are read as background, black (0, 0, 0)" in p.message
