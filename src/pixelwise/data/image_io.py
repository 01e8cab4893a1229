"""Robust reading and writing of images and label masks.

Layer 1 (NumPy, Pillow, tifffile, OpenCV; no torch). Every reader returns pixels in
display orientation (EXIF / TIFF ``Orientation`` applied) and raises
:class:`~pixelwise.core.errors.ImageReadError` with a specific reason and a hint when a
file cannot be used: missing, empty, truncated, not an image, too large (decompression
bomb) or too small.

Three readers, by what the caller needs:

* :func:`read_image` -- photos for models and display: always ``(H, W, 3) uint8`` RGB.
* :func:`read_image_raw` -- native values and channels (e.g. ``(H, W) uint16`` microscopy).
* :func:`read_label_image` -- masks: palette indices or gray values, never colour-converted.

Conventions:

* Alpha is dropped, not composited: the RGB values under transparent pixels are returned
  as stored.
* Images with more than 8 bits (16-bit PNG/TIFF, int32, float) are mapped to ``uint8`` by
  :func:`stretch_to_uint8`, a per-image robust min/max stretch between the 0.1 and 99.9
  percentiles (:data:`STRETCH_PERCENTILES`). Use :func:`read_image_raw` for real values.
* TIFF files (detected by content, not by extension) are read with tifffile, first page
  only; compressed TIFFs that tifffile cannot decode without ``imagecodecs`` fall back to
  Pillow.
* A file whose content does not match its extension (PNG data named ``.jpg``) is decoded
  normally; :func:`sniff_format` reports the mismatch and :func:`scan_images` lists it.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageFile, UnidentifiedImageError
from tqdm import tqdm

from pixelwise.core.errors import AnnotationError, DataError, ImageReadError, ShapeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "MIN_SIDE",
    "STRETCH_PERCENTILES",
    "FormatSniff",
    "ImageScan",
    "image_size",
    "list_images",
    "read_image",
    "read_image_raw",
    "read_label_image",
    "scan_images",
    "sniff_format",
    "stretch_to_uint8",
    "write_image",
    "write_label_png",
]

MAX_IMAGE_PIXELS: int = 20_000 * 20_000
"""Default decompression-bomb limit (height * width) of every reader; it replaces Pillow's."""

MIN_SIDE: int = 2
"""Default smallest accepted side, in pixels."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
"""Extensions (lower case) that :func:`list_images` picks up."""

STRETCH_PERCENTILES: tuple[float, float] = (0.1, 99.9)
"""Percentiles mapped to 0 and 255 when a >8-bit image is shown as ``uint8``."""

_PROGRESS_MIN_FILES = 50
_STRETCH_SAMPLE = 4_000_000  # percentiles are estimated on at most this many values
_HEAD_BYTES = 32
_ORIENTATION_TAG = 0x0112

_FORMAT_NAMES: dict[str, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "tiff": "TIFF",
    "bmp": "BMP",
    "webp": "WebP",
    "gif": "GIF",
}
_EXTENSION_FORMATS: dict[str, str] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".webp": "webp",
    ".gif": "gif",
}
_SUPPORTED_HINT = "expected JPEG, PNG, TIFF, BMP or WebP data"

# Formats Pillow may open. Deliberately short: e.g. EPS would run Ghostscript on load.
_PIL_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "BMP", "DIB", "WEBP", "GIF", "PPM", "JPEG2000")


def _pil_formats() -> list[str]:
    """:data:`_PIL_FORMATS` that this Pillow build can open (multi-picture JPEG comes as JPEG)."""
    Image.init()
    return [name for name in _PIL_FORMATS if name in Image.OPEN]


# Pillow's own bomb limit (PIL.Image.MAX_IMAGE_PIXELS) is a process-wide global that would
# refuse images our ``max_pixels`` allows. We lift it only while Image.open() parses the
# header (no pixels are allocated there), restore it, then check the size ourselves
# before decoding. The lock keeps our concurrent opens from racing on the global.
_PIL_LIMIT_LOCK = threading.Lock()

_Purpose = Literal["rgb", "raw", "label"]


# --------------------------------------------------------------------------- sniffing


@dataclass(frozen=True)
class FormatSniff:
    """What a file holds according to its first bytes, next to what its name says.

    Attributes:
        path: the file.
        content: ``"jpeg"``, ``"png"``, ``"tiff"``, ``"bmp"``, ``"webp"``, ``"gif"`` or None
            when the magic bytes are not a known image format (or the file is empty).
        extension: the lower-case suffix, e.g. ``".jpg"`` (``""`` when there is none).
        head: the first bytes of the file (up to 32).
        size_bytes: file size in bytes.
    """

    path: Path
    content: str | None
    extension: str
    head: bytes
    size_bytes: int

    @property
    def matches(self) -> bool:
        """True when the content is a known format and agrees with the extension."""
        return self.content is not None and _EXTENSION_FORMATS.get(self.extension) == self.content

    def describe(self) -> str:
        """One line for reports, e.g. ``"file is PNG data but named .jpg"``."""
        named = self.extension or "(no extension)"
        if self.content is None:
            return f"content is not a known image format (starts with {self.head[:16]!r})"
        name = _FORMAT_NAMES[self.content]
        if self.matches:
            return f"file is {name} data, named {named}"
        return f"file is {name} data but named {named}"


def _content_format(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def sniff_format(path: str | Path) -> FormatSniff:
    """Identify an image file by its magic bytes and compare with its extension.

    Nothing is decoded; an empty file gives ``content=None`` and ``size_bytes=0``.

    Args:
        path: the file.

    Returns:
        A :class:`FormatSniff`; ``.matches`` is False for e.g. PNG data named ``.jpg``.

    Raises:
        ImageReadError: the path does not exist, is a directory or cannot be read.

    Example:
        >>> sniff_format("tests/data/bad/png_named.jpg").describe()  # doctest: +SKIP
        'file is PNG data but named .jpg'
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "file does not exist", "check the path and the working directory")
    if path.is_dir():
        raise ImageReadError(path, "path is a directory, not an image file")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise ImageReadError(path, f"cannot read file ({exc.__class__.__name__}: {exc})",
                             "check file permissions") from exc
    return FormatSniff(path, _content_format(head), path.suffix.lower(), head, size)


