"""Metrics per metadata slice: does the model do worse on some cameras, lightings, places?

A slice is the set of images sharing one value of one metadata key (``camera=A``). Each
slice gets its own confusion matrix, summed from the per-image matrices, so pooled
metrics (pixel accuracy, mIoU) are computed exactly as for the whole dataset. List-valued
keys (``tags``) put an image into one slice per element. Images without the key are in
no slice of it.

Example:
    >>> import numpy as np
    >>> acc = SliceAccumulator(["camera"], num_classes=2)
    >>> acc.update({"camera": "A"}, np.array([[5, 0], [0, 5]]))
    >>> acc.update({"camera": "B"}, np.array([[5, 5], [0, 0]]))
    >>> [(s.value, round(s.pixel_accuracy, 2)) for s in acc.compute()]
    [('A', 1.0), ('B', 0.5)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelwise.core.errors import ShapeError
from pixelwise.metrics.confusion import SegmentationMetrics, metrics_from_matrix

__all__ = [
    "DEFAULT_MAX_SLICE_VALUES",
    "SliceAccumulator",
    "SliceMetrics",
    "choose_slice_keys",
    "slice_values",
]

#: Keys never chosen automatically (unique per image, or not a grouping).
_NEVER_AUTO = frozenset({"timestamp", "image_id", "file", "id"})
DEFAULT_MAX_SLICE_VALUES = 20


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        text = str(value).strip()
        return text or None
    return None


def slice_values(metadata: Mapping[str, Any], key: str) -> list[str]:
    """The slice values an image belongs to for ``key``.

    Args:
        metadata: the image's metadata.
        key: metadata key.

    Returns:
        ``[]`` when the key is missing, empty or not groupable (dicts); one string for a
        scalar; one string per distinct element for a list or tuple (``tags``).
    """
    value = metadata.get(key)
    if isinstance(value, (list, tuple, set, frozenset)):
        seen: dict[str, None] = {}
        for item in value:
            text = _scalar_text(item)
            if text is not None:
                seen.setdefault(text, None)
        return list(seen)
    text = _scalar_text(value)
    return [] if text is None else [text]


def choose_slice_keys(
    metadata: Iterable[Mapping[str, Any]],
    max_values: int = DEFAULT_MAX_SLICE_VALUES,
) -> list[str]:
    """Metadata keys worth slicing by: between 2 and ``max_values`` distinct values.

    Keys that are (nearly) unique per image, such as ``timestamp``, fall out by the
    value count; ``timestamp`` and id-like keys are never chosen.

    Args:
        metadata: one mapping per image.
        max_values: keys with more distinct values are skipped.

    Returns:
        Sorted key names.
    """
    values: dict[str, set[str]] = {}
    too_many: set[str] = set()
    for record in metadata:
        for key in record:
            if key in _NEVER_AUTO or key in too_many:
                continue
            bucket = values.setdefault(key, set())
            bucket.update(slice_values(record, key))
            if len(bucket) > max_values:
                too_many.add(key)
    return sorted(k for k, v in values.items() if k not in too_many and len(v) >= 2)


@dataclass(frozen=True)
class SliceMetrics:
    """Pooled metrics of the images sharing one metadata value.

    Attributes:
        key: metadata key (``"camera"``).
        value: the value (``"A"``).
        images: number of images in the slice.
        pixels: labelled pixels counted.
        pixel_accuracy: pooled pixel accuracy.
        miou: mean IoU over classes present in the slice's ground truth or prediction.
        mean_dice: mean Dice likewise.
        metrics: everything else (per-class IoU, confusion matrix).
    """

    key: str
    value: str
    images: int
    pixels: int
    pixel_accuracy: float
    miou: float
    mean_dice: float
    metrics: SegmentationMetrics

    def to_row(self, overall_miou: float | None = None) -> dict[str, Any]:
        """Flat dict for CSV / HTML tables; ``miou_gap`` = slice mIoU minus ``overall_miou``."""
        row: dict[str, Any] = {
            "key": self.key,
            "value": self.value,
            "images": self.images,
            "pixels": self.pixels,
            "pixel_accuracy": _clean(self.pixel_accuracy),
            "miou": _clean(self.miou),
            "mean_dice": _clean(self.mean_dice),
        }
        if overall_miou is not None:
            gap = self.miou - overall_miou
            row["miou_gap"] = _clean(gap)
        return row


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class SliceAccumulator:
    """Per (key, value) sums of per-image confusion matrices.

    Args:
        keys: metadata keys to slice by.
        num_classes: K of the ``(K, K)`` matrices.
    """

    def __init__(self, keys: Sequence[str], num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.keys = list(dict.fromkeys(keys))
        self.num_classes = int(num_classes)
        self._matrices: dict[tuple[str, str], np.ndarray] = {}
        self._images: dict[tuple[str, str], int] = {}

    def update(self, metadata: Mapping[str, Any], matrix: np.ndarray) -> None:
        """Add one image.

        Args:
            metadata: the image's metadata.
            matrix: its ``(K, K)`` confusion matrix (rows = target, columns = prediction).

        Raises:
            ShapeError: the matrix is not ``(K, K)``.
        """
        matrix = np.asarray(matrix)
        k = self.num_classes
        if matrix.shape != (k, k):
            raise ShapeError(f"confusion matrix must be ({k}, {k}), got {matrix.shape}")
        for key in self.keys:
            for value in slice_values(metadata, key):
                slot = (key, value)
                if slot not in self._matrices:
                    self._matrices[slot] = np.zeros((k, k), dtype=np.int64)
                    self._images[slot] = 0
                self._matrices[slot] += matrix.astype(np.int64, copy=False)
                self._images[slot] += 1

    def compute(self) -> list[SliceMetrics]:
        """One :class:`SliceMetrics` per seen (key, value), sorted by key then value."""
        out = []
        for key, value in sorted(self._matrices):
            metrics = metrics_from_matrix(self._matrices[(key, value)])
            out.append(
                SliceMetrics(
                    key=key,
                    value=value,
                    images=self._images[(key, value)],
                    pixels=int(metrics.matrix.sum()),
                    pixel_accuracy=metrics.pixel_accuracy,
                    miou=metrics.miou,
                    mean_dice=metrics.mean_dice,
                    metrics=metrics,
                )
            )
        return out
