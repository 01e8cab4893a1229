"""Label maps and instances drawn on images: colorize, overlays, legends, contact sheets.

Stateless NumPy / OpenCV functions. Every image is ``(H, W, 3) uint8`` RGB (gray
``(H, W) uint8`` inputs are accepted and replicated to three channels); label maps are
``(H, W)`` integer class ids. Blending is ``round((1 - alpha) * image + alpha * colour)``
per channel, applied only to the pixels that carry a drawn label.

Text (legends, captions) uses OpenCV's Hershey font, which has ASCII glyphs only: other
characters are drawn as ``?``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from pixelwise.core.convert import instance_id_map
from pixelwise.core.errors import DataError, ShapeError
from pixelwise.core.labels import InstanceSet
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.viz.palette import PaletteLike, as_palette, instance_palette, text_color_for

__all__ = [
    "colorize",
    "contact_sheet",
    "draw_legend",
    "label_boundaries",
    "overlay",
    "overlay_instances",
    "save_png",
]

_FONT = cv2.FONT_HERSHEY_SIMPLEX


# ----------------------------------------------------------------------- checks
def _as_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ShapeError(
            f"{name} must be uint8, got {image.dtype} "
            "(convert with pixelwise.data.image_io.stretch_to_uint8 or scale to 0..255 first)"
        )
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ShapeError(f"{name} must be (H, W, 3) RGB or (H, W) gray, got shape {image.shape}")


def _as_labels(labels: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ShapeError(f"labels must be (H, W) integers, got shape {labels.shape} dtype {labels.dtype}")
    if shape is not None and labels.shape != tuple(shape):
        raise ShapeError(f"labels are {labels.shape[0]}x{labels.shape[1]} (HxW) but the image is {shape[0]}x{shape[1]}")
    return labels


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return alpha


def _blend_into(out: np.ndarray, colors: np.ndarray, where: np.ndarray, alpha: float) -> None:
    """``out[where] = round((1 - alpha) * out + alpha * colors)`` in place."""
    if not where.any():
        return
    base = out[where].astype(np.float32)
    paint = colors[where].astype(np.float32)
    out[where] = np.clip(np.rint((1.0 - alpha) * base + alpha * paint), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------- label maps
def colorize(labels: np.ndarray, palette: PaletteLike) -> np.ndarray:
    """Colour a label map through a palette.

    Args:
        labels: ``(H, W)`` integer class ids.
        palette: a :class:`Taxonomy` or a ``(K, 3) uint8`` table (row ``i`` = colour of id
            ``i``). Ids outside the table (or negative) are drawn black.

    Returns:
        ``(H, W, 3) uint8`` RGB.

    Example:
        >>> colorize(np.array([[0, 1]]), [(0, 0, 0), (255, 0, 0)])[0, 1].tolist()
        [255, 0, 0]
    """
    labels = _as_labels(labels)
    table = as_palette(palette)
    index = labels.astype(np.int64, copy=False)
    valid = (index >= 0) & (index < len(table))
    out = table[np.where(valid, index, 0)]
    if not valid.all():
        out[~valid] = 0
    return out


def label_boundaries(labels: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Pixels on the border between two different labels.

    A pixel is a border pixel when one of its 4-neighbours has another value; both sides
    of an edge are marked. The image frame is not a border (a region touching the edge of
    the image is not outlined along it). ``thickness > 1`` widens the line by dilation.

    Args:
        labels: ``(H, W)`` integer (or bool) map.
        thickness: line width on each side of an edge, in pixels (>= 1).

    Returns:
        ``(H, W)`` bool.
    """
    labels = _as_labels(labels)
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    border = np.zeros(labels.shape, dtype=bool)
    vertical = labels[1:, :] != labels[:-1, :]
    horizontal = labels[:, 1:] != labels[:, :-1]
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    if thickness > 1:
        size = 2 * thickness - 1
        border = cv2.dilate(border.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
    return border


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    palette: PaletteLike,
    alpha: float = 0.5,
    outline: bool = False,
    ignore_index: int | None = 255,
    skip_ids: Iterable[int] = (0,),
    outline_thickness: int = 1,
) -> np.ndarray:
    """Blend a coloured label map over an image.

    Pixels whose label is in ``skip_ids`` (background by default) or equals
    ``ignore_index`` stay exactly as in the image. Other pixels become
    ``round((1 - alpha) * image + alpha * colour)``. With ``outline`` the borders between
    labels (see :func:`label_boundaries`) inside the drawn area get the full class colour.

    Args:
        image: ``(H, W, 3) uint8`` RGB (or ``(H, W) uint8`` gray).
        labels: ``(H, W)`` integer class ids, same size.
        palette: a :class:`Taxonomy` or ``(K, 3) uint8`` colours.
        alpha: weight of the label colour, 0 (invisible) to 1 (opaque).
        outline: draw region borders opaquely.
        ignore_index: void label left transparent (None to paint it with its palette colour).
        skip_ids: further ids left transparent; ``()`` paints every id.
        outline_thickness: border width in pixels.

    Returns:
        ``(H, W, 3) uint8`` new image (the input is not modified).

    Raises:
        ShapeError: wrong shapes or dtypes, or labels of another size than the image.

    Example:
        >>> img = np.zeros((4, 4, 3), np.uint8)
        >>> lab = np.zeros((4, 4), np.int64); lab[0, 0] = 1
        >>> overlay(img, lab, [(0, 0, 0), (200, 100, 0)], alpha=0.5)[0, 0].tolist()
        [100, 50, 0]
    """
    out = _as_rgb(image).copy()
    labels = _as_labels(labels, out.shape[:2])
    alpha = _check_alpha(alpha)
    colors = colorize(labels, palette)
    hidden = [int(i) for i in skip_ids] + ([int(ignore_index)] if ignore_index is not None else [])
    drawn = ~np.isin(labels, hidden) if hidden else np.ones(labels.shape, dtype=bool)
    _blend_into(out, colors, drawn, alpha)
    if outline:
        edges = label_boundaries(labels, outline_thickness) & drawn
        out[edges] = colors[edges]
    return out


