"""Colour tables for label maps and instances.

A *palette* here is a ``(K, 3) uint8`` array whose row ``i`` is the RGB colour of label
``i``. It can be built from a :class:`~pixelwise.core.taxonomy.Taxonomy` (its class
colours, the ignore index white), given directly, or generated for instances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pixelwise.core.errors import ShapeError
from pixelwise.core.taxonomy import Taxonomy, distinct_colors

PaletteLike = Taxonomy | np.ndarray | Sequence[Sequence[int]]


def as_palette(source: PaletteLike, size: int | None = None) -> np.ndarray:
    """Turn a taxonomy or a colour list into a ``(K, 3) uint8`` lookup table.

    Args:
        source: a :class:`Taxonomy` (row ``id`` is that class's colour, the ignore index is
            white, unlisted ids black) or a ``(K, 3)`` array / list of RGB triples in 0..255.
        size: minimum number of rows; shorter tables are padded with black. For a taxonomy
            the default covers every class id and the ignore index (at least 256 rows).

    Returns:
        ``(max(K, size), 3) uint8`` palette.

    Raises:
        ShapeError: a colour list that is not ``(K, 3)`` or has values outside 0..255.

    Example:
        >>> as_palette([(0, 0, 0), (255, 0, 0)])[1].tolist()
        [255, 0, 0]
    """
    if isinstance(source, Taxonomy):
        needed = max([256, source.num_classes, source.ignore_index + 1])
        return source.palette(max(needed, size or 0))
    table = np.asarray(source)
    if table.ndim != 2 or table.shape[1] != 3 or table.shape[0] == 0:
        raise ShapeError(f"palette must be (K, 3) RGB rows with K >= 1, got shape {table.shape}")
    if table.dtype != np.uint8:
        if table.dtype.kind not in "iuf" or table.min() < 0 or table.max() > 255:
            raise ShapeError(f"palette values must lie in 0..255, got dtype {table.dtype} range "
                             f"[{table.min()}, {table.max()}]")
        table = np.round(table).astype(np.uint8)
    if size is not None and size > len(table):
        table = np.concatenate([table, np.zeros((size - len(table), 3), np.uint8)])
    return np.ascontiguousarray(table)


def instance_palette(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 3) uint8`` well separated colours, one per instance, deterministic by seed."""
    if n <= 0:
        return np.zeros((0, 3), dtype=np.uint8)
    return np.asarray(distinct_colors(n, seed=seed), dtype=np.uint8).reshape(n, 3)


def text_color_for(rgb: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on the background colour ``rgb``."""
    red, green, blue = (int(v) for v in rgb[:3])
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)
