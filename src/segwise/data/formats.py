"""Reading image and mask files, and the mask kinds (:class:`MaskKind`).

Pure functions over numpy arrays: :func:`read_image` decodes an image into ``(H, W, C)`` and
:func:`read_mask_raw` decodes a mask file as stored; what the stored values mean is the work
of one module per :class:`MaskKind` in :mod:`segwise.data.masks`. Errors name the file and say
what to do.

Images are read as displayed: an EXIF ``Orientation`` tag (JPEG, PNG) is applied with Pillow's
``ImageOps.exif_transpose``. Masks are read as stored, except that an alpha channel means what
it says: transparent pixels (alpha < 128) are unlabelled background (black / 0). Binary masks
saved with grey edges (resized with interpolation, or saved as JPEG) are snapped at the midpoint
(:data:`BINARY_SNAP_RULE`).
"""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import numpy as np

from segwise.data.colorspace import (
    ColorSpace,
    ColorSpaceError,
    pil_color_space,
    tiff_channels,
    tiff_color_space,
    tiff_to_display,
)
from segwise.notices import Level, notify

__all__ = [
    "BINARY_SNAP_RULE",
    "IMAGE_SUFFIXES",
    "LOSSY_SUFFIXES",
    "MASK_SUFFIXES",
    "SNAP_AT",
    "ImageHeader",
    "MaskKind",
    "NonFinite",
    "RawMask",
    "exif_orientation",
    "grey_of_rgb",
    "image_header",
    "read_header",
    "read_image",
    "read_mask_raw",
    "rgb_codes",
    "to_unit_float",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".npy", ".jpg", ".jpeg")
#: Lossy formats: read as masks only when they hold binary masks (snapped), with a warning.
LOSSY_SUFFIXES = (".jpg", ".jpeg")
#: How grey values of a 0/255 binary mask are read (the text is shown to the user).
BINARY_SNAP_RULE = "values >= 128 are foreground, values < 128 background (midpoint of 0..255)"
#: The snapping threshold of :data:`BINARY_SNAP_RULE`.
SNAP_AT = 128
_EXIF_ORIENTATION = 0x0112

_ALPHA_NOTICE = (
    "an image with an alpha channel was read; the alpha channel is dropped "
    "(`segwise data inspect DIR` lists the files)"
)
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


class NonFinite(str, Enum):
    """What discovery does with NaN / +-inf pixels in float images (``docs/data.md``).

    - ``REFUSE``: an error per file naming the count of such pixels: ``segwise data inspect``
      exits 1 and a run is refused before it writes anything (the default).
    - ``IGNORE``: a warning per file; the dataset reads those pixels as the channel mean
      (0 after normalisation, like padding) and gives their mask pixels the pad label, so loss
      and metrics leave them out. Not available for soft masks (no ignore label).

    Masks with non-finite values (float soft masks) are refused either way.
    """

    REFUSE = "refuse"
    IGNORE = "ignore"


class MaskKind(str, Enum):
    """How a mask file encodes its labels (``AUTO`` detects it from the files).

    Each kind is implemented by one module of :mod:`segwise.data.masks` (detect, classes,
    check, read), listed in ``segwise.data.masks.MASK_KINDS``.

    - ``BINARY``: one channel with values {0, 1} or {0, 255} (255 is mapped to 1). Grey values
      of a 0/255 uint8 mask (edges of a mask resized with interpolation, JPEG noise) are
      snapped by :data:`BINARY_SNAP_RULE`, and reported per file.
    - ``INDEX``: one channel of class indices (uint8/uint16 PNG or TIFF).
    - ``PALETTE``: an indexed PNG; the pixel values are the class indices (e.g. PASCAL VOC,
      where 255 marks pixels to ignore) and the palette gives the class colours.
    - ``COLOR``: RGB masks where each class is one colour (needs a class -> colour table).
    - ``SOFT``: float masks in [0, 1] (float TIFF or ``.npy``), or a folder of several
      annotators' masks of one image, averaged; the item's mask is ``float32 (K, H, W)``.
    - ``INSTANCE``: uint16 instance-label images, 0 = background, 1..N one object each.
    - ``COCO``: a COCO JSON file of polygons / RLE (needs pycocotools).
    """

    AUTO = "auto"
    BINARY = "binary"
    INDEX = "index"
    PALETTE = "palette"
    COLOR = "color"
    SOFT = "soft"
    INSTANCE = "instance"
    COCO = "coco"