# -------------------------------------------------------------------- instances
def _instance_colors(instances: InstanceSet, colors: PaletteLike | None, seed: int) -> np.ndarray:
    n = len(instances)
    if colors is None:
        return instance_palette(n, seed)
    if isinstance(colors, Taxonomy):
        table = as_palette(colors)
        ids = np.clip(instances.class_ids, 0, len(table) - 1)
        out = table[ids]
        out[(instances.class_ids < 0) | (instances.class_ids >= len(table))] = 0
        return out
    table = as_palette(colors)
    if len(table) < n:
        raise ShapeError(f"colors has {len(table)} rows for {n} instances; give (N, 3) colours or a Taxonomy")
    return table[:n]


def overlay_instances(
    image: np.ndarray,
    instances: InstanceSet,
    alpha: float = 0.5,
    outline: bool = True,
    colors: PaletteLike | None = None,
    seed: int = 0,
    boxes: bool = False,
    outline_thickness: int = 1,
) -> np.ndarray:
    """Blend instance masks over an image, one colour per instance.

    Instances are painted in order, later ones on top (as
    :func:`pixelwise.core.convert.instance_id_map`); each pixel is blended with the
    colour of the instance visible there. Outlines follow the borders of the visible parts.

    Args:
        image: ``(H, W, 3) uint8`` RGB (or ``(H, W) uint8`` gray).
        instances: masks of the same ``(H, W)``.
        alpha: weight of the instance colour.
        outline: draw each instance's border opaquely.
        colors: None for distinct colours per instance, a :class:`Taxonomy` to colour by
            class, or an ``(N, 3) uint8`` table (row ``i`` = instance ``i``).
        seed: varies the distinct colours.
        boxes: also draw each instance's ``xyxy`` box (1 px).
        outline_thickness: border width in pixels.

    Returns:
        ``(H, W, 3) uint8`` new image.

    Raises:
        ShapeError: image and instances differ in size, or too few colours.
    """
    out = _as_rgb(image).copy()
    if instances.shape != out.shape[:2]:
        raise ShapeError(
            f"instances are {instances.height}x{instances.width} (HxW) but the image is {out.shape[0]}x{out.shape[1]}"
        )
    alpha = _check_alpha(alpha)
    if len(instances) == 0:
        return out
    table = _instance_colors(instances, colors, seed)
    ids = instance_id_map(instances)
    drawn = ids > 0
    color_map = np.zeros(out.shape, dtype=np.uint8)
    color_map[drawn] = table[ids[drawn] - 1]
    _blend_into(out, color_map, drawn, alpha)
    if outline:
        edges = label_boundaries(ids, outline_thickness) & drawn
        out[edges] = color_map[edges]
    if boxes and instances.boxes is not None:
        for (x0, y0, x1, y1), color, area in zip(instances.boxes, table, instances.areas()):
            if area == 0:
                continue
            top_left = (int(math.floor(x0)), int(math.floor(y0)))
            bottom_right = (int(math.ceil(x1)) - 1, int(math.ceil(y1)) - 1)
            cv2.rectangle(out, top_left, bottom_right, tuple(int(c) for c in color), 1)
    return out


