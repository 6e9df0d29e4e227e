"""Issue 15: every decode path, per common file mode and format, reads the values the user
meant, or refuses with a named error. Images: :func:`read_image`; masks: discovery + the
dataset item, per mask kind."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from segwise.data import SegmentationDataset, discover_dataset
from segwise.data.formats import MaskKind, read_image
from segwise.data.inspect import inspect_dataset

H, W = 6, 8
RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (H, W)).astype(np.uint8)
RGB = RNG.integers(0, 256, (H, W, 3)).astype(np.uint8)
ALPHA = RNG.integers(0, 256, (H, W)).astype(np.uint8)
BITS = RNG.integers(0, 2, (H, W)).astype(bool)
U16 = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
I32 = RNG.integers(-5, 70000, (H, W)).astype(np.int32)
F32 = RNG.random((H, W)).astype(np.float32)
INDICES = RNG.integers(0, 4, (H, W)).astype(np.uint8)
PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]


def _pil(mode: str) -> Image.Image:
    if mode == "1":
        return Image.fromarray(BITS.astype(np.uint8) * 255).convert("1")
    if mode == "P":
        im = Image.fromarray(INDICES, "L").convert("P")
        im.putpalette([v for c in PALETTE for v in c] + [0] * (768 - 12))
        return im
    arrays = {"L": GREY, "LA": np.dstack([GREY, ALPHA]), "RGB": RGB,
              "RGBA": np.dstack([RGB, ALPHA]), "I;16": U16, "I": I32, "F": F32}
    return Image.fromarray(arrays[mode])


def _meant(mode: str, fmt: str) -> np.ndarray:
    """What the user meant by this image: (H, W, C) values."""
    tiff = fmt == "tif"
    return {
        "1": (BITS.astype(np.uint8) * 255)[..., None],  # black and white
        "L": GREY[..., None],
        "P": np.array(PALETTE, np.uint8)[INDICES],  # the palette's colours
        "LA": np.dstack([GREY, ALPHA]) if tiff else GREY[..., None],  # TIFF keeps channels
        "RGB": RGB,
        "RGBA": np.dstack([RGB, ALPHA]) if tiff else RGB,
        "I;16": U16[..., None],
        "I": I32[..., None],
        "F": F32[..., None],
    }[mode]


def _writable(mode: str, fmt: str) -> bool:
    """Pillow writes this mode in this format (e.g. not F as PNG, not RGBA as JPEG)."""
    import io

    try:
        _pil(mode).save(io.BytesIO(), format={"jpg": "JPEG", "tif": "TIFF"}.get(fmt, fmt))
    except (OSError, ValueError, KeyError):
        return False
    return True


IMAGE_CASES = [(m, f) for m in ("1", "L", "P", "LA", "RGB", "RGBA", "I;16", "I", "F")
               for f in ("png", "jpg", "tif", "bmp") if _writable(m, f)]


@pytest.mark.parametrize(("mode", "fmt"), IMAGE_CASES)
def test_images_read_as_meant(tmp_path, mode, fmt):
    path = tmp_path / f"x.{fmt}"
    _pil(mode).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alpha notice
        got = read_image(path)
    meant = _meant(mode, fmt)
    if fmt == "jpg":  # lossy: what Pillow decodes, up to the decoders' rounding
        with Image.open(path) as im:
            reference = np.asarray(im).reshape(meant.shape)
        assert got.shape == meant.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - reference.astype(int)).max() <= 3
        return
    assert got.dtype == meant.dtype
    np.testing.assert_array_equal(got, meant)


def test_npy_images_are_refused_by_name(tmp_path):
    np.save(tmp_path / "x.npy", RGB)
    with pytest.raises(ValueError, match=r"x\.npy"):
        read_image(tmp_path / "x.npy")


def _dataset(root, write_mask) -> None:
    for i, sid in enumerate(("a", "b")):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(RGB, i, axis=0)).save(root / "images" / f"{sid}.png")
        write_mask(root / "masks" / sid)


def _save(array_or_image, suffix):
    def write(stem):
        path = stem.with_suffix(suffix)
        if suffix == ".npy":
            np.save(path, array_or_image)
        elif suffix == ".tif" and isinstance(array_or_image, np.ndarray):
            tifffile.imwrite(path, array_or_image)
        else:
            im = array_or_image
            (im if isinstance(im, Image.Image) else Image.fromarray(im)).save(path)
    return write


BIN = np.zeros((H, W), np.uint8)
BIN[1:4, 2:6] = 1
LABELS = np.array([0, 1, 2, 1, 0, 2, 2, 1], np.uint8)[None].repeat(H, 0)
COLORS = np.array([(0, 0, 0), (0, 128, 255), (255, 0, 0)], np.uint8)  # sorted by RGB code
RGBA_CLEAR = np.dstack([np.array([(255, 255, 255), (0, 128, 255), (255, 0, 0)],
                                 np.uint8)[LABELS], np.where(LABELS == 0, 0, 255)]).astype(np.uint8)

# (kind, writer, expected mask kind, expected int64 target or float soft target)
MASK_CASES = {
    "binary-1bit-png": (_save(Image.fromarray(BIN * 255).convert("1"), ".png"), "binary", BIN),
    "binary-1bit-tif": (_save(BIN.astype(bool), ".tif"), "binary", BIN),
    "binary-1bit-bmp": (_save(Image.fromarray(BIN * 255).convert("1"), ".bmp"), "binary", BIN),
    "binary-L255-png": (_save(BIN * 255, ".png"), "binary", BIN),
    "binary-L255-bmp": (_save(BIN * 255, ".bmp"), "binary", BIN),
    "binary-u16-tif": (_save(BIN.astype(np.uint16) * 65535, ".tif"), "binary", BIN),
    "binary-npy-bool": (_save(BIN.astype(bool), ".npy"), "binary", BIN),
    "index-L-png": (_save(LABELS, ".png"), "index", LABELS),
    "index-L-tif": (_save(LABELS, ".tif"), "index", LABELS),
    "index-L-bmp": (_save(LABELS, ".bmp"), "index", LABELS),
    "index-I16-png": (_save(LABELS.astype(np.uint16), ".png"), "index", LABELS),
    "index-I32-tif": (_save(LABELS.astype(np.int32), ".tif"), "index", LABELS),
    "index-npy-int": (_save(LABELS.astype(np.int64), ".npy"), "index", LABELS),  # was "soft"
    "palette-P-png": (_save(_pil("P"), ".png"), "palette", INDICES),
    "color-RGB-png": (_save(COLORS[LABELS], ".png"), "color", LABELS),
    "color-RGB-tif": (_save(COLORS[LABELS], ".tif"), "color", LABELS),
    "color-RGB-bmp": (_save(COLORS[LABELS], ".bmp"), "color", LABELS),
    "color-RGBA-png": (_save(RGBA_CLEAR, ".png"), "color", LABELS),  # transparent = class 0
    "color-RGBA-tif": (_save(RGBA_CLEAR, ".tif"), "color", LABELS),
    "binary-LA-png": (_save(np.dstack([BIN * 255, np.where(BIN, 255, 0)]).astype(np.uint8),
                            ".png"), "binary", BIN),
    "soft-F-tif": (_save(F32, ".tif"), "soft", F32),
    "soft-npy-float": (_save(F32, ".npy"), "soft", F32),
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_masks_read_as_meant(tmp_path, case):
    write, kind, expected = MASK_CASES[case]
    _dataset(tmp_path, write)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_dataset(tmp_path)
    assert index.info.mask_kind == MaskKind(kind)
    target = SegmentationDataset(index.samples, index.info)[0]["mask"].numpy()
    if kind == "soft":
        np.testing.assert_allclose(target[0], expected, atol=1e-6)
    else:
        np.testing.assert_array_equal(target, expected.astype(np.int64))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_lossy_jpeg_masks_other_than_binary_are_refused_by_name(tmp_path, mode):
    array = COLORS[LABELS] if mode == "RGB" else (LABELS * 60).astype(np.uint8)
    _dataset(tmp_path, _save(array, ".jpg"))
    report = inspect_dataset(tmp_path, **({"mask_kind": "index", "num_classes": 256}
                                          if mode == "L" else {}))
    errors = [p for p in report.errors if p.code == "lossy_mask"]
    assert len(errors) == 2 and errors[0].file.endswith(".jpg")