class RawMask:
    """A mask as stored: ``array`` (H, W), (H, W, 3) or float (K, H, W); ``palette`` for P PNGs;
    ``transparent``: pixels whose alpha was < 128, set to 0 (black) = background."""

    __slots__ = ("array", "palette", "transparent")

    def __init__(self, array: np.ndarray, palette: list[tuple[int, int, int]] | None = None,
                 transparent: int = 0):
        self.array = array
        self.palette = palette
        self.transparent = transparent


def _is_palette_png(data: bytes) -> bool:
    # PNG signature (8) + IHDR length/type (8) + width/height (8) + bit depth (1) -> colour type.
    return len(data) > 25 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[25] == 3


class ImageHeader(NamedTuple):
    """What an image's header says (:func:`read_header`; nothing is decoded).

    Attributes:
        height, width: the size as displayed (EXIF orientations 5..8 swap them).
        channels: channels after the colour-space rule, alpha included (PNG/JPEG/BMP alpha is
            dropped when read, see ``alpha``; TIFF channels are all kept).
        dtype: the stored dtype name (``uint8``, ``uint16``, ``float32``, ...).
        space: the file's :class:`~segwise.data.colorspace.ColorSpace`.
        orientation: the EXIF ``Orientation`` (1 = as stored).
        alpha: a PNG/JPEG/BMP with an alpha channel (dropped when read).
    """

    height: int
    width: int
    channels: int
    dtype: str
    space: ColorSpace
    orientation: int = 1
    alpha: bool = False


