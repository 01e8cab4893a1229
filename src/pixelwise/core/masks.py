"""Mask operations in pure NumPy (+ pycocotools for RLE, OpenCV for contours).

Coordinate convention used by every function here (the COCO one): pixel ``(row r, col c)``
covers the square ``[c, c+1) x [r, r+1)``. Polygons and boxes are in these continuous
coordinates, so a mask's outline runs along pixel edges and a box is
``(x_min, y_min, x_max, y_max) = (c0, r0, c1 + 1, r1 + 1)``. Rasterising a polygon (ours
or pycocotools') samples pixel centres ``(c + 0.5, r + 0.5)``; the outline polygons made by
:func:`mask_to_polygons` therefore rasterise back to the same mask, pixel for pixel.

RLE dicts follow COCO: ``{"size": [H, W], "counts": str}`` (compressed) or
``{"size": [H, W], "counts": [int, ...]}`` (uncompressed, column-major runs starting with 0s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from pixelwise.core.errors import AnnotationError, ShapeError

RLE = dict[str, Any]


def _check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ShapeError(f"{name} must be (H, W), got shape {mask.shape}")
    if mask.dtype != bool:
        mask = mask != 0
    return mask


# --------------------------------------------------------------------------- RLE
def rle_encode(mask: np.ndarray) -> RLE:
    """Compressed COCO RLE of one mask.

    Args:
        mask: ``(H, W)`` bool (or 0/non-0).

    Returns:
        ``{"size": [H, W], "counts": str}`` (counts decoded to ASCII so it is JSON-ready).
    """
    mask = _check_mask(mask)
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_encode_many(masks: np.ndarray) -> list[RLE]:
    """Compressed RLEs of ``(N, H, W)`` bool masks."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ShapeError(f"masks must be (N, H, W), got shape {masks.shape}")
    if len(masks) == 0:
        return []
    rles = coco_mask.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def _to_pycoco(rle: RLE, where: str = "RLE") -> dict[str, Any]:
    """Validate an RLE dict and return pycocotools' compressed form."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise AnnotationError(None, f"{where} must be a dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(int(v) >= 0 for v in size)):
        raise AnnotationError(None, f"{where} 'size' must be [height, width], got {size!r}")
    height, width = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, list):
        if any((not isinstance(c, (int, np.integer))) or c < 0 for c in counts):
            raise AnnotationError(None, f"{where}: uncompressed counts must be non-negative integers")
        total = int(sum(counts))
        if total != height * width:
            raise AnnotationError(
                None,
                f"{where}: uncompressed counts sum to {total} but size {height}x{width} needs {height * width}",
                "counts are column-major run lengths that must cover every pixel exactly once",
            )
        return coco_mask.frPyObjects({"size": [height, width], "counts": [int(c) for c in counts]}, height, width)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise AnnotationError(None, f"{where}: counts must be a string or a list of ints, got {type(counts).__name__}")
    return {"size": [height, width], "counts": counts}


def rle_decode(rle: RLE) -> np.ndarray:
    """Decode a compressed or uncompressed RLE to an ``(H, W)`` bool mask.

    Raises:
        AnnotationError: malformed dict, or uncompressed counts that do not sum to H*W,
            or compressed counts that pycocotools cannot parse to H*W pixels.
    """
    coco = _to_pycoco(rle)
    height, width = coco["size"]
    try:
        mask = coco_mask.decode(coco)
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
        raise AnnotationError(None, f"RLE counts cannot be decoded for size {height}x{width}: {exc}") from exc
    if mask.shape != (height, width):
        raise AnnotationError(None, f"RLE decoded to shape {mask.shape}, expected {(height, width)}")
    if int(coco_mask.area(coco)) != int(mask.sum()):
        raise AnnotationError(None, "RLE counts do not cover the image exactly (corrupt compressed counts)")
    return mask.astype(bool)


def rle_to_uncompressed(rle: RLE) -> RLE:
    """COCO uncompressed RLE (``counts`` a list of ints, column-major, starting with zeros)."""
    mask = rle_decode(rle)
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}


def rle_compress(rle: RLE) -> RLE:
    """Compressed form of any valid RLE (identity for compressed input)."""
    coco = _to_pycoco(rle)
    counts = coco["counts"]
    return {"size": [int(v) for v in coco["size"]], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def rle_area(rle: RLE) -> int:
    """Foreground pixel count of an RLE (pycocotools ``area``)."""
    return int(coco_mask.area(_to_pycoco(rle)))


def rle_to_box(rle: RLE) -> np.ndarray:
    """``(4,) float64`` box ``xyxy`` of an RLE (zeros for an empty mask)."""
    x, y, w, h = coco_mask.toBbox(_to_pycoco(rle)).tolist()
    return np.array([x, y, x + w, y + h], dtype=np.float64)


# ---------------------------------------------------------------------- polygons
@dataclass(frozen=True)
class Polygon:
    """One connected region's outline: an exterior ring and zero or more hole rings.

    Attributes:
        exterior: ``(K, 2) float64`` ``(x, y)`` vertices, K >= 3, not repeated at the end.
        holes: rings of the same form cut out of the exterior.
    """

    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "exterior", _check_ring(self.exterior, "exterior"))
        object.__setattr__(self, "holes", tuple(_check_ring(h, "hole") for h in self.holes))

    def area(self) -> float:
        """Shoelace area of the exterior minus the holes (continuous, not pixel count)."""
        return ring_area(self.exterior) - sum(ring_area(h) for h in self.holes)

    def perimeter(self) -> float:
        """Length of the exterior plus the holes' outlines."""
        return ring_length(self.exterior) + sum(ring_length(h) for h in self.holes)


