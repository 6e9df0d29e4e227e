"""One test per image format and per mask kind (tiny files written by the test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from segwise.data import (
    MaskKind,
    SegmentationDataset,
    discover_dataset,
    inspect_dataset,
    read_image,
    read_mask,
)
from segwise.enums import Task


# ---- images ------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_read_image_rgb_formats(tmp_path, files, ext):
    arr = files.rgb(6, 7)
    path = tmp_path / f"a{ext}"
    if ext == ".tif":
        tifffile.imwrite(path, arr)
    else:
        Image.fromarray(arr).save(path, quality=100) if ext == ".jpg" else files.png(path, arr)
    out = read_image(path)
    assert out.shape == (6, 7, 3) and out.dtype == np.uint8
    if ext != ".jpg":  # lossless formats give the bytes back
        np.testing.assert_array_equal(out, arr)


def test_read_image_grayscale_and_16bit(tmp_path, files):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    files.png(tmp_path / "g.png", gray)
    assert read_image(tmp_path / "g.png").shape == (4, 5, 1)
    deep = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000)
    files.png(tmp_path / "d.png", deep)
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[..., 0], deep)


def test_read_image_multichannel_tiff_keeps_all_channels(tmp_path):
    arr = np.random.default_rng(0).integers(0, 65535, (5, 6, 8), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", arr, photometric="minisblack", planarconfig="contig")
    np.testing.assert_array_equal(read_image(tmp_path / "m.tif"), arr)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(arr, -1, 0), photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), arr)


def test_rgba_alpha_is_dropped_with_a_notice(tmp_path, files):
    arr = np.dstack([files.rgb(4, 5), np.full((4, 5), 7, np.uint8)])
    files.png(tmp_path / "a.png", arr)
    with pytest.warns(UserWarning, match="alpha channel"):
        out = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out, arr[..., :3])


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(bad)


# ---- masks -------------------------------------------------------------------------------
def _item(root, **kw):
    index = discover_dataset(root, **kw)
    ds = SegmentationDataset(index.train, index.info)
    return index, ds[0]


def test_binary_0_1(tmp_path, files):
    m = files.labels([0, 1])
    index, item = _item(files.dataset(tmp_path, {"a": m, "b": m}))
    assert index.info.mask_kind == MaskKind.BINARY
    assert index.info.labels.task == Task.BINARY and index.info.labels.num_classes == 2
    assert item["mask"].dtype == torch.int64
    np.testing.assert_array_equal(item["mask"].numpy(), m)


def test_binary_0_255_is_mapped_with_a_notice(tmp_path, files):
    m = files.labels([0, 255])
    with pytest.warns(UserWarning, match="255 is read as foreground"):
        index, item = _item(files.dataset(tmp_path, {"a": m, "b": m}))
    assert index.info.mask_kind == MaskKind.BINARY
    np.testing.assert_array_equal(item["mask"].numpy(), m // 255)
    notices = [p for p in index.problems if p.code == "binary_0_255"]
    assert len(notices) == 1 and "255" in notices[0].message


def test_index_uint8_png_classes_inferred_and_said(tmp_path, files):
    m = files.labels([0, 1, 2, 4])
    index, item = _item(files.dataset(tmp_path, {"a": m, "b": m}))
    assert index.info.mask_kind == MaskKind.INDEX
    assert index.info.labels.num_classes == 5 and index.info.labels.task == Task.MULTICLASS
    assert any(p.code == "classes_inferred" for p in index.problems)
    np.testing.assert_array_equal(item["mask"].numpy(), m)
    assert index.info.class_pixel_counts[3] == 0  # absent class is counted, and reported:
    assert any(p.code == "class_absent" for p in index.problems)


def test_index_uint16_tiff(tmp_path, files):
    m = files.labels([0, 3, 300], dtype=np.uint16)
    root = files.dataset(tmp_path, {"a": m, "b": m}, ext=".tif")
    _, item = _item(root, num_classes=301)
    np.testing.assert_array_equal(item["mask"].numpy(), m.astype(np.int64))


def test_palette_png_voc_style_255_ignored(tmp_path, files):
    colors = [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    m = files.labels([0, 1, 2, 255])
    for sid in ("a", "b"):
        files.png(tmp_path / "images" / f"{sid}.png", files.rgb())
        files.palette_png(tmp_path / "masks" / f"{sid}.png", m, colors)
    index, item = _item(tmp_path)
    info = index.info
    assert info.mask_kind == MaskKind.PALETTE
    assert info.labels.ignore_index == 255 and info.labels.num_classes == 3
    assert info.labels.colors == tuple(colors)
    np.testing.assert_array_equal(item["mask"].numpy(), m)
    report = inspect_dataset(tmp_path)
    assert report.summary()["ignored_pixels"] == 2 * 2 * 10  # two masks, rows 6-7 are 255


def test_color_coded_rgb_with_class_table(tmp_path, files):
    colors = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    idx = files.labels([0, 1, 2, 1])
    rgb = np.array(colors, np.uint8)[idx]
    root = files.dataset(tmp_path, {"a": rgb, "b": rgb})
    (root / "classes.json").write_text(json.dumps({"names": ["bg", "red", "blue"],
                                                   "colors": colors}))
    index, item = _item(root)
    assert index.info.mask_kind == MaskKind.COLOR
    assert index.info.labels.names == ("bg", "red", "blue")
    np.testing.assert_array_equal(item["mask"].numpy(), idx)


def test_color_mask_unknown_colour_is_an_error_naming_the_file(tmp_path, files):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[0, 0] = (9, 9, 9)
    root = files.dataset(tmp_path, {"a": rgb, "b": np.zeros_like(rgb)})
    (root / "classes.json").write_text(json.dumps({"names": ["bg", "x"],
                                                   "colors": [[0, 0, 0], [1, 2, 3]]}))
    index = discover_dataset(root, mask_kind="color", strict=False)
    bad = [p for p in index.problems if p.code == "unexpected_labels"]
    assert len(bad) == 1 and bad[0].file.endswith("a.png") and "(9, 9, 9)" in bad[0].message
    with pytest.raises(ValueError, match=r"a\.png.*\(9, 9, 9\)"):
        read_mask(root / "masks" / "a.png", index.info)


@pytest.mark.parametrize("ext", [".tif", ".npy"])
def test_soft_float_masks(tmp_path, files, ext):
    m = np.linspace(0, 1, 80, dtype=np.float32).reshape(8, 10)
    index, item = _item(files.dataset(tmp_path, {"a": m, "b": m}, ext=ext))
    assert index.info.mask_kind == MaskKind.SOFT and index.info.labels.task == Task.BINARY
    assert item["mask"].dtype == torch.float32 and item["mask"].shape == (1, 8, 10)
    np.testing.assert_allclose(item["mask"][0].numpy(), m)


def test_soft_mask_out_of_range_is_reported(tmp_path, files):
    m = np.full((8, 10), 1.5, np.float32)
    index = discover_dataset(files.dataset(tmp_path, {"a": m, "b": m * 0}, ext=".npy"),
                             strict=False)
    assert [p.file.endswith("a.npy") for p in index.problems if p.code == "unexpected_labels"] \
        == [True]


def test_several_annotators_are_averaged_into_a_soft_label(tmp_path, files):
    for sid in ("a", "b"):
        files.png(tmp_path / "images" / f"{sid}.png", files.rgb(4, 4))
        for k, v in enumerate([0, 255, 255]):
            m = np.zeros((4, 4), np.uint8)
            m[0, 0] = v
            m[1, 1] = 255
            files.png(tmp_path / "masks" / sid / f"rater{k}.png", m)
    index, item = _item(tmp_path)
    assert index.info.mask_kind == MaskKind.SOFT
    mask = item["mask"]
    assert mask.dtype == torch.float32 and mask.shape == (1, 4, 4)
    assert mask[0, 0, 0].item() == pytest.approx(2 / 3) and mask[0, 1, 1].item() == 1.0
    assert mask.sum().item() == pytest.approx(2 / 3 + 1)


def test_instance_labels_noncontiguous_ids(tmp_path, files):
    inst = np.zeros((8, 10), np.uint16)
    inst[0:3, 0:3] = 7
    inst[4:8, 5:10] = 300
    for sid in ("a", "b"):
        files.png(tmp_path / "images" / f"{sid}.png", files.rgb())
        files.png(tmp_path / "instances" / f"{sid}.png", inst)
    index = discover_dataset(tmp_path)
    assert index.info.mask_kind == MaskKind.INSTANCE and index.info.labels.task == Task.BINARY
    assert any(p.code == "noncontiguous_ids" for p in index.problems)
    item = SegmentationDataset(index.train, index.info, instances=True)[0]
    np.testing.assert_array_equal(item["mask"].numpy(), (inst > 0).astype(np.int64))
    got = item["instances"]
    assert got["ids"].tolist() == [7, 300] and got["labels"].tolist() == [1, 1]
    assert got["masks"].dtype == torch.uint8 and got["masks"].shape == (2, 8, 10)
    assert got["boxes"].tolist() == [[0, 0, 3, 3], [5, 4, 10, 8]]


def test_instance_classes_from_sidecar(tmp_path, files):
    inst = files.labels([0, 1, 2], dtype=np.uint16)
    for sid in ("a", "b"):
        files.png(tmp_path / "images" / f"{sid}.png", files.rgb())
        files.png(tmp_path / "instances" / f"{sid}.png", inst)
        (tmp_path / "instances" / f"{sid}.json").write_text(json.dumps({"1": 2, "2": 1}))
    (tmp_path / "classes.json").write_text(json.dumps({"names": ["bg", "cat", "dog"]}))
    index = discover_dataset(tmp_path)
    assert index.info.labels.num_classes == 3 and index.info.labels.task == Task.MULTICLASS
    item = SegmentationDataset(index.train, index.info, instances=True)[0]
    assert item["instances"]["labels"].tolist() == [2, 1]
    np.testing.assert_array_equal(item["mask"].numpy(), files.labels([0, 2, 1]))


def test_coco_polygons_and_rle_with_overlap(tmp_path, files):
    from pycocotools import mask as mask_utils

    files.png(tmp_path / "images" / "a.png", files.rgb(8, 10))
    files.png(tmp_path / "images" / "b.png", files.rgb(8, 10))
    rle_mask = np.zeros((8, 10), np.uint8, order="F")
    rle_mask[2:6, 2:6] = 1  # overlaps the polygon below
    rle = mask_utils.encode(np.asfortranarray(rle_mask))
    rle["counts"] = rle["counts"].decode()
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 10},
                   {"id": 2, "file_name": "b.png", "height": 8, "width": 10}],
        "categories": [{"id": 5, "name": "cell"}, {"id": 9, "name": "debris"}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 5, "iscrowd": 0,
             "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]], "area": 16, "bbox": [0, 0, 4, 4]},
            {"id": 12, "image_id": 1, "category_id": 9, "iscrowd": 0, "segmentation": rle,
             "area": 16, "bbox": [2, 2, 4, 4]},
        ],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["a"], "val": ["b"]}))
    report = inspect_dataset(tmp_path)
    info = report.index.info
    assert info.mask_kind == MaskKind.COCO and info.labels.names == ("background", "cell", "debris")
    codes = {p.code for p in report.problems}
    assert {"coco_overlap", "coco_category_ids"} <= codes
    item = SegmentationDataset(report.index.train, info, instances=True)[0]
    inst = item["instances"]
    assert inst["ids"].tolist() == [11, 12] and inst["labels"].tolist() == [1, 2]
    assert inst["masks"][1].sum().item() == 16  # the overlap stays in both instance masks
    assert inst["masks"][0][3, 3] == 1 and inst["masks"][1][3, 3] == 1
    assert item["mask"].unique().tolist() == [0, 1, 2]


def _png16_rgb(path, arr):
    """A 16-bit RGB PNG written by hand (PIL cannot write one)."""
    import struct
    import zlib

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2,
                                                                        0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_rgb_png_is_read_exactly(tmp_path):
    arr = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1001).astype(np.uint16)
    _png16_rgb(tmp_path / "deep.png", arr)
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, arr)