# ------------------------------------------------------------------------- text
def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))


def _text_size(text: str, scale: float) -> tuple[int, int, int]:
    """(width, height above baseline, baseline) of a text line."""
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    return width, height, baseline


def _fit_text(text: str, max_width: int, scale: float) -> str:
    text = _ascii(text)
    if _text_size(text, scale)[0] <= max_width:
        return text
    while text and _text_size(text + "...", scale)[0] > max_width:
        text = text[:-1]
    return text + "..." if text else ""


def _put_text(canvas: np.ndarray, text: str, x: int, baseline_y: int, scale: float, color: tuple[int, int, int]) -> None:
    cv2.putText(canvas, text, (int(x), int(baseline_y)), _FONT, scale, color, 1, cv2.LINE_AA)


# ----------------------------------------------------------------------- legend
def draw_legend(
    taxonomy: Taxonomy,
    class_ids: Sequence[int] | None = None,
    swatch: int = 14,
    font_scale: float = 0.45,
    padding: int = 6,
    max_rows: int = 30,
) -> np.ndarray:
    """A legend image: one colour swatch and class name per row, on white.

    Args:
        taxonomy: colours and names.
        class_ids: classes to list, in this order (default: all). Ids unknown to the
            taxonomy are listed as ``id <n>`` with their palette colour.
        swatch: side of the colour square in pixels.
        font_scale: OpenCV font scale of the names.
        padding: margin around and between entries.
        max_rows: entries per column; more classes wrap into further columns.

    Returns:
        ``(h, w, 3) uint8`` RGB; height and width depend on the entries.

    Example:
        >>> tax = Taxonomy.from_names(["background", "cat"])
        >>> draw_legend(tax).dtype
        dtype('uint8')
    """
    ids = list(taxonomy.ids if class_ids is None else class_ids)
    table = as_palette(taxonomy, size=max(ids, default=0) + 1)
    names = [_ascii(taxonomy.name_of(i)) if i in taxonomy else f"id {int(i)}" for i in ids]
    if not ids:
        ids, names = [], ["(no classes)"]
    _, text_height, baseline = _text_size("Ag", font_scale)
    row_height = max(swatch, text_height + baseline) + padding
    text_width = max(_text_size(n, font_scale)[0] for n in names)
    column_width = swatch + padding + text_width + 2 * padding
    rows = max(1, min(len(names), max_rows))
    columns = max(1, math.ceil(len(names) / rows))
    canvas = np.full((rows * row_height + padding, columns * column_width + padding, 3), 255, dtype=np.uint8)
    for index, name in enumerate(names):
        column, row = divmod(index, rows)
        x = padding + column * column_width
        y = padding + row * row_height
        if index < len(ids):
            color = tuple(int(c) for c in table[int(ids[index])])
            cv2.rectangle(canvas, (x, y), (x + swatch - 1, y + swatch - 1), color, -1)
            cv2.rectangle(canvas, (x, y), (x + swatch - 1, y + swatch - 1), (80, 80, 80), 1)
        text_y = y + (swatch + text_height) // 2
        _put_text(canvas, name, x + swatch + padding, text_y, font_scale, (0, 0, 0))
    return canvas