def read_header(path: str | Path) -> ImageHeader:
    """Read only the header of an image (size, channels, dtype, colour space, orientation).

    Raises:
        ColorSpaceError: (a ``ValueError``) naming the file when its colour space is refused
            (``segwise.data.colorspace``).
        ValueError: naming the file when it cannot be opened as an image.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, dtype, axes = series.shape, series.dtype.name, series.axes
                page = tif.pages[0]
                space = tiff_color_space(page)
                extras = len(page.extrasamples or ())
            if len(shape) == 2:
                h, w, c = shape[0], shape[1], 1
            elif axes.endswith("YX"):  # planar (C, H, W)
                h, w, c = shape[-2], shape[-1], int(np.prod(shape[:-2]))
            else:
                h, w, c = shape[0], shape[1], shape[2]
            return ImageHeader(h, w, tiff_channels(space, c, extras), dtype, space)
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            orientation = _orientation_of(im)
            if orientation in (5, 6, 7, 8):  # rotated by 90 degrees when displayed
                w, h = h, w
            space = pil_color_space(im)
            bands = len(im.getbands())
            dtype = {"I;16": "uint16", "I;16B": "uint16", "I": "int32", "F": "float32"}.get(
                im.mode, "uint8")
            if space in (ColorSpace.PALETTE, ColorSpace.CMYK, ColorSpace.YCCK):
                bands = 3 + (im.mode == "PA")
            alpha = im.mode in _ALPHA_MODES
        return ImageHeader(h, w, bands, dtype, space, orientation, alpha)
    except ColorSpaceError as err:
        raise ColorSpaceError(f"image {path} is {err}") from None
    except Exception as err:
        raise ValueError(
            f"cannot read image {path}: {err}. Re-export it as PNG/TIFF or remove it."
        ) from err


def image_header(path: str | Path) -> tuple[int, int, int, str]:
    """Read only the header of an image: ``(height, width, channels, dtype name)``
    (:func:`read_header` says more).

    Raises:
        ValueError: naming the file when it cannot be opened as an image.
    """
    head = read_header(path)
    return head.height, head.width, head.channels, head.dtype


def _orientation_of(im) -> int:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a malformed EXIF block: read the pixels as stored
        return 1


def exif_orientation(path: str | Path) -> int:
    """The EXIF ``Orientation`` (1..8) of a JPEG/PNG/BMP image, 1 when absent (header only).

    1 is "as stored"; 6 and 8 are rotated by 90 degrees when displayed, 3 by 180, 2/4/5/7
    mirrored. TIFF files are read with tifffile, as stored.
    """
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff", ".npy"):
        return 1
    from PIL import Image

    try:
        with Image.open(path) as im:
            return _orientation_of(im)
    except Exception:
        return 1  # unreadable: reported by the decoders


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into ``(H, W, C)`` in its stored dtype (uint8, uint16 or float).

    PNG and JPEG are decoded with ``torchvision.io`` (as fast as PIL on CamVid and dsb2018, see
    ``docs/benchmarks.md``, and exact for 16-bit RGB PNGs, which PIL reduces to 8 bits), TIFF
    with ``tifffile`` (any channel count, 8/16-bit or float, planar or interleaved), BMP and
    palette PNGs with PIL. Images carrying an EXIF orientation other than 1 are decoded with
    PIL and turned as displayed (``ImageOps.exif_transpose``), so a mask drawn on the displayed
    picture lines up. An alpha channel of a PNG/JPEG/BMP (RGBA, LA) is dropped with a notice
    (:func:`segwise.notices.notify`); TIFF channels are all kept. Colour spaces other than grey,
    RGB and palette follow the rules of :mod:`segwise.data.colorspace` (CMYK and YCCK JPEGs
    are decoded with Pillow and converted to RGB; Lab TIFFs are refused).

    Raises:
        ColorSpaceError: (a ``ValueError``) naming the file when its colour space is refused.
        ValueError: naming the file when it cannot be decoded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                space = tiff_color_space(page)
                axes = tif.series[0].axes
                arr = np.asarray(tif.asarray())
                colormap = page.colormap if space is ColorSpace.PALETTE else None
                bits = int(page.bitspersample)
            if arr.ndim == 2:
                arr = arr[..., None]
            elif arr.ndim == 3 and axes.endswith("YX"):
                arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) -> (H, W, C)
            if arr.ndim != 3:
                raise ValueError(f"expected a 2-D image with channels, got shape {arr.shape}")
            arr = tiff_to_display(arr, space, bits=bits, colormap=colormap)
            if arr.dtype == np.bool_:
                arr = arr.astype(np.uint8) * 255  # 1-bit: black and white, as PNG/BMP read
            return np.ascontiguousarray(arr)
        data = path.read_bytes()
        if not data:
            raise ValueError("the file is empty (0 bytes)")
        orientation, space = _data_header(data)
        oriented = suffix in (".png", ".jpg", ".jpeg", ".bmp") and orientation != 1
        if (suffix in (".png", ".jpg", ".jpeg") and not _is_palette_png(data) and not oriented
                and space not in (ColorSpace.CMYK, ColorSpace.YCCK)):
            import torch
            from torchvision.io import ImageReadMode, decode_image

            with warnings.catch_warnings():
                # torchvision 0.29 deprecates its decoders in favour of torchcodec; they still
                # work, match PIL's speed here and keep 16-bit RGB PNGs exact.
                warnings.simplefilter("ignore", DeprecationWarning)
                tensor = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                                      mode=ImageReadMode.UNCHANGED)
            arr = tensor.permute(1, 2, 0).numpy()
        else:
            import io

            from PIL import Image, ImageOps

            with Image.open(io.BytesIO(data)) as im:
                im = ImageOps.exif_transpose(im)  # as displayed (a no-op without EXIF)
                if im.mode == "CMYK":  # Pillow reads JPEG inks in Adobe polarity; YCCK too
                    im = im.convert("RGB")
                elif im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode == "1":
                    im = im.convert("L")
                arr = np.asarray(im)
            if arr.ndim == 2:
                arr = arr[..., None]
    except ColorSpaceError as err:
        raise ColorSpaceError(f"image {path} is {err}") from None
    except Exception as err:
        raise ValueError(
            f"cannot read image {path}: {err}. Re-export it as PNG/TIFF or remove it."
        ) from err
    if arr.shape[-1] in (2, 4):  # LA / RGBA: drop alpha
        notify(Level.INFO, _ALPHA_NOTICE)
        arr = arr[..., :-1]
    return np.ascontiguousarray(arr)


def _data_header(data: bytes) -> tuple[int, ColorSpace | None]:
    """``(EXIF orientation, colour space)`` of encoded PNG/JPEG/BMP bytes (header only)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return _orientation_of(im), pil_color_space(im)
    except ColorSpaceError:
        raise
    except Exception:
        return 1, None  # not an image PIL knows: the decoder below names the problem