def _checked_sniff(path: Path) -> FormatSniff:
    sniff = sniff_format(path)
    if sniff.size_bytes == 0:
        raise ImageReadError(path, "file is empty (0 bytes)",
                             "the download or export was probably interrupted; re-create the file")
    return sniff


def _is_png_16bit_colour(head: bytes) -> bool:
    """True for a 16-bit PNG with colour or alpha (which Pillow reduces to 8 bits)."""
    return len(head) >= 26 and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6)


# --------------------------------------------------------------------------- checks


def _check_size(path: Path, height: int, width: int, max_pixels: int, min_side: int) -> None:
    pixels = int(height) * int(width)
    if pixels > max_pixels:
        raise ImageReadError(
            path,
            f"image is {width}x{height} = {pixels:,} pixels, over the limit of {max_pixels:,} pixels",
            "this may be a decompression bomb; if you trust the file pass a larger max_pixels "
            "or tile it first",
        )
    if min(height, width) < min_side:
        raise ImageReadError(
            path,
            f"image is {width}x{height} pixels; at least {min_side}x{min_side} needed",
            "sizes are width x height; remove the file or pass a smaller min_side",
        )


def _warn_if_truncated_allowed() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        warnings.warn(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES was set to True by other code: truncated "
            "images may now load silently with grey areas; set it back to False",
            RuntimeWarning,
            stacklevel=4,
        )


# --------------------------------------------------------------------------- orientation


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels ``(H, W, ...)`` into display orientation (EXIF values 1..8)."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.swapaxes(0, 1)
    elif orientation == 6:
        array = np.rot90(array, -1)
    elif orientation == 7:
        array = array.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        array = np.rot90(array, 1)
    return np.ascontiguousarray(array)


