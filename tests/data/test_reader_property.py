"""Issue 25, item 6: a property of the image reader. A random small image in any Pillow mode,
written by Pillow in any format the docs list (PNG, JPEG, TIFF, BMP), read back with
:func:`segwise.data.formats.read_image`, gives the pixels a reference decoder gives (Pillow,
converted as ``docs/data.md`` says; tifffile for the extra channels a TIFF keeps), or a
refusal that names the file (Lab)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segwise.data.colorspace import ColorSpaceError
from segwise.data.formats import read_image

MODES = ("1", "L", "P", "PA", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
         "LAB", "HSV", "I;16", "I;16B", "I;16L", "I", "F")
FORMATS = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF", "bmp": "BMP"}


def _writable(mode: str, fmt: str) -> bool:
    try:
        Image.new(mode, (3, 2)).save(io.BytesIO(), FORMATS[fmt])
    except (OSError, ValueError, KeyError):
        return False
    return True


CASES = [(m, f) for m in MODES for f in FORMATS if _writable(m, f)]


def _image(mode: str, h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (h, w)).astype(np.uint8) * 255).convert("1")
    if mode in ("I;16", "I;16B", "I;16L"):
        im = Image.new(mode, (w, h))
        im.putdata(rng.integers(0, 65536, h * w).tolist())
        return im
    if mode == "I":
        return Image.fromarray(rng.integers(-70000, 70000, (h, w)).astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.normal(0.5, 2.0, (h, w)).astype(np.float32))
    bands = len(Image.new(mode, (1, 1)).getbands())
    data = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    im = Image.frombytes(mode, (w, h), data.tobytes())
    if mode in ("P", "PA"):
        im.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    return im


def _reference(path, mode: str, fmt: str) -> np.ndarray:
    """What the file means, decoded by Pillow and converted by the documented rules."""
    with Image.open(path) as im:
        im.load()
        if im.mode == "1":
            ref = np.asarray(im.convert("L"))
        elif im.mode in ("P", "CMYK", "YCbCr"):
            ref = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
        elif im.mode == "PA":
            ref = np.asarray(im.convert("RGBA"))
        elif im.mode == "I;16B":
            ref = np.asarray(im).astype(np.uint16)
        else:
            ref = np.asarray(im)
    if ref.ndim == 2:
        ref = ref[..., None]
    if fmt != "tif":
        return ref[..., :-1] if ref.shape[-1] in (2, 4) else ref  # alpha dropped
    with tifffile.TiffFile(path) as tif:  # a TIFF keeps its extra channels, as stored
        page = tif.pages[0]
        stored = np.asarray(tif.asarray())
        colour = int(page.samplesperpixel) - len(page.extrasamples or ())
    stored = stored[..., None] if stored.ndim == 2 else stored
    colour_ref = ref[..., :3] if ref.shape[-1] >= 3 else ref[..., :colour]
    return np.concatenate([colour_ref, stored[..., colour:]], axis=-1)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(case=st.sampled_from(CASES), h=st.integers(1, 6), w=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_every_mode_and_format_reads_as_the_reference_decoder_or_is_refused_by_name(
        tmp_path_factory, case, h, w, seed):
    mode, fmt = case
    path = tmp_path_factory.mktemp("prop") / f"img.{fmt}"
    _image(mode, h, w, seed).save(path, FORMATS[fmt])
    if mode == "LAB":
        with pytest.raises(ColorSpaceError, match=str(path).replace(".", r"\.")):
            read_image(path)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alpha notice
        got = read_image(path)
    ref = _reference(path, mode, fmt)
    assert got.shape == ref.shape, (mode, fmt, got.shape, ref.shape)
    if fmt == "jpg":  # torchvision's and Pillow's libjpeg may round chroma differently
        np.testing.assert_allclose(got.astype(np.int64), ref.astype(np.int64), atol=2)
    else:
        assert got.dtype == ref.dtype, (mode, fmt, got.dtype, ref.dtype)
        np.testing.assert_array_equal(got, ref)


def test_the_cases_cover_every_documented_format():
    assert {f for _, f in CASES} == set(FORMATS)
    assert {"CMYK", "YCbCr", "LAB", "PA", "I;16", "F"} <= {m for m, _ in CASES}