# ---------------------------------------------------------------- contact sheet
def _fit_tile(tile: np.ndarray, height: int, width: int, background: int) -> np.ndarray:
    """Resize keeping the aspect ratio and centre on a ``(height, width)`` canvas."""
    h, w = tile.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) != (h, w):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
        tile = cv2.resize(tile, (new_w, new_h), interpolation=interpolation)
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = tile
    return canvas


def contact_sheet(
    tiles: Sequence[np.ndarray],
    columns: int | None = None,
    tile_size: tuple[int, int] | None = None,
    captions: Sequence[str] | None = None,
    padding: int = 4,
    background: int = 255,
    font_scale: float = 0.4,
) -> np.ndarray:
    """Arrange images in a grid, each fitted (aspect kept) into a ``tile_size`` cell.

    Output size: ``H' = rows * (tile_h + caption_h) + (rows + 1) * padding`` and
    ``W' = columns * tile_w + (columns + 1) * padding``, where ``caption_h`` is 0 without
    captions. Upscaling uses nearest neighbour (label maps stay crisp), downscaling area
    averaging.

    Args:
        tiles: ``(H, W, 3) uint8`` (or gray ``(H, W)``) images, any sizes.
        columns: cells per row (default ``ceil(sqrt(len(tiles)))``; at most ``len(tiles)``).
        tile_size: ``(tile_h, tile_w)``; default the largest height and width of the tiles.
        captions: one text per tile, drawn under it (shortened with ``...`` to fit).
        padding: gap between and around cells, in pixels.
        background: gray level of the gaps, 0..255.
        font_scale: OpenCV font scale of the captions.

    Returns:
        ``(H', W', 3) uint8`` RGB.

    Raises:
        ValueError: no tiles, or as many captions as tiles not given.
        ShapeError: a tile that is not an image.

    Example:
        >>> contact_sheet([np.zeros((8, 8, 3), np.uint8)] * 3, columns=2, padding=0).shape
        (16, 16, 3)
    """
    if len(tiles) == 0:
        raise ValueError("contact_sheet needs at least one tile")
    images = [_as_rgb(t, f"tile {i}") for i, t in enumerate(tiles)]
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"{len(captions)} captions for {len(images)} tiles")
    columns = int(columns) if columns else math.ceil(math.sqrt(len(images)))
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    if tile_size is None:
        tile_h, tile_w = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    else:
        tile_h, tile_w = (int(v) for v in tile_size)
        if tile_h < 1 or tile_w < 1:
            raise ValueError(f"tile_size must be positive (h, w), got {tile_size}")
    caption_h = 0
    if captions is not None:
        _, text_height, baseline = _text_size("Ag", font_scale)
        caption_h = text_height + baseline + 4
    cell_h = tile_h + caption_h
    sheet = np.full((rows * cell_h + (rows + 1) * padding, columns * tile_w + (columns + 1) * padding, 3),
                    int(background), dtype=np.uint8)
    text_color = text_color_for((background,) * 3)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        y = padding + row * (cell_h + padding)
        x = padding + column * (tile_w + padding)
        sheet[y : y + tile_h, x : x + tile_w] = _fit_tile(image, tile_h, tile_w, background)
        if captions is not None:
            text = _fit_text(captions[index], tile_w, font_scale)
            _put_text(sheet, text, x, y + tile_h + caption_h - baseline - 2, font_scale, text_color)
    return sheet


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` (or ``(H, W)``) ``uint8`` image as PNG; parent folders are created.

    Raises:
        DataError: the path does not end in ``.png``.
        ShapeError: not a ``uint8`` image.
    """
    from pixelwise.data.image_io import write_image

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise DataError(path, "save_png writes PNG files only", "give a path ending in .png")
    image = np.asarray(rgb)
    image = image if image.ndim == 2 else _as_rgb(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image)
    return path
