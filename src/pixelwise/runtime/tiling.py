"""Tiled inference for images too large for one forward pass (satellite, pathology, inspection).

The image is cut into overlapping ``tile x tile`` windows that the network sees at its
native pixel scale (no resizing; the normalisation and denoising of the model's
:class:`~pixelwise.transforms.preprocess.PreprocessConfig` are kept). The logits of
overlapping tiles are blended with a smooth window (raised cosine or linear ramp on the
sides that have a neighbour, so the low-quality border of a tile counts little) and the
class is the argmax (or the binary threshold) of the blended scores.

Memory stays bounded: rows are processed one band of tiles at a time, the float32
accumulator only covers one band (``K x tile x W``), finished label rows are written
straight into the ``(H, W) uint8`` output (which can be a ``.npy`` memory map on disk),
and uncompressed or zlib/LZW TIFFs are read strip by strip, so the image itself is never
held in memory. Other formats (PNG, JPEG...) are decoded once (``H x W x 3`` bytes).

Example:
    >>> import pixelwise
    >>> from pixelwise.runtime.tiling import TiledSegmenter
    >>> seg = pixelwise.load("best.pt")  # doctest: +SKIP
    >>> tiled = TiledSegmenter(seg, tile=512, overlap=64)  # doctest: +SKIP
    >>> labels = tiled.predict_labels("slide.tif", out="slide_labels.npy")  # doctest: +SKIP
    >>> labels.shape, labels.dtype  # doctest: +SKIP
    ((40000, 30000), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from pixelwise.core.errors import ImageReadError, PixelwiseError, ShapeError
from pixelwise.data.image_io import read_image, sniff_format
from pixelwise.postprocess.labels import scores_to_labels, softmax
from pixelwise.runtime.predictor import BackendOutputError, ImageInput, Segmenter
from pixelwise.runtime.results import SemanticResult
from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image

__all__ = [
    "WINDOWS",
    "TileSizeError",
    "TiledSegmenter",
    "blend_window",
    "model_divisor",
    "open_image_source",
    "predict_tiled",
    "tile_starts",
    "tiles_for",
]

#: Blending windows: weight ramps over the overlap on sides that have a neighbour.
WINDOWS = ("cosine", "linear", "flat")


class TileSizeError(PixelwiseError, ValueError):
    """A tile size or overlap that the model cannot use; the message gives the fix."""


# ------------------------------------------------------------------------ geometry
def model_divisor(segmenter: Segmenter) -> int:
    """The multiple that network input sides must have (the model's total stride).

    Looked up on the backend (``required_divisor``), then on its ``model`` (PyTorch),
    then in the preprocessing config (``divisor``).

    Returns:
        The divisor, >= 1.
    """
    backend = segmenter.backend
    for owner in (backend, getattr(backend, "model", None)):
        value = getattr(owner, "required_divisor", None)
        if isinstance(value, int) and value >= 1:
            return value
    return max(1, int(segmenter.preprocess.divisor))


def check_tile(tile: int, overlap: int, divisor: int) -> None:
    """Validate a tile size and overlap for a model whose input sides are multiples of ``divisor``.

    Raises:
        TileSizeError: ``tile`` smaller than the divisor or not a multiple of it; a negative
            overlap, or an overlap that leaves no stride (``overlap >= tile``).
    """
    if tile < divisor:
        raise TileSizeError(
            f"tile {tile} is smaller than the model's stride {divisor}: the network cannot see "
            f"a tile that small; use tile >= {divisor}, e.g. tile={max(divisor, 8 * divisor)}"
        )
    if tile % divisor:
        lower, upper = (tile // divisor) * divisor, -(-tile // divisor) * divisor
        raise TileSizeError(
            f"tile {tile} is not a multiple of the model's stride {divisor}; "
            f"use tile={lower} or tile={upper}"
        )
    if overlap < 0:
        raise TileSizeError(f"overlap must be >= 0, got {overlap}; use e.g. overlap={tile // 8}")
    if overlap >= tile:
        raise TileSizeError(
            f"overlap {overlap} must be smaller than the tile {tile} (the tile stride is tile - overlap); "
            f"use e.g. overlap={tile // 8}"
        )


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)`` with stride ``tile - overlap``.

    The last tile is aligned to the end (it may overlap its neighbour more), so every
    tile lies inside the image when ``length >= tile``; a shorter side gets one tile at 0.

    Example:
        >>> tile_starts(300, 128, 32)
        [0, 96, 172]
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(size: int, overlap: int, taper_start: bool, taper_end: bool, window: str = "cosine") -> np.ndarray:
    """1-D blending weights of one tile side.

    Args:
        size: tile side in pixels.
        overlap: ramp length in pixels (capped at ``size // 2``).
        taper_start: ramp up at the start (a neighbour tile covers it).
        taper_end: ramp down at the end.
        window: ``"cosine"`` (raised cosine), ``"linear"`` or ``"flat"`` (plain average).

    Returns:
        ``(size,) float32`` weights in ``(0, 1]``, never zero so every pixel is covered.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    weights = np.ones(size, np.float32)
    ramp_len = min(overlap, size // 2)
    if window == "flat" or ramp_len == 0:
        return weights
    t = (np.arange(ramp_len, dtype=np.float64) + 0.5) / ramp_len
    ramp = (0.5 - 0.5 * np.cos(np.pi * t)) if window == "cosine" else t
    ramp = ramp.astype(np.float32)
    if taper_start:
        weights[:ramp_len] = ramp
    if taper_end:
        weights[size - ramp_len :] = np.minimum(weights[size - ramp_len :], ramp[::-1])
    return weights


# ------------------------------------------------------------------------- sources
class ImageSource(Protocol):
    """Rows of an RGB image, read on demand.

    Attributes:
        height, width: image size in pixels.
        path: the file, or None for arrays.
    """

    height: int
    width: int
    path: str | None

    def read_rows(self, top: int, bottom: int) -> np.ndarray:
        """Rows ``[top, bottom)`` as ``(bottom - top, W, 3) uint8`` RGB."""
        ...

    def close(self) -> None:
        """Release file handles."""
        ...


class _ArraySource:
    """An image already in memory."""

    def __init__(self, image: np.ndarray, path: str | None = None) -> None:
        image = np.asarray(image)
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ShapeError(f"image must be (H, W, 3) uint8 RGB or (H, W) uint8 gray, got shape {image.shape} dtype {image.dtype}")
        self.image = image
        self.height, self.width = int(image.shape[0]), int(image.shape[1])
        self.path = path

    def read_rows(self, top: int, bottom: int) -> np.ndarray:
        rows = self.image[top:bottom]
        if rows.ndim == 2:
            rows = np.repeat(rows[:, :, None], 3, axis=2)
        return rows

    def close(self) -> None:
        return None


class _TiffStripSource:
    """A baseline 8-bit RGB / gray TIFF read segment by segment (strips or tiles).

    Only the strips or tiles that intersect the requested rows are read and decoded;
    the segments of the previous request are cached because consecutive bands overlap.
    """

    def __init__(self, path: Path) -> None:
        import tifffile

        self.path = str(path)
        self._tif = tifffile.TiffFile(path)
        try:
            page = self._tif.pages.first
            self._page = page
            self.height, self.width = int(page.imagelength), int(page.imagewidth)
            self._samples = int(page.samplesperpixel)
            self._tiled = bool(page.is_tiled)
            self._seg_h = int(page.tilelength) if self._tiled else int(page.rowsperstrip or self.height)
            self._seg_w = int(page.tilewidth) if self._tiled else self.width
            self._per_row = -(-self.width // self._seg_w)
            self._decode = page.decode
            self._cache: dict[int, np.ndarray] = {}
        except Exception:
            self._tif.close()
            raise

    @staticmethod
    def supports(path: Path) -> bool:
        """True when the first page is an 8-bit, contiguous, unrotated gray / RGB(A) image."""
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                if not tif.pages:
                    return False
                page = tif.pages.first
                orientation = page.tags.get(274)
                photometric = int(page.photometric)
                return (
                    page.dtype == np.uint8
                    and page.imagedepth == 1
                    and (orientation is None or int(orientation.value) == 1)
                    and (page.samplesperpixel == 1 or int(page.planarconfig) == 1)
                    and (
                        (photometric == int(tifffile.PHOTOMETRIC.MINISBLACK) and page.samplesperpixel in (1, 2))
                        or (photometric == int(tifffile.PHOTOMETRIC.RGB) and page.samplesperpixel in (3, 4))
                    )
                    and (page.compression == 1 or page.compression in tifffile.TIFF.DECOMPRESSORS)
                )
        except Exception:  # noqa: BLE001 - anything odd goes through the full reader instead
            return False

    def _segment(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        page, fh = self._page, self._tif.filehandle
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
        try:
            if count == 0:
                data = None
            else:
                with fh.lock:
                    fh.seek(offset)
                    data = fh.read(count)
            segment, _, shape = self._decode(data, index, jpegtables=page.jpegtables, _fullsize=self._tiled)
        except Exception as exc:  # noqa: BLE001 - tifffile raises many types
            raise ImageReadError(
                self.path, f"cannot decode TIFF segment {index} ({type(exc).__name__}: {exc})",
                "re-create the file, or convert it to an uncompressed tiled TIFF",
            ) from exc
        if segment is None:  # empty segment: zeros
            segment = np.zeros(shape, np.uint8)
        segment = np.asarray(segment).reshape(shape[1], shape[2], -1)
        self._cache[index] = segment
        return segment

    def read_rows(self, top: int, bottom: int) -> np.ndarray:
        out = np.empty((bottom - top, self.width, self._samples), np.uint8)
        used: dict[int, np.ndarray] = {}
        for seg_row in range(top // self._seg_h, (bottom - 1) // self._seg_h + 1):
            y0 = seg_row * self._seg_h
            for seg_col in range(self._per_row if self._tiled else 1):
                index = seg_row * self._per_row + seg_col if self._tiled else seg_row
                segment = self._segment(index)
                used[index] = segment
                x0 = seg_col * self._seg_w
                r0, r1 = max(top, y0), min(bottom, y0 + segment.shape[0], self.height)
                c1 = min(self.width, x0 + segment.shape[1])
                out[r0 - top : r1 - top, x0:c1] = segment[r0 - y0 : r1 - y0, : c1 - x0, : self._samples]
        self._cache = used
        if self._samples in (1, 2):
            return np.repeat(out[:, :, :1], 3, axis=2)
        return np.ascontiguousarray(out[:, :, :3])

    def close(self) -> None:
        self._cache = {}
        self._tif.close()


def open_image_source(source: ImageInput) -> ImageSource:
    """Wrap an image for row-wise reading.

    Baseline 8-bit RGB or gray TIFFs (uncompressed, or with a codec tifffile has built in:
    zlib, LZW, PackBits...) are read lazily; any other file is decoded once with
    :func:`~pixelwise.data.image_io.read_image`; arrays are used as they are.

    Args:
        source: a path or an ``(H, W, 3)`` / ``(H, W)`` uint8 array.

    Raises:
        ImageReadError: the file cannot be read.
        ShapeError: an array of the wrong shape or dtype.
    """
    if not isinstance(source, (str, Path)):
        return _ArraySource(np.asarray(source))
    path = Path(source)
    if path.is_file() and sniff_format(path).content == "tiff" and _TiffStripSource.supports(path):
        return _TiffStripSource(path)
    return _ArraySource(read_image(path), str(path))


# ------------------------------------------------------------------------- engine
@dataclass(frozen=True)
class _Tile:
    y: int
    x: int
    height: int  # valid pixels (inside the image)
    width: int
    weights: np.ndarray  # (height, width) float32


class _NpyRowWriter:
    """Write an ``(H, W)`` ``.npy`` file row band by row band with plain file writes.

    Unlike a writable memory map, written pages are not kept mapped into the process, so
    the resident memory stays bounded however large the label map is.
    """

    def __init__(self, path: Path, shape: tuple[int, int], dtype: np.dtype) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._file = path.open("wb")
        np.lib.format.write_array_header_1_0(
            self._file, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        )
        self._next_row = 0

    def __setitem__(self, rows: slice, values: np.ndarray) -> None:
        if rows.start != self._next_row:
            raise ValueError(f"rows must be written in order: expected row {self._next_row}, got {rows.start}")
        self._file.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self._next_row += values.shape[0]

    def finish(self) -> np.ndarray:
        """Close the file and map it read-only (pages load only when read)."""
        self._file.close()
        if self._next_row != self.shape[0]:
            raise ValueError(f"{self.path}: {self._next_row} of {self.shape[0]} rows written")
        return np.load(self.path, mmap_mode="r")

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._file.close()
        self.path.unlink(missing_ok=True)


def _make_output(
    out: np.ndarray | str | Path | None, shape: tuple[int, int], dtype: np.dtype
) -> np.ndarray | _NpyRowWriter:
    if out is None:
        return np.zeros(shape, dtype)
    if isinstance(out, (str, Path)):
        path = Path(out)
        if path.suffix.lower() != ".npy":
            raise ValueError(f"out must be a .npy path (streamed to disk, returned as a memory map), got {path}")
        return _NpyRowWriter(path, shape, dtype)
    array = out
    if array.shape != shape or array.dtype.kind not in "iu":
        raise ShapeError(f"out must be an integer array of shape {shape}, got {array.shape} {array.dtype}")
    return array


def _fixed_input_size(segmenter: Segmenter) -> tuple[int, int] | None:
    """``(h, w)`` when the backend only takes one spatial size (e.g. a static ONNX graph)."""
    shape = getattr(segmenter.backend, "input_shape", None)
    if shape is None or len(shape) != 4:
        return None
    h, w = shape[2], shape[3]
    if isinstance(h, (int, np.integer)) and isinstance(w, (int, np.integer)) and h > 0 and w > 0:
        return int(h), int(w)
    return None


class TiledSegmenter:
    """Run a :class:`~pixelwise.runtime.Segmenter` tile by tile at the network's native scale.

    Args:
        segmenter: any segmenter (PyTorch, ONNX Runtime...); its normalisation and
            denoising are applied per tile, its resizing is not.
        tile: tile side in pixels; a multiple of the model's stride (e.g. 32).
        overlap: pixels shared by neighbouring tiles (blended); ``0 <= overlap < tile``.
        batch_size: tiles per backend call. The network's activations grow with
            ``batch_size * tile**2`` (about 150-250 MB per 512x512 tile for a MobileNetV2
            U-Net); batch 1-2 keeps a 10000x10000 run under 1.5 GB even with PyTorch.
        window: blending window, one of :data:`WINDOWS`.

    Memory, besides the model: a float32 accumulator of ``(K + 1) x tile x W``, one band
    of the image (``tile x W x 3`` bytes) and the label output (``H x W`` bytes, or none
    when written to a ``.npy`` file).

    Raises:
        TileSizeError: a tile smaller than or not a multiple of the model's stride, or
            a bad overlap (the message says which values work).

    Example:
        >>> tiled = TiledSegmenter(segmenter, tile=256, overlap=32)  # doctest: +SKIP
        >>> tiled.predict("large.png", min_region=50).labels.shape  # doctest: +SKIP
        (6000, 8000)
    """

    def __init__(
        self,
        segmenter: Segmenter,
        tile: int = 512,
        overlap: int = 64,
        batch_size: int = 4,
        window: str = "cosine",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
        self.divisor = model_divisor(segmenter)
        fixed = _fixed_input_size(segmenter)
        if fixed is not None and (fixed[0] != fixed[1] or int(tile) != fixed[0]):
            raise TileSizeError(
                f"the model takes only {fixed[0]}x{fixed[1]} inputs (static graph); "
                + (f"use tile={fixed[0]}" if fixed[0] == fixed[1] else "re-export it with dynamic height and width")
            )
        check_tile(int(tile), int(overlap), self.divisor)
        self.segmenter = segmenter
        self.tile = int(tile)
        self.overlap = int(overlap)
        self.batch_size = int(batch_size)
        self.window = window
        # Native scale: no resizing; only tiles of a side shorter than `tile` are padded, to
        # the stride (or to the whole tile for a fixed-size model).
        self.preprocess: PreprocessConfig = replace(
            segmenter.preprocess, resize_policy="pad", input_size=None, divisor=self.tile if fixed else self.divisor
        )

    def __repr__(self) -> str:
        return (
            f"TiledSegmenter(tile={self.tile}, overlap={self.overlap}, batch_size={self.batch_size}, "
            f"window={self.window!r}, segmenter={self.segmenter!r})"
        )

    def plan(self, height: int, width: int) -> list[list[tuple[int, int]]]:
        """Tile origins ``(y, x)`` grouped by band (one list per row of tiles)."""
        ys = tile_starts(height, self.tile, self.overlap)
        xs = tile_starts(width, self.tile, self.overlap)
        return [[(y, x) for x in xs] for y in ys]

    def _tiles_of_band(self, y: int, xs: list[int], height: int, width: int, first: bool, last: bool) -> list[_Tile]:
        th, tw = min(self.tile, height), min(self.tile, width)
        wy = blend_window(th, self.overlap, not first, not last, self.window)
        tiles = []
        for i, x in enumerate(xs):
            wx = blend_window(tw, self.overlap, i > 0, i < len(xs) - 1, self.window)
            tiles.append(_Tile(y, x, th, tw, wy[:, None] * wx[None, :]))
        return tiles

    def _scores(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Logits ``(K, h, w)`` of ``(h, w, 3) uint8`` crops, ``batch_size`` per backend call."""
        out: list[np.ndarray] = []
        backend = self.segmenter.backend
        k = self.segmenter.num_classes
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            inputs = [preprocess_image(np.ascontiguousarray(c), self.preprocess)[0] for c in chunk]
            batch = np.stack(inputs).astype(np.float32, copy=False)
            scores = np.asarray(backend.predict_scores(batch))
            expected = (batch.shape[0], k, batch.shape[2], batch.shape[3])
            if scores.shape != expected:
                raise BackendOutputError(
                    f"backend {getattr(backend, 'name', '?')!r} returned scores {scores.shape} for tiles "
                    f"{batch.shape}; expected {expected} (B, K, h, w)"
                )
            for row, crop in enumerate(chunk):
                out.append(scores[row, :, : crop.shape[0], : crop.shape[1]].astype(np.float32, copy=False))
        return out

    def iter_bands(self, source: ImageSource, threshold: float | None = None, progress: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """Stream finished label rows.

        Args:
            source: see :func:`open_image_source`.
            threshold: binary models: class 1 where its blended probability >= threshold.
            progress: show a tqdm bar over tiles.

        Yields:
            ``(top, labels)``: ``labels`` is ``(rows, W)`` class ids (``uint8`` for up to
            256 classes, else ``int32``) for image rows ``[top, top + rows)``; bands come
            in order and cover the image exactly once.
        """
        from tqdm import tqdm

        if threshold is not None and not self.segmenter.is_binary:
            raise ValueError(
                f"threshold applies to binary (2-class) models; this model has {self.segmenter.num_classes} classes"
            )
        height, width = source.height, source.width
        k = self.segmenter.num_classes
        plan = self.plan(height, width)
        xs = [x for _, x in plan[0]]
        th = min(self.tile, height)
        carry: tuple[np.ndarray, np.ndarray] | None = None  # (K, r, W) scores, (r, W) weights
        bar = tqdm(total=sum(len(b) for b in plan), desc="tiles", unit="tile", disable=not progress)
        try:
            for band_index, band in enumerate(plan):
                y = band[0][0]
                acc = np.zeros((k, th, width), np.float32)
                wsum = np.zeros((th, width), np.float32)
                if carry is not None:
                    rows = carry[1].shape[0]
                    acc[:, :rows] = carry[0]
                    wsum[:rows] = carry[1]
                strip = source.read_rows(y, y + th)
                tiles = self._tiles_of_band(y, xs, height, width, band_index == 0, band_index == len(plan) - 1)
                crops = [strip[:, t.x : t.x + t.width] for t in tiles]
                del strip
                for t, scores in zip(tiles, self._scores(crops)):
                    acc[:, :, t.x : t.x + t.width] += scores * t.weights
                    wsum[:, t.x : t.x + t.width] += t.weights
                bar.update(len(tiles))
                next_y = plan[band_index + 1][0][0] if band_index + 1 < len(plan) else y + th
                done = next_y - y
                yield y, self._labels(acc[:, :done], wsum[:done], threshold)
                carry = (acc[:, done:].copy(), wsum[done:].copy()) if done < th else None
                del acc, wsum
        finally:
            bar.close()

    def _labels(self, acc: np.ndarray, wsum: np.ndarray, threshold: float | None) -> np.ndarray:
        """Class ids of finished rows, computed 64 rows at a time to keep temporaries small."""
        rows = acc.shape[1]
        out = np.empty((rows, acc.shape[2]), np.uint8 if acc.shape[0] <= 256 else np.int32)
        for r in range(0, rows, 64):
            part = acc[:, r : r + 64]
            if threshold is None:
                out[r : r + 64] = part.argmax(axis=0)  # dividing by wsum > 0 would not change it
            else:
                probabilities = softmax(part / wsum[None, r : r + 64], axis=0)
                out[r : r + 64] = scores_to_labels(probabilities, threshold=threshold, foreground_id=1)
        return out

    def predict_labels(
        self,
        image: ImageInput | ImageSource,
        *,
        threshold: float | None = None,
        out: np.ndarray | str | Path | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Label map of a (possibly huge) image in bounded memory.

        Args:
            image: a path (TIFFs are streamed), an ``(H, W, 3)`` / ``(H, W)`` uint8 array,
                or an :class:`ImageSource`.
            threshold: binary models only: probability threshold on class 1 (None: argmax).
            out: where labels go: None (a new array), a ``.npy`` path (written band by
                band, returned as a read-only memory map: for outputs larger than RAM) or a
                writable ``(H, W)`` integer array (e.g. a memory map).
            progress: show a progress bar over tiles.

        Returns:
            ``(H, W)`` class ids, ``uint8`` when the model has at most 256 classes
            (else ``int32``); the memory map when ``out`` is a path.

        Raises:
            ImageReadError: unreadable file. ShapeError: bad array or ``out``.
            ValueError: ``threshold`` on a model that is not binary.
        """
        source = image if hasattr(image, "read_rows") else open_image_source(image)  # type: ignore[arg-type]
        try:
            dtype = np.dtype(np.uint8 if self.segmenter.num_classes <= 256 else np.int32)
            labels = _make_output(out, (source.height, source.width), dtype)
            try:
                for top, rows in self.iter_bands(source, threshold=threshold, progress=progress):
                    labels[top : top + rows.shape[0]] = rows
            except BaseException:
                if isinstance(labels, _NpyRowWriter):
                    labels.abort()
                raise
            if isinstance(labels, _NpyRowWriter):
                return labels.finish()
            if isinstance(labels, np.memmap):
                labels.flush()
            return labels
        finally:
            if source is not image:
                source.close()

    def predict(
        self,
        image: ImageInput,
        threshold: float | None = None,
        min_region: int = 0,
        fill_holes: bool = False,
        smooth: int = 0,
    ) -> SemanticResult:
        """Tiled prediction of an image that fits in memory, with the usual cleanup.

        Same arguments and order of cleanup steps as :meth:`Segmenter.predict`
        (smoothing, small-region removal, hole filling), applied to the whole label map.

        Returns:
            A :class:`SemanticResult` (``labels`` ``(H, W) int32``; no probabilities).
        """
        rgb, path = Segmenter.load_image(image)
        if min_region < 0 or smooth < 0:
            raise ValueError(f"min_region and smooth must be >= 0, got {min_region} and {smooth}")
        seg = self.segmenter
        labels = self.predict_labels(rgb, threshold=threshold).astype(np.int32)
        labels = seg.clean_labels(labels, min_region=min_region, fill_holes=fill_holes, smooth=smooth)
        return SemanticResult(rgb, labels, seg.taxonomy, None, source=path, background_id=seg.background_id)


def predict_tiled(
    segmenter: Segmenter,
    source: ImageInput,
    tile: int = 512,
    overlap: int = 64,
    *,
    batch_size: int = 4,
    window: str = "cosine",
    threshold: float | None = None,
    out: np.ndarray | str | Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """One-call form of :meth:`TiledSegmenter.predict_labels`.

    Example:
        >>> labels = predict_tiled(segmenter, "scene.tif", tile=512, overlap=64)  # doctest: +SKIP
    """
    tiled = TiledSegmenter(segmenter, tile=tile, overlap=overlap, batch_size=batch_size, window=window)
    return tiled.predict_labels(source, threshold=threshold, out=out, progress=progress)


def tiles_for(height: int, width: int, tile: int, overlap: int) -> int:
    """Number of tiles (network passes) a ``height x width`` image needs."""
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))
