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

import numpy as np

__all__ = [
    "BINARY_SNAP_RULE",
    "IMAGE_SUFFIXES",
    "LOSSY_SUFFIXES",
    "MASK_SUFFIXES",
    "SNAP_AT",
    "MaskKind",
    "RawMask",
    "exif_orientation",
    "image_header",
    "read_image",
    "read_mask_raw",
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
    "segwise: an image with an alpha channel was read; the alpha channel is dropped "
    "(`segwise data inspect DIR` lists the files)"
)


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


def image_header(path: str | Path) -> tuple[int, int, int, str]:
    """Read only the header of an image: ``(height, width, channels, dtype name)``.

    Raises:
        ValueError: naming the file when it cannot be opened as an image.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, dtype, axes = series.shape, series.dtype.name, series.axes
            if len(shape) == 2:
                return shape[0], shape[1], 1, dtype
            if axes.endswith("YX"):  # planar (C, H, W)
                return shape[-2], shape[-1], int(np.prod(shape[:-2])), dtype
            return shape[0], shape[1], shape[2], dtype
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            if _orientation_of(im) in (5, 6, 7, 8):  # rotated by 90 degrees when displayed
                w, h = h, w
            bands = len(im.getbands())
            dtype = {"I;16": "uint16", "I;16B": "uint16", "I": "int32", "F": "float32"}.get(
                im.mode, "uint8")
            if im.mode == "P":
                bands = 3
        return h, w, bands, dtype
    except Exception as err:
        raise ValueError(
            f"cannot read image {path}: {err}. Re-export it as PNG/TIFF or remove it."
        ) from err


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
    picture lines up. An alpha channel of a PNG/JPEG/BMP (RGBA, LA) is dropped with a one-time
    warning; TIFF channels are all kept.

    Raises:
        ValueError: naming the file when it cannot be decoded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                axes = tif.series[0].axes
                arr = np.asarray(tif.asarray())
                page = tif.pages[0]
                colormap = (page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE
                            else None)
            if colormap is not None and arr.ndim == 2:  # palette TIFF: the colours, like PNG
                arr = (np.asarray(colormap).T[arr] >> 8).astype(np.uint8)  # 16 -> 8 bit
            elif arr.ndim == 2:
                arr = arr[..., None]
            elif arr.ndim == 3 and axes.endswith("YX"):
                arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) -> (H, W, C)
            if arr.ndim != 3:
                raise ValueError(f"expected a 2-D image with channels, got shape {arr.shape}")
            if arr.dtype == np.bool_:
                arr = arr.astype(np.uint8) * 255  # 1-bit: black and white, as PNG/BMP read
            return np.ascontiguousarray(arr)
        data = path.read_bytes()
        if not data:
            raise ValueError("the file is empty (0 bytes)")
        oriented = suffix in (".png", ".jpg", ".jpeg", ".bmp") and _data_orientation(data) != 1
        if suffix in (".png", ".jpg", ".jpeg") and not _is_palette_png(data) and not oriented:
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
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode == "1":
                    im = im.convert("L")
                arr = np.asarray(im)
            if arr.ndim == 2:
                arr = arr[..., None]
    except Exception as err:
        raise ValueError(
            f"cannot read image {path}: {err}. Re-export it as PNG/TIFF or remove it."
        ) from err
    if arr.shape[-1] in (2, 4):  # LA / RGBA: drop alpha
        warnings.warn(_ALPHA_NOTICE, stacklevel=2)
        arr = arr[..., :-1]
    return np.ascontiguousarray(arr)


def _data_orientation(data: bytes) -> int:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return _orientation_of(im)
    except Exception:
        return 1  # not an image PIL knows: the decoder below names the problem


def to_unit_float(arr: np.ndarray) -> np.ndarray:
    """Scale an image to float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats unchanged."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float32)


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