def _check_ring(ring: np.ndarray | Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(ring, dtype=np.float64)
    if arr.ndim == 1:
        if arr.size % 2:
            raise AnnotationError(None, f"polygon {what} has an odd number of coordinates ({arr.size})")
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ShapeError(f"polygon {what} must be (K, 2) xy vertices, got shape {arr.shape}")
    if len(arr) >= 2 and np.array_equal(arr[0], arr[-1]):
        arr = arr[:-1]
    if len(arr) < 3:
        raise AnnotationError(None, f"polygon {what} has {len(arr)} distinct points; at least 3 are needed")
    if not np.isfinite(arr).all():
        raise AnnotationError(None, f"polygon {what} has non-finite coordinates")
    return arr


def ring_area(ring: np.ndarray) -> float:
    """Unsigned shoelace area of a ``(K, 2)`` ring."""
    x, y = ring[:, 0], ring[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def ring_length(ring: np.ndarray) -> float:
    """Closed length of a ``(K, 2)`` ring."""
    return float(np.linalg.norm(ring - np.roll(ring, -1, axis=0), axis=1).sum())


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0, min_area: float = 0.0) -> list[Polygon]:
    """Outline every connected region (8-connectivity) of a mask, holes kept.

    The outline follows pixel edges (see the module docstring), so
    ``polygons_to_mask(mask_to_polygons(m), *m.shape) == m`` exactly when ``tolerance`` is 0.

    Args:
        mask: ``(H, W)`` bool.
        tolerance: Douglas-Peucker tolerance in pixels (0 keeps every corner).
        min_area: drop regions whose polygon area is below this (pixels).

    Returns:
        One :class:`Polygon` per region, in OpenCV's scan order.
    """
    mask = _check_mask(mask)
    if not mask.any():
        return []
    # Upsample x2 (nearest) and trace: a contour point u of the upsampled mask lies on the
    # pixel edge ceil(u / 2) of the original, for left/right and top/bottom sides alike.
    up = np.pad(np.kron(mask.astype(np.uint8), np.ones((2, 2), np.uint8)), 1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]

    def to_ring(contour: np.ndarray) -> np.ndarray:
        pts = np.ceil((contour.reshape(-1, 2).astype(np.float64) - 1) / 2.0)
        keep = np.ones(len(pts), dtype=bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[keep]
        if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
            pts = pts[:-1]
        pts = _drop_collinear(pts)
        if tolerance > 0 and len(pts) > 3:
            approx = cv2.approxPolyDP(pts.astype(np.float32).reshape(-1, 1, 2), tolerance, True).reshape(-1, 2)
            if len(approx) >= 3:
                pts = approx.astype(np.float64)
        return pts

    polygons: list[Polygon] = []
    for index, (_next, _prev, first_child, parent) in enumerate(hierarchy):
        if parent != -1:
            continue
        exterior = to_ring(contours[index])
        if len(exterior) < 3:
            continue
        holes: list[np.ndarray] = []
        child = first_child
        while child != -1:
            ring = to_ring(contours[child])
            if len(ring) >= 3:
                holes.append(ring)
            child = hierarchy[child][0]
        polygon = Polygon(exterior, tuple(holes))
        if polygon.area() >= min_area:
            polygons.append(polygon)
    return polygons


def _drop_collinear(pts: np.ndarray) -> np.ndarray:
    """Remove vertices that lie on the straight line between their neighbours."""
    if len(pts) < 4:
        return pts
    prev_pts = np.roll(pts, 1, axis=0)
    next_pts = np.roll(pts, -1, axis=0)
    cross = (pts[:, 0] - prev_pts[:, 0]) * (next_pts[:, 1] - pts[:, 1]) - (pts[:, 1] - prev_pts[:, 1]) * (
        next_pts[:, 0] - pts[:, 0]
    )
    dot = (pts[:, 0] - prev_pts[:, 0]) * (next_pts[:, 0] - pts[:, 0]) + (pts[:, 1] - prev_pts[:, 1]) * (
        next_pts[:, 1] - pts[:, 1]
    )
    keep = ~((cross == 0) & (dot > 0))
    return pts[keep] if keep.sum() >= 3 else pts


def _rasterize_rings(rings: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Union of rings rasterised by pycocotools (pixel-centre sampling)."""
    if not rings:
        return np.zeros((height, width), dtype=bool)
    flat = [np.asarray(r, dtype=np.float64).reshape(-1).tolist() for r in rings]
    rles = coco_mask.frPyObjects(flat, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def polygons_to_mask(polygons: Sequence[Polygon | np.ndarray | Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise polygons to an ``(H, W)`` bool mask (union of exteriors minus their holes).

    Plain rings (``(K, 2)`` arrays or flat COCO ``[x0, y0, x1, y1, ...]`` lists) are
    treated as exteriors, as COCO does.
    """
    if height <= 0 or width <= 0:
        raise ShapeError(f"mask size must be positive, got {height}x{width}")
    out = np.zeros((height, width), dtype=bool)
    for item in polygons:
        polygon = item if isinstance(item, Polygon) else Polygon(np.asarray(item, dtype=np.float64))
        region = _rasterize_rings([polygon.exterior], height, width)
        if polygon.holes:
            region &= ~_rasterize_rings(list(polygon.holes), height, width)
        out |= region
    return out


def polygon_to_coco(polygons: Sequence[Polygon]) -> list[list[float]]:
    """COCO ``segmentation`` list (exteriors only; COCO has no holes; see writers for RLE)."""
    return [p.exterior.reshape(-1).tolist() for p in polygons]


def polygons_have_holes(polygons: Sequence[Polygon]) -> bool:
    """True if any polygon has a hole ring."""
    return any(p.holes for p in polygons)


def polygon_self_intersects(ring: np.ndarray) -> bool:
    """True if two non-adjacent edges of a closed ring cross (O(K^2), fine for labels)."""
    pts = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n < 4:
        return False
    a = pts
    b = np.roll(pts, -1, axis=0)

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))

    for i in range(n):
        j = np.arange(i + 2, n)
        if i == 0:
            j = j[j != n - 1]
        if len(j) == 0:
            continue
        o1 = orient(a[i], b[i], a[j])
        o2 = orient(a[i], b[i], b[j])
        o3 = orient(a[j], b[j], a[i])
        o4 = orient(a[j], b[j], b[i])
        if np.any((o1 * o2 < 0) & (o3 * o4 < 0)):
            return True
    return False


# ------------------------------------------------------------------ measurements
def mask_area(mask: np.ndarray) -> int:
    """Number of foreground pixels."""
    return int(_check_mask(mask).sum())


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """``(4,) float64`` box ``xyxy`` in edge coordinates; zeros for an empty mask."""
    mask = _check_mask(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.zeros(4, dtype=np.float64)
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """``(N, 4) float64`` boxes ``xyxy`` of ``(N, H, W)`` masks."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ShapeError(f"masks must be (N, H, W), got shape {masks.shape}")
    return np.stack([mask_to_box(m) for m in masks]) if len(masks) else np.zeros((0, 4), dtype=np.float64)


def mask_perimeter(mask: np.ndarray) -> float:
    """Length of the pixel-edge outline (exteriors plus holes), in pixels."""
    return float(sum(p.perimeter() for p in mask_to_polygons(mask)))


def mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` centre of mass in edge coordinates (pixel centres at +0.5); NaN if empty."""
    mask = _check_mask(mask)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return (float("nan"), float("nan"))
    return (float(cols.mean() + 0.5), float(rows.mean() + 0.5))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(H, W)`` masks (1.0 when both are empty)."""
    a, b = _check_mask(a, "a"), _check_mask(b, "b")
    if a.shape != b.shape:
        raise ShapeError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