def _valid_orientation(value: object) -> int:
    try:
        orientation = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _pil_orientation(img: Image.Image) -> int:
    try:
        return _valid_orientation(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make a photo unreadable
        return 1


# --------------------------------------------------------------------------- dtype helpers


def stretch_to_uint8(
    array: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES
) -> np.ndarray:
    """Map any numeric image to ``uint8`` by a robust per-image min/max stretch.

    The values at the low and high percentiles (computed jointly over all channels,
    ignoring NaN/inf, on a regular subsample of at most 4 M values) become 0 and 255;
    values outside are clipped. If those percentiles coincide the plain min/max is used;
    a constant image gives all zeros. Non-finite values become 0.

    Args:
        array: ``(H, W)`` or ``(H, W, C)`` of any integer, bool or float dtype.
        percentiles: ``(low, high)`` with ``0 <= low < high <= 100``.

    Returns:
        Same shape, ``uint8``.

    Raises:
        ValueError: the percentiles are out of order or range.

    Example:
        >>> stretch_to_uint8(np.array([[0, 500], [1000, 1000]], np.uint16)).tolist()
        [[0, 127], [255, 255]]
    """
    low, high = percentiles
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    values = np.asarray(array).astype(np.float32, copy=False)
    finite = np.isfinite(values)
    all_finite = bool(finite.all())
    flat = values.ravel() if all_finite else values[finite]
    if flat.size == 0:
        return np.zeros(values.shape, np.uint8)
    if flat.size > _STRETCH_SAMPLE:
        flat = flat[:: flat.size // _STRETCH_SAMPLE + 1]
    lo, hi = (float(v) for v in np.percentile(flat, [low, high]))
    if hi <= lo:
        lo, hi = float(flat.min()), float(flat.max())
        if hi <= lo:
            return np.zeros(values.shape, np.uint8)
    out = (values - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    np.clip(out, 0.0, 255.0, out=out)
    if not all_finite:
        out[~finite] = 0.0
    return np.rint(out).astype(np.uint8)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    return stretch_to_uint8(array)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _native_byteorder(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder not in ("=", "|"):
        return array.astype(array.dtype.newbyteorder("="))
    return array


def _channels_to_rgb(array: np.ndarray, path: Path) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` any dtype -> ``(H, W, 3) uint8`` (C = 1..4)."""
    if array.ndim == 3 and array.shape[2] in (1, 2):
        array = array[:, :, 0]  # gray (+ alpha)
    if array.ndim == 2:
        return _gray_to_rgb(_to_uint8(array))
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(_to_uint8(array[:, :, :3]))
    raise ImageReadError(
        path,
        f"unsupported layout: pixel array of shape {array.shape} is not gray, RGB or RGBA",
        "use read_image_raw() for multi-channel data",
    )


def _as_label_array(array: np.ndarray, path: Path) -> np.ndarray:
    """Channels and dtype policy of :func:`read_label_image`."""
    if array.ndim == 3 and array.shape[2] in (1, 2):
        array = array[:, :, 0]  # gray (+ alpha)
    if array.ndim == 3:
        if array.shape[2] in (3, 4) and array.dtype == np.uint8:
            return np.ascontiguousarray(array[:, :, :3])
        raise ImageReadError(
            path,
            f"unsupported label image: shape {array.shape}, dtype {array.dtype}",
            "colour masks must be 8-bit RGB; id masks must be single-channel",
        )
    if array.ndim != 2:
        raise ImageReadError(path, f"unsupported label image: shape {array.shape}")
    dtype = array.dtype
    if dtype in (np.uint8, np.uint16, np.int32):
        return array
    if dtype == np.bool_:
        return array.astype(np.uint8)
    info = np.iinfo(np.int32)
    if np.issubdtype(dtype, np.integer):
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ImageReadError(path, f"label values of dtype {dtype} do not fit int32")
        return array.astype(np.int32)
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise ImageReadError(
                path,
                f"label image has dtype {dtype} with non-integer values",
                "labels must be integers; this looks like an intensity image",
            )
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ImageReadError(path, "label values do not fit int32")
        return array.astype(np.int32)
    raise ImageReadError(path, f"unsupported label dtype {dtype}")


# --------------------------------------------------------------------------- Pillow path


_PIL_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError)


@contextmanager
def _open_pil(
    path: Path, sniff: FormatSniff, max_pixels: int, min_side: int | None
) -> Iterator[Image.Image]:
    """Open with Pillow, check the size (before decoding), force a full decode.

    ``min_side=None`` skips the size checks and the decode (header only).
    """
    try:
        with _PIL_LIMIT_LOCK:
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                img = Image.open(path, formats=_pil_formats())
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except UnidentifiedImageError as exc:
        if sniff.content is None:
            raise ImageReadError(path, f"not an image (content starts with {sniff.head[:16]!r})",
                                 _SUPPORTED_HINT) from exc
        raise ImageReadError(path, f"truncated or corrupt {_FORMAT_NAMES[sniff.content]} header",
                             "re-create or re-download the file") from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image too large ({exc})", "pass a larger max_pixels") from exc
    except _PIL_DECODE_ERRORS as exc:
        raise ImageReadError(path, f"cannot open image ({exc.__class__.__name__}: {exc})",
                             "re-create or re-download the file") from exc
    with img:
        if min_side is not None:
            width, height = img.size
            _check_size(path, height, width, max_pixels, min_side)
            _warn_if_truncated_allowed()
            try:
                img.load()
            except Image.DecompressionBombError as exc:
                raise ImageReadError(path, f"image too large ({exc})", "pass a larger max_pixels") from exc
            except _PIL_DECODE_ERRORS as exc:
                raise ImageReadError(
                    path,
                    f"truncated or corrupt image data ({exc.__class__.__name__}: {exc})",
                    "the file was probably cut short while copying or downloading; re-create it",
                ) from exc
        yield img


def _cv2_decode_unchanged(path: Path) -> np.ndarray:
    """Decode with OpenCV keeping bit depth; BGR(A) is turned into RGB(A)."""
    data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: works with any path encoding
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(path, "truncated or corrupt 16-bit PNG data (OpenCV could not decode it)")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    return array


_PIL_DIRECT_RGB = {"RGB"}
_PIL_SLICE_RGB = {"RGBA", "RGBX"}
_PIL_CONVERT_RGB = {"CMYK", "YCbCr", "HSV", "RGBa"}
_PIL_GRAY_8 = {"1", "L", "LA"}
_PIL_HIGH_DEPTH = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_PIL_LABEL_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX"} | _PIL_HIGH_DEPTH


def _pil_to_array(
    img: Image.Image, path: Path, sniff: FormatSniff, purpose: _Purpose
) -> np.ndarray:
    mode = img.mode
    if purpose == "label":
        if _is_png_16bit_colour(sniff.head) or mode not in _PIL_LABEL_MODES:
            raise ImageReadError(
                path,
                f"unsupported mode for a label image: {mode}"
                + (" (16-bit colour PNG)" if _is_png_16bit_colour(sniff.head) else ""),
                "label images are palette, gray (8/16/32-bit) or 8-bit RGB",
            )
        if sniff.content == "jpeg":
            warnings.warn(f"{path}: label image stored as JPEG; lossy compression alters label values",
                          UserWarning, stacklevel=4)
        return _as_label_array(_native_byteorder(np.array(img)), path)
    if _is_png_16bit_colour(sniff.head):
        array = _cv2_decode_unchanged(path)
        return array if purpose == "raw" else _channels_to_rgb(array, path)
    if purpose == "raw":
        return _native_byteorder(np.array(img))
    if mode in _PIL_DIRECT_RGB:
        return np.array(img)
    if mode in _PIL_SLICE_RGB:
        return np.ascontiguousarray(np.array(img)[:, :, :3])
    if mode in _PIL_GRAY_8:
        return _gray_to_rgb(np.array(img.convert("L")))
    if mode in ("P", "PA"):
        return np.ascontiguousarray(np.array(img.convert("RGBA"))[:, :, :3])
    if mode in _PIL_HIGH_DEPTH:
        return _gray_to_rgb(_to_uint8(_native_byteorder(np.array(img))))
    if mode in _PIL_CONVERT_RGB:
        try:
            return np.array(img.convert("RGB"))
        except ValueError:
            pass
    raise ImageReadError(path, f"unsupported image mode {mode!r}",
                         "convert the file to RGB or grayscale, or use read_image_raw()")


def _decode_pil(
    path: Path, sniff: FormatSniff, max_pixels: int, min_side: int, purpose: _Purpose
) -> np.ndarray:
    with _open_pil(path, sniff, max_pixels, min_side) as img:
        orientation = _pil_orientation(img)
        array = _pil_to_array(img, path, sniff, purpose)
    return _apply_orientation(array, orientation)


# --------------------------------------------------------------------------- tifffile path


def _needs_imagecodecs(exc: BaseException) -> bool:
    return "imagecodecs" in str(exc)


def _tiff_first_page(tif: tifffile.TiffFile, path: Path) -> tifffile.TiffPage:
    if len(tif.pages) == 0:
        raise ImageReadError(path, "TIFF holds no image (zero pages)")
    page = tif.pages.first
    if not isinstance(page, tifffile.TiffPage):
        page = page.keyframe
    return page


def _tiff_orientation(page: tifffile.TiffPage) -> int:
    tag = page.tags.get(274)
    return 1 if tag is None else _valid_orientation(tag.value)


def _decode_tiff(
    path: Path, max_pixels: int, min_side: int, purpose: _Purpose
) -> np.ndarray | None:
    """Read the first TIFF page; None when a codec is missing (caller falls back to Pillow)."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = _tiff_first_page(tif, path)
            _check_size(path, page.imagelength, page.imagewidth, max_pixels, min_side)
            axes = page.axes
            if axes not in ("YX", "YXS", "SYX"):
                raise ImageReadError(path, f"unsupported TIFF layout: axes {axes!r}, shape {page.shape}",
                                     "read volumes and stacks with tifffile directly")
            photometric = int(page.photometric)
            colormap = page.colormap
            orientation = _tiff_orientation(page)
            array = page.asarray()
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types; all mean "cannot decode"
        if _needs_imagecodecs(exc):
            return None
        raise ImageReadError(path, f"truncated or corrupt TIFF data ({exc.__class__.__name__}: {exc})",
                             "re-create or re-download the file") from exc
    array = _native_byteorder(array)
    if axes == "SYX":
        array = np.moveaxis(array, 0, -1)
    if purpose == "raw":
        return _apply_orientation(array, orientation)
    if purpose == "label":
        return _apply_orientation(_as_label_array(array, path), orientation)
    return _apply_orientation(_tiff_to_rgb(array, photometric, colormap, path), orientation)


def _tiff_to_rgb(
    array: np.ndarray, photometric: int, colormap: np.ndarray | None, path: Path
) -> np.ndarray:
    """First TIFF page ``(H, W[, C])`` -> ``(H, W, 3) uint8`` RGB, by photometric interpretation."""
    if photometric == int(tifffile.PHOTOMETRIC.PALETTE) and colormap is not None and array.ndim == 2:
        lut = np.asarray(colormap).T  # (2**bits, 3)
        if lut.max() > 255:
            lut = lut / 257.0
        lut = np.rint(lut).clip(0, 255).astype(np.uint8)
        return lut[np.clip(array, 0, len(lut) - 1)]
    if photometric == int(tifffile.PHOTOMETRIC.MINISWHITE) and array.ndim == 2:
        if array.dtype == np.bool_:
            array = ~array
        elif np.issubdtype(array.dtype, np.unsignedinteger):
            array = np.iinfo(array.dtype).max - array
        else:
            array = array.max() - array
    if photometric == int(tifffile.PHOTOMETRIC.SEPARATED):
        if array.ndim == 3 and array.shape[2] >= 4 and array.dtype == np.uint8:
            cmy = array[:, :, :3].astype(np.float32)
            key = array[:, :, 3:4].astype(np.float32)
            return np.rint((255.0 - cmy) * (255.0 - key) / 255.0).astype(np.uint8)
        raise ImageReadError(path, "unsupported TIFF: CMYK that is not 8-bit",
                             "convert it to RGB first")
    return _channels_to_rgb(array, path)


# --------------------------------------------------------------------------- readers


def _decode(path: str | Path, max_pixels: int, min_side: int, purpose: _Purpose) -> np.ndarray:
    path = Path(path)
    sniff = _checked_sniff(path)
    if sniff.content == "tiff":
        array = _decode_tiff(path, max_pixels, min_side, purpose)
        if array is not None:
            return array
    return _decode_pil(path, sniff, max_pixels, min_side, purpose)


def read_image(
    path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """Read a photo (or microscopy image) as RGB for models and display.

    EXIF orientation is applied. Gray images are replicated to 3 channels; palette
    images are expanded through their palette; alpha is dropped (not composited);
    CMYK / YCbCr are converted by Pillow (no ICC colour management). Images deeper than
    8 bits (16-bit PNG/TIFF, int32, float TIFF) go through :func:`stretch_to_uint8`
    (per-image 0.1/99.9 percentile stretch), so values are *not* comparable across images.

    Args:
        path: image file; the format is detected from the content, not the extension.
        max_pixels: refuse images with more than this many pixels (height * width).
        min_side: refuse images whose height or width is smaller.

    Returns:
        ``(H, W, 3) uint8``, RGB channel order, C-contiguous.

    Raises:
        ImageReadError: missing, empty, truncated or corrupt file; not an image; too
            large or too small; unsupported mode or layout.

    Example:
        >>> rgb = read_image("photo.jpg")  # doctest: +SKIP
        >>> rgb.shape, rgb.dtype  # doctest: +SKIP
        ((375, 500, 3), dtype('uint8'))
    """
    return _decode(path, max_pixels, min_side, "rgb")


def read_image_raw(
    path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """Read an image keeping its native dtype, channels and values.

    Only the orientation (EXIF / TIFF tag) is applied and bytes are put in native order.
    Typical results: ``(H, W) uint16`` for microscopy TIFF or 16-bit PNG, ``(H, W)
    float32`` for float TIFF, ``(H, W, 3) uint8`` RGB for photos, ``(H, W, 4) uint8``
    for RGBA or CMYK (as stored), ``(H, W) uint8`` palette *indices* for palette images,
    ``(H, W) bool`` for 1-bit images. Multi-channel arrays are channels-last
    (planar TIFFs are transposed); 16-bit colour PNGs are RGB(A) ``uint16``. Only the
    first page of a multi-page TIFF is read.

    Args:
        path: image file.
        max_pixels: refuse images with more than this many pixels (height * width).
        min_side: refuse images whose height or width is smaller.

    Returns:
        ``(H, W)`` or ``(H, W, C)`` array of the file's dtype.

    Raises:
        ImageReadError: as :func:`read_image`.

    Example:
        >>> raw = read_image_raw("nuclei.tif")  # doctest: +SKIP
        >>> raw.dtype  # doctest: +SKIP
        dtype('uint16')
    """
    return _decode(path, max_pixels, min_side, "raw")


def read_label_image(
    path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """Read a mask / label image without any palette or colour conversion.

    Never resamples. Palette PNG -> its indices; 8-bit gray -> ``uint8``; 16-bit gray ->
    ``uint16``; 32-bit integer -> ``int32``; 1-bit -> ``uint8`` 0/1; other integer TIFF
    dtypes -> ``int32``; float TIFF with integral values -> ``int32``. An alpha channel is
    ignored. 8-bit RGB(A) masks come back as ``(H, W, 3) uint8`` and the caller maps
    colours to classes. EXIF / TIFF orientation is applied as for every reader. A JPEG
    mask is read but warns (lossy compression alters labels).

    Args:
        path: mask file (PNG, TIFF, BMP...).
        max_pixels: refuse images with more than this many pixels.
        min_side: refuse images whose height or width is smaller.

    Returns:
        ``(H, W)`` ``uint8`` / ``uint16`` / ``int32`` label values, or ``(H, W, 3) uint8`` RGB.

    Raises:
        ImageReadError: as :func:`read_image`, plus CMYK / YCbCr / 16-bit colour / float
            non-integral images, which are not label images.

    Example:
        >>> labels = read_label_image("SegmentationClass/2007_000032.png")  # doctest: +SKIP
        >>> labels.dtype, labels.ndim  # doctest: +SKIP
        (dtype('uint8'), 2)
    """
    return _decode(path, max_pixels, min_side, "label")


def image_size(path: str | Path) -> tuple[int, int]:
    """Height and width from the file header, without decoding pixels.

    The EXIF / TIFF orientation is taken into account (sides swapped for orientations
    5-8), so the result equals ``read_image(path).shape[:2]`` (except for the rare PNG whose
    eXIf chunk comes after the pixel data, which is not looked for). No size limit is applied.

    Args:
        path: image file.

    Returns:
        ``(height, width)`` in pixels, display orientation.

    Raises:
        ImageReadError: missing, empty, not an image or unreadable header.

    Example:
        >>> image_size("photo.jpg")  # doctest: +SKIP
        (375, 500)
    """
    path = Path(path)
    sniff = _checked_sniff(path)
    if sniff.content == "tiff":
        try:
            with tifffile.TiffFile(path) as tif:
                page = _tiff_first_page(tif, path)
                height, width = int(page.imagelength), int(page.imagewidth)
                orientation = _tiff_orientation(page)
        except ImageReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - tifffile raises many types
            raise ImageReadError(path, f"corrupt TIFF header ({exc.__class__.__name__}: {exc})") from exc
    else:
        with _open_pil(path, sniff, MAX_IMAGE_PIXELS, None) as img:
            width, height = img.size
            # Pillow decodes a whole PNG to look for an eXIf chunk after the pixels; skip that.
            header_only_png = sniff.content == "png" and "exif" not in img.info
            orientation = 1 if header_only_png else _pil_orientation(img)
    if orientation >= 5:
        height, width = width, height
    return height, width


# --------------------------------------------------------------------------- writers


def write_label_png(
    path: str | Path, labels: np.ndarray, palette: np.ndarray | None = None, bit_depth: int | None = None
) -> None:
    """Write a label map as a lossless PNG, choosing the smallest exact encoding.

    * ``palette`` given -> palette PNG (mode ``P``); needs ``max < 256`` and
      ``max < len(palette)``.
    * no palette, ``max < 256`` -> 8-bit grayscale PNG.
    * no palette, ``max < 65536`` -> 16-bit grayscale PNG (written with OpenCV).

    :func:`read_label_image` gives back the same values (``uint8`` or ``uint16``).

    Args:
        path: destination ending in ``.png``; the parent folder must exist.
        labels: ``(H, W)`` integer or bool label ids, all ``>= 0``.
        palette: optional ``(K, 3) uint8`` RGB colour of each id, ``1 <= K <= 256``.
        bit_depth: force 8 or 16 bits for grayscale output (e.g. Cityscapes instanceIds
            and instance masks are 16-bit even when every id is below 256); None picks
            the smallest exact encoding.

    Raises:
        ShapeError: labels not ``(H, W)`` integer, or palette not ``(K, 3) uint8``.
        AnnotationError: negative values, values beyond the palette, or ``max >= 65536``.
        DataError: the path does not end in ``.png``.
        OSError: the file cannot be written.

    Example:
        >>> write_label_png("mask.png", np.array([[0, 1], [2, 1]], np.uint8))  # doctest: +SKIP
    """
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ShapeError(f"labels must be a non-empty (H, W) array, got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise ShapeError(f"labels must have an integer dtype, got {labels.dtype}")
    if path.suffix.lower() != ".png":
        raise DataError(path, f"write_label_png writes PNG, got extension {path.suffix!r}",
                        "use a .png path (JPEG would alter label values)")
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise AnnotationError(path, f"labels contain negative values (min {low})",
                              "map ignore/void labels to a non-negative id such as 255 first")
    if bit_depth not in (None, 8, 16):
        raise ValueError(f"bit_depth must be None, 8 or 16, got {bit_depth!r}")
    if bit_depth is not None and palette is not None:
        raise ValueError("bit_depth applies to grayscale PNGs; a palette PNG is always 8-bit")
    if bit_depth == 8 and high >= 256:
        raise AnnotationError(path, f"labels go up to {high}, more than an 8-bit PNG holds", "use bit_depth=16")
    if palette is not None:
        palette = np.asarray(palette)
        if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= palette.shape[0] <= 256 \
                or palette.dtype != np.uint8:
            raise ShapeError(f"palette must be (K, 3) uint8 with 1 <= K <= 256, "
                             f"got shape {palette.shape} dtype {palette.dtype}")
        if high >= 256:
            raise AnnotationError(path, f"a palette PNG holds ids 0..255, labels go up to {high}",
                                  "pass palette=None to write a 16-bit grayscale PNG")
        if high >= len(palette):
            raise AnnotationError(path, f"labels go up to {high} but the palette has only "
                                        f"{len(palette)} colours", "extend the palette")
        img = Image.fromarray(labels.astype(np.uint8))
        img.putpalette(palette.reshape(-1).tolist())  # L + palette -> P
        img.save(path, format="PNG")
    elif high < 256 and bit_depth != 16:
        Image.fromarray(labels.astype(np.uint8)).save(path, format="PNG")
    elif high < 65536:
        ok, encoded = cv2.imencode(".png", labels.astype(np.uint16))
        if not ok:
            raise DataError(path, "OpenCV failed to encode the 16-bit PNG")
        path.write_bytes(encoded.tobytes())
    else:
        raise AnnotationError(path, f"labels go up to {high}, more than a 16-bit PNG holds (65535)",
                              "store such label maps as TIFF (tifffile.imwrite) instead")


_WRITE_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def write_image(path: str | Path, image: np.ndarray, *, quality: int = 95) -> None:
    """Write an RGB (or gray) ``uint8`` image, format chosen by the extension.

    JPEG and WebP use ``quality`` (lossy); PNG, BMP and TIFF are lossless. The image is
    written as given: no EXIF orientation is stored.

    Args:
        path: destination with one of ``IMAGE_EXTENSIONS``; the parent folder must exist.
        image: ``(H, W, 3) uint8`` RGB or ``(H, W) uint8`` gray.
        quality: JPEG / WebP quality, 1..100.

    Raises:
        ShapeError: wrong shape or dtype (use :func:`stretch_to_uint8` for other dtypes).
        DataError: unknown extension.
        OSError: the file cannot be written.

    Example:
        >>> write_image("out.jpg", np.zeros((24, 32, 3), np.uint8))  # doctest: +SKIP
    """
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ShapeError(f"image must be (H, W, 3) or (H, W) uint8, got shape {image.shape} "
                         f"dtype {image.dtype}")
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(path, f"unknown image extension {path.suffix!r}",
                        f"use one of {', '.join(_WRITE_FORMATS)}")
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format=fmt, **options)


# --------------------------------------------------------------------------- folders


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files in a folder, by extension (case-insensitive), sorted.

    Hidden files and folders (name starting with ``.``, e.g. macOS ``._photo.jpg``
    resource forks) are skipped; symlinked folders are not followed.

    Args:
        folder: the folder to list.
        recursive: also look in sub-folders.

    Returns:
        Sorted paths with a suffix in :data:`IMAGE_EXTENSIONS`.

    Raises:
        DataError: the folder does not exist or is not a folder.

    Example:
        >>> list_images("tests/data/bad")[:2]  # doctest: +SKIP
        [PosixPath('tests/data/bad/empty.png'), PosixPath('tests/data/bad/good_a.png')]
    """
    folder = Path(folder)
    if not folder.is_dir():
        reason = "folder does not exist" if not folder.exists() else "not a folder"
        raise DataError(folder, reason, "check the path")
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        found.extend(Path(root) / name for name in files
                     if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(found)


@dataclass
class ImageScan:
    """Result of :func:`scan_images`.

    Attributes:
        good: files that decode fully, sorted.
        bad: one :class:`ImageReadError` per unusable file (``.path`` and ``.reason``).
        mismatched: readable files whose content does not match their extension.
    """

    good: list[Path] = field(default_factory=list)
    bad: list[ImageReadError] = field(default_factory=list)
    mismatched: list[FormatSniff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file is unusable."""
        return not self.bad

    def summary(self) -> str:
        """One line such as ``"4 readable, 2 unreadable, 1 misnamed"``."""
        return f"{len(self.good)} readable, {len(self.bad)} unreadable, {len(self.mismatched)} misnamed"


def scan_images(
    folder: str | Path,
    *,
    recursive: bool = True,
    progress: bool | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side: int = MIN_SIDE,
) -> ImageScan:
    """Check every image in a folder by a full decode; never raises on a bad file.

    Each file is decoded as :func:`read_image_raw` would (no conversion), so truncated,
    empty, misnamed-text, oversized and undersized files are all caught.

    Args:
        folder: folder to scan (see :func:`list_images`).
        recursive: also scan sub-folders.
        progress: show a tqdm bar; None shows it when there are more than 50 files.
        max_pixels: as in :func:`read_image`.
        min_side: as in :func:`read_image`.

    Returns:
        An :class:`ImageScan` with the good paths, the errors and the misnamed files.

    Raises:
        DataError: the folder does not exist.

    Example:
        >>> scan = scan_images("tests/data/bad", progress=False)  # doctest: +SKIP
        >>> [e.path.name for e in scan.bad]  # doctest: +SKIP
        ['empty.png', 'one_pixel.png', 'text_named.jpg', 'truncated.jpg']
    """
    paths = list_images(folder, recursive=recursive)
    show = len(paths) > _PROGRESS_MIN_FILES if progress is None else progress
    scan = ImageScan()
    for path in tqdm(paths, desc="checking images", unit="file", disable=not show):
        try:
            _decode(path, max_pixels, min_side, "raw")
            sniff = sniff_format(path)
        except ImageReadError as err:
            scan.bad.append(err)
            continue
        scan.good.append(path)
        if not sniff.matches:
            scan.mismatched.append(sniff)
    return scan
