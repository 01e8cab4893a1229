"""Label-map cleanup: small regions, holes, morphological smoothing (NumPy + OpenCV)."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from pixelwise.core.errors import ShapeError


def _check(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ShapeError(f"labels must be (H, W), got shape {labels.shape}")
    return labels


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    count, comp, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return count, comp, stats[:, cv2.CC_STAT_AREA]


def _surrounding_label(labels: np.ndarray, region: np.ndarray, exclude: int) -> int | None:
    ring = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~region
    values = labels[ring]
    values = values[values != exclude]
    if values.size == 0:
        return None
    uniq, counts = np.unique(values, return_counts=True)
    return int(uniq[np.argmax(counts)])


def remove_small_regions(
    labels: np.ndarray, min_size: int, ignore_index: int = 255, keep_ids: Iterable[int] = ()
) -> np.ndarray:
    """Replace connected regions smaller than ``min_size`` pixels by their most common neighbour.

    Args:
        labels: ``(H, W)`` integer class ids.
        min_size: regions with fewer pixels are absorbed.
        ignore_index: never changed, never used as a replacement.
        keep_ids: classes whose regions are never removed.

    Returns:
        A cleaned copy, same shape and dtype.
    """
    labels = _check(labels)
    if min_size <= 1:
        return labels.copy()
    out = labels.copy()
    keep = set(int(k) for k in keep_ids) | {ignore_index}
    for class_id in np.unique(labels):
        if int(class_id) in keep:
            continue
        count, comp, areas = _components(labels == class_id)
        for index in range(1, count):
            if areas[index] >= min_size:
                continue
            region = comp == index
            replacement = _surrounding_label(out, region, int(class_id))
            if replacement is not None and replacement != ignore_index:
                out[region] = replacement
    return out


def fill_holes(labels: np.ndarray, class_ids: Iterable[int], max_hole_size: int | None = None, ignore_index: int = 255) -> np.ndarray:
    """Fill enclosed holes of the given classes (holes touching the border are not holes).

    Args:
        labels: ``(H, W)`` integer class ids.
        class_ids: classes whose holes are filled (in order; later classes win overlaps).
        max_hole_size: only fill holes up to this many pixels (None: any size).
        ignore_index: void pixels inside a region are filled too.

    Returns:
        A filled copy.
    """
    labels = _check(labels)
    out = labels.copy()
    for class_id in class_ids:
        mask = out == class_id
        if not mask.any():
            continue
        background = (~mask).astype(np.uint8)
        count, comp, areas = _components(background)
        border = set(np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]])).tolist())
        for index in range(1, count):
            if index in border:
                continue
            if max_hole_size is not None and areas[index] > max_hole_size:
                continue
            out[comp == index] = class_id
    return out


def smooth_labels(labels: np.ndarray, radius: int = 1, ignore_index: int = 255) -> np.ndarray:
    """Majority (mode) filter over a ``(2r+1)^2`` window: removes jagged edges and specks.

    Ties keep the current label. Void pixels stay void.
    """
    labels = _check(labels)
    if radius <= 0:
        return labels.copy()
    size = 2 * radius + 1
    classes = [int(c) for c in np.unique(labels) if c != ignore_index]
    if len(classes) <= 1:
        return labels.copy()
    kernel = np.ones((size, size), np.float32)
    votes = np.stack([cv2.filter2D((labels == c).astype(np.float32), -1, kernel, borderType=cv2.BORDER_REPLICATE) for c in classes])
    best = np.asarray(classes)[votes.argmax(axis=0)]
    current_votes = np.zeros(labels.shape, np.float32)
    for index, c in enumerate(classes):
        current_votes[labels == c] = votes[index][labels == c]
    keep_current = current_votes >= votes.max(axis=0)
    out = np.where(keep_current, labels, best).astype(labels.dtype)
    out[labels == ignore_index] = ignore_index
    return out