def to_unit_float(arr: np.ndarray) -> np.ndarray:
    """Scale an image to float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats unchanged."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float32)


def rgb_codes(rgb: np.ndarray) -> np.ndarray:
    """One integer per colour: ``int64 (H, W)`` ``r << 16 | g << 8 | b`` of an ``(H, W, >=3)``
    8-bit RGB array (black is 0). The one encoding of colours that scans, colour masks and
    colour-coded instance masks share."""
    x = rgb[..., :3].astype(np.int64)
    return (x[..., 0] << 16) | (x[..., 1] << 8) | x[..., 2]


def grey_of_rgb(rgb: np.ndarray) -> np.ndarray | None:
    """Channel 0 of an ``(H, W, >=3)`` mask whose first three channels are equal (a grey mask
    saved as RGB), else ``None``. Scans and instance masks decide "grey or colour" here."""
    if bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
        return rgb[..., 0]
    return None


def read_mask_raw(path: str | Path) -> RawMask:
    """Decode a mask file as stored, without interpreting it.

    A directory is read as several annotators' masks of one image: each file is read and the
    stack is averaged into a soft mask ``float32 (1, H, W)`` (binary 0/1 or 0/255 masks) in [0, 1].

    An alpha channel (RGBA, LA, or a palette with transparency read as colours) is applied:
    pixels with alpha < 128 become 0 (black), i.e. background / unlabelled, and are counted in
    ``RawMask.transparent``; the alpha channel itself is then dropped.

    Raises:
        ValueError: naming the file when it cannot be decoded.
    """
    path = Path(path)
    if path.is_dir():
        return RawMask(_average_annotators(path))
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(path))
            if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] in (2, 4):
                return _apply_alpha(arr)  # LA / RGBA TIFF: alpha means what it does in PNG
        else:
            from PIL import Image

            if path.stat().st_size == 0:
                raise ValueError("the file is empty (0 bytes)")
            with Image.open(path) as im:
                palette = None
                if im.mode == "P":
                    flat = im.getpalette() or []
                    palette = [tuple(flat[i : i + 3]) for i in range(0, len(flat), 3)]
                elif im.mode in ("RGBA", "LA", "PA"):
                    return _apply_alpha(np.asarray(im.convert("LA" if im.mode == "LA"
                                                              else "RGBA")))
                arr = np.asarray(im)
                if arr.dtype == np.bool_:
                    arr = arr.astype(np.uint8)
                return RawMask(arr, palette)
    except Exception as err:
        raise ValueError(f"cannot read mask {path}: {err}. Re-export it or remove it.") from err
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    return RawMask(arr)


def _apply_alpha(arr: np.ndarray) -> RawMask:
    """``(H, W, 2|4)`` uint8 with alpha last -> transparent pixels set to 0, alpha dropped."""
    clear = arr[..., -1] < 128
    out = np.array(arr[..., :-1])
    out[clear] = 0
    if out.shape[-1] == 1:
        out = out[..., 0]
    return RawMask(out, None, int(clear.sum()))


def _average_annotators(folder: Path) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES)
    if not files:
        raise ValueError(
            f"annotator folder {folder} holds no mask files ({', '.join(MASK_SUFFIXES)})"
        )
    layers = []
    for f in files:
        arr = read_mask_raw(f).array
        if arr.ndim == 3:
            arr = arr[..., 0]
        if np.issubdtype(arr.dtype, np.floating):
            layer = arr.astype(np.float32)
        else:
            layer = (arr > 0).astype(np.float32)  # 0/1 and 0/255 both mean foreground
        if layers and layer.shape != layers[0].shape:
            raise ValueError(
                f"annotator mask {f} has size {layer.shape}, but {files[0]} has "
                f"{layers[0].shape}; all annotators' masks of one image must have one size"
            )
        layers.append(layer)
    return np.mean(layers, axis=0, dtype=np.float32)[None]
