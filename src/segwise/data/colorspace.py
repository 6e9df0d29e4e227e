"""Colour spaces of image files, handled as kinds: each is detected from the file's header and has
one documented rule that turns its pixels into what segwise trains on, or a refusal naming the
file (``docs/data.md``, "Colour spaces").

========================  ==========================================================================
:class:`ColorSpace`       rule (:data:`RULES`)
========================  ==========================================================================
``GRAY``                  one channel, as stored (``L``, ``1``, ``I;16``; TIFF MinIsBlack)
``GRAY_INVERTED``         TIFF MinIsWhite (0 = white): inverted, ``max - v``, as Pillow shows it
``RGB``                   as stored (alpha of PNG/JPEG/BMP dropped; TIFF extra channels kept)
``PALETTE``               the palette's colours (PNG, BMP, TIFF)
``CMYK``                  to RGB, Pillow's formula ``R = (max - C)(max - K) / max`` (G: M, B: Y)
``YCCK``                  Adobe YCCK JPEG: libjpeg's YCCK -> CMYK, then as ``CMYK``
``YCBCR``                 TIFF YCbCr (no chroma subsampling, JPEG coefficients): JFIF -> RGB
``MULTICHANNEL``          a TIFF with other channel counts (multispectral): every channel as stored
``LAB``                   CIELab / ICCLab / ITULab TIFF: refused (convert it to RGB first)
========================  ==========================================================================

CMYK JPEGs are read in Adobe's polarity (the ink values are stored inverted, as Photoshop writes
them and libjpeg adds an Adobe APP14 marker): the convention of Pillow, OpenCV and the web
browsers, also for the rare file without the marker. CMYK TIFFs store ink values (0 = no ink).
HSV is not a colour space of any file format segwise reads (an HSV array saved as PNG or TIFF
is stored as RGB and cannot be told apart).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

__all__ = [
    "RULES",
    "ColorSpace",
    "ColorSpaceError",
    "cmyk_to_rgb",
    "pil_color_space",
    "tiff_channels",
    "tiff_color_space",
    "tiff_to_display",
]


class ColorSpaceError(ValueError):
    """An image's colour space that segwise does not convert (the message names the file's
    colour space and what to do)."""


class ColorSpace(str, Enum):
    """The colour space an image file declares (see the module docstring for each rule)."""

    GRAY = "gray"
    GRAY_INVERTED = "gray_inverted"
    RGB = "rgb"
    PALETTE = "palette"
    CMYK = "cmyk"
    YCCK = "ycck"
    YCBCR = "ycbcr"
    MULTICHANNEL = "multichannel"
    LAB = "lab"

    @property
    def converted(self) -> bool:
        """Whether the stored values are converted (not merely read as stored)."""
        return self in (ColorSpace.GRAY_INVERTED, ColorSpace.CMYK, ColorSpace.YCCK,
                        ColorSpace.YCBCR)


#: The rule applied to each colour space, as shown by ``segwise data inspect``.
RULES: dict[ColorSpace, str] = {
    ColorSpace.GRAY: "one channel, as stored",
    ColorSpace.GRAY_INVERTED: "MinIsWhite grey inverted to 0 = black (max - value), as Pillow "
                              "shows it",
    ColorSpace.RGB: "as stored",
    ColorSpace.PALETTE: "the palette's RGB colours",
    ColorSpace.CMYK: "converted to RGB: R = (max - C)(max - K) / max, G and B likewise from M and "
                     "Y (Pillow's formula; JPEG ink values in Adobe's inverted polarity)",
    ColorSpace.YCCK: "Adobe YCCK decoded to CMYK (libjpeg), then converted to RGB as CMYK",
    ColorSpace.YCBCR: "converted to RGB by the JPEG/JFIF formula (ITU-R BT.601, full range)",
    ColorSpace.MULTICHANNEL: "every channel kept as stored",
    ColorSpace.LAB: "refused: convert to RGB first",
}

# TIFF photometric interpretations (TIFF 6.0, tag 262)
_MINISWHITE, _MINISBLACK, _RGB, _PALETTE, _MASK, _SEPARATED, _YCBCR = 0, 1, 2, 3, 4, 5, 6
_LAB = {8: "CIELab", 9: "ICCLab", 10: "ITULab"}
_OTHER = {32803: "CFA (raw Bayer)", 32844: "LogL", 32845: "LogLuv", 34892: "LinearRaw",
          _MASK: "transparency mask"}
_JPEG_COMPRESSION = (6, 7)  # old-style and new-style JPEG: the codec returns RGB


def pil_color_space(im: Any) -> ColorSpace:
    """The colour space of an opened Pillow image (PNG, JPEG, BMP; header only).

    Raises:
        ColorSpaceError: for Pillow modes segwise does not read (``LAB``, ``HSV``).
    """
    mode = im.mode
    if mode == "CMYK":
        return ColorSpace.YCCK if im.info.get("adobe_transform") == 2 else ColorSpace.CMYK
    if mode in ("P", "PA"):
        return ColorSpace.PALETTE
    if mode in ("RGB", "RGBA", "RGBX", "RGBa", "YCbCr"):
        return ColorSpace.RGB
    if mode in ("LAB", "HSV"):
        raise ColorSpaceError(f"a {mode} image; convert it to RGB and save it as PNG or TIFF")
    return ColorSpace.GRAY  # 1, L, LA, La, I, I;16*, F


def _tag(page: Any, code: int, default: Any = None) -> Any:
    tag = page.tags.get(code)
    return default if tag is None else tag.value


def tiff_color_space(page: Any) -> ColorSpace:
    """The colour space of a TIFF page (``tifffile.TiffPage``; header only).

    Raises:
        ColorSpaceError: for Lab, separations other than CMYK, subsampled or non-JPEG-coefficient
            YCbCr, and the other photometric interpretations segwise does not convert.
    """
    photometric = int(page.photometric)
    extras = len(page.extrasamples or ())
    samples = int(page.samplesperpixel)
    if int(page.compression) in _JPEG_COMPRESSION and photometric == _YCBCR:
        return ColorSpace.RGB  # the JPEG codec returns RGB
    if photometric == _MINISWHITE:
        if np.dtype(page.dtype).kind == "f":
            raise ColorSpaceError("a float MinIsWhite TIFF (0 = white) has no defined "
                                  "inversion; save it as MinIsBlack")
        return ColorSpace.GRAY_INVERTED
    if photometric == _MINISBLACK:
        return ColorSpace.GRAY if samples == 1 else ColorSpace.MULTICHANNEL
    if photometric == _RGB:
        return ColorSpace.RGB
    if photometric == _PALETTE:
        return ColorSpace.PALETTE
    if photometric == _SEPARATED:
        inks = samples - extras
        if _tag(page, 332, 1) != 1 or inks != 4:  # InkSet 1 = CMYK
            raise ColorSpaceError(
                f"a {inks}-ink separation (photometric Separated, InkSet "
                f"{_tag(page, 332, 1)}); segwise converts only CMYK separations: export RGB, or "
                "save the channels as a MinIsBlack (multi-channel) TIFF to keep them")
        return ColorSpace.CMYK
    if photometric == _YCBCR:
        sub = tuple(_tag(page, 530, (2, 2)))
        coefficients = _tag(page, 529)
        reference = _tag(page, 532)
        jpeg_coefficients = coefficients is None or np.allclose(
            _rationals(coefficients, 3), (0.299, 0.587, 0.114), atol=1e-3)
        full_range = reference is None or np.allclose(
            _rationals(reference, 6), (0, 255, 128, 255, 128, 255))
        if sub != (1, 1) or not jpeg_coefficients or not full_range or page.dtype != np.uint8:
            raise ColorSpaceError(
                f"a YCbCr TIFF with chroma subsampling {sub}, coefficients {coefficients}, "
                f"reference {reference}, {np.dtype(page.dtype).name}; segwise converts only "
                "8-bit, unsubsampled, full-range JPEG YCbCr: save it as RGB")
        return ColorSpace.YCBCR
    if photometric in _LAB:
        raise ColorSpaceError(
            f"a {_LAB[photometric]} TIFF; segwise does not convert Lab (its white point and "
            "encoding vary): convert it to RGB first (e.g. skimage.color.lab2rgb) and save it")
    name = _OTHER.get(photometric, f"photometric {photometric}")
    raise ColorSpaceError(f"a {name} TIFF, which segwise does not read; export RGB or grey")


def _rationals(value: Any, n: int) -> np.ndarray:
    """``n`` TIFF RATIONALs as floats (tifffile gives them as flat numerator, denominator
    pairs, or already as numbers)."""
    flat = np.asarray(value, dtype=float).ravel()
    if flat.size == 2 * n:
        return flat[0::2] / np.where(flat[1::2] == 0, 1.0, flat[1::2])
    return flat[:n] if flat.size >= n else np.full(n, np.nan)


def tiff_channels(space: ColorSpace, samples: int, extras: int) -> int:
    """Channels of a TIFF after its colour space's rule (``samples`` per pixel as stored)."""
    if space in (ColorSpace.PALETTE, ColorSpace.CMYK, ColorSpace.YCBCR):
        return 3 + extras
    return samples


def cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """CMYK ink values ``(H, W, 4)`` (0 = no ink) as RGB ``(H, W, 3)`` of the same dtype.

    ``R = (max - C)(max - K) / max`` (G from M, B from Y), rounded to the nearest integer for
    integer dtypes (``max`` = 255 for uint8, 65535 for uint16; 1.0 for floats). For uint8 this is
    Pillow's ``Image.convert("RGB")`` exactly.
    """
    if np.issubdtype(cmyk.dtype, np.floating):
        k = 1.0 - cmyk[..., 3:4]
        return ((1.0 - cmyk[..., :3]) * k).astype(cmyk.dtype)
    top = int(np.iinfo(cmyk.dtype).max)
    x = cmyk.astype(np.int64)
    nk = top - x[..., 3:4]
    rgb = nk - (2 * x[..., :3] * nk + top) // (2 * top)  # nk - round(C * nk / max)
    return rgb.astype(cmyk.dtype)


def _ycbcr_to_rgb(arr: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = arr.shape[:2]
    im = Image.frombytes("YCbCr", (w, h), np.ascontiguousarray(arr[..., :3]).tobytes())
    return np.asarray(im.convert("RGB"))


def tiff_to_display(arr: np.ndarray, space: ColorSpace, *, bits: int,
                    colormap: np.ndarray | None = None) -> np.ndarray:
    """Apply a TIFF's colour-space rule to its pixels.

    Args:
        arr: ``(H, W, C)`` the stored samples (planar files already moved to channels last).
        space: from :func:`tiff_color_space`.
        bits: bits per sample (the range of MinIsWhite integers is ``2**bits - 1``).
        colormap: ``(3, 2**bits)`` uint16 TIFF colormap of a palette file.

    Returns:
        ``(H, W, C')``: grey, RGB or the stored channels (extra channels kept after the colours).
    """
    if space is ColorSpace.GRAY_INVERTED:
        if arr.dtype == np.bool_:
            return ~arr
        return (2**bits - 1 - arr.astype(np.int64)).astype(arr.dtype)
    if space is ColorSpace.PALETTE and colormap is not None:
        colours = (np.asarray(colormap).T[arr[..., 0]] >> 8).astype(np.uint8)  # 16 -> 8 bit
        extra = arr[..., 1:]
        return colours if not extra.shape[-1] else np.concatenate(
            [colours, extra.astype(np.uint8)], axis=-1)
    if space is ColorSpace.CMYK:
        return np.concatenate([cmyk_to_rgb(arr[..., :4]), arr[..., 4:]], axis=-1)
    if space is ColorSpace.YCBCR:
        return np.concatenate([_ycbcr_to_rgb(arr), arr[..., 3:]], axis=-1)
    return arr
