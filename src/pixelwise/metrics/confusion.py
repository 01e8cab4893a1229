"""Streaming confusion matrix and the semantic-segmentation metrics derived from it.

Count first, reduce second: :class:`ConfusionMatrix` accumulates a ``(K, K)`` int64
matrix (rows = target class, columns = predicted class) with one ``bincount`` per
update; :func:`metrics_from_matrix` turns it into a :class:`SegmentationMetrics`.

Conventions for per-class arrays ``(K,)`` float64:

* NaN for a class absent from both prediction and target (nothing to score); such
  classes are left out of macro means (``miou``, ``mean_dice``, ``macro_*``).
* Otherwise a zero division counts as 0 (e.g. precision of a class never predicted but
  present in the target), like torchmetrics and scikit-learn.

Example:
    >>> import numpy as np
    >>> cm = ConfusionMatrix(num_classes=3)
    >>> cm.update(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [2, 255]]))
    >>> m = cm.compute()
    >>> float(m.pixel_accuracy), float(m.miou)
    (1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pixelwise.core.errors import PixelwiseError, ShapeError

__all__ = [
    "ConfusionMatrix",
    "LabelRangeError",
    "SegmentationMetrics",
    "boundary_f1",
    "metrics_from_matrix",
]

ArrayLike = np.ndarray | torch.Tensor
_LUT_SIZE = 1 << 16


class LabelRangeError(PixelwiseError, ValueError):
    """Labels outside ``[0, K)`` (and not ``ignore_index`` for the target)."""


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (float64)."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one confusion matrix. Build with :func:`metrics_from_matrix`.

    Attributes:
        matrix: ``(K, K)`` int64 counts, rows = target class, columns = predicted class.
        support: ``(K,)`` int64 target pixels per class.
        pixel_accuracy: correct pixels / counted pixels (NaN if none counted).
        iou: ``(K,)`` float64 ``tp / (tp + fp + fn)``.
        dice: ``(K,)`` float64 ``2 tp / (2 tp + fp + fn)`` (equals per-class F1).
        precision: ``(K,)`` float64 ``tp / (tp + fp)``.
        recall: ``(K,)`` float64 ``tp / (tp + fn)``.
        miou: mean of ``iou`` over classes that appear (NaN-mean).
        mean_dice: mean of ``dice`` over classes that appear.
        frequency_weighted_iou: ``sum_k support_k / N * iou_k``.
        micro_precision, micro_recall, micro_f1: pooled over pixels; for single-label
            segmentation all three equal ``pixel_accuracy``.
        macro_precision, macro_recall, macro_f1: unweighted means over classes that
            appear (``macro_recall`` is the "mean class accuracy").
        weighted_precision, weighted_recall, weighted_f1: means weighted by ``support``.
    """

    matrix: np.ndarray
    support: np.ndarray
    pixel_accuracy: float
    iou: np.ndarray
    dice: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    miou: float
    mean_dice: float
    frequency_weighted_iou: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    _per_class: tuple[str, ...] = field(
        default=("iou", "dice", "precision", "recall"), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != self.matrix.shape[1]:
            raise ShapeError(f"matrix must be (K, K), got {self.matrix.shape}")
        k = self.matrix.shape[0]
        for name in (*self._per_class, "support"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape != (k,):
                raise ShapeError(
                    f"{name} must be a ({k},) array to match the {k}x{k} matrix, "
                    f"got {getattr(arr, 'shape', type(arr).__name__)}"
                )

    @property
    def num_classes(self) -> int:
        """K."""
        return int(self.matrix.shape[0])

    @property
    def f1(self) -> np.ndarray:
        """``(K,)`` per-class F1, identical to :attr:`dice`."""
        return self.dice

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-friendly dict: floats, lists and ``None`` for NaN.

        Args:
            class_names: optional K names; adds ``"per_class"`` keyed by name.

        Returns:
            All scalar metrics, per-class lists, ``"support"`` and ``"matrix"``
            (list of K rows).

        Raises:
            ShapeError: ``class_names`` does not have K entries.
        """
        out: dict[str, Any] = {"num_classes": self.num_classes}
        for name in (
            "pixel_accuracy",
            "miou",
            "mean_dice",
            "frequency_weighted_iou",
            "micro_precision",
            "micro_recall",
            "micro_f1",
            "macro_precision",
            "macro_recall",
            "macro_f1",
            "weighted_precision",
            "weighted_recall",
            "weighted_f1",
        ):
            out[name] = _json_float(getattr(self, name))
        for name in self._per_class:
            out[name] = [_json_float(v) for v in getattr(self, name).tolist()]
        out["support"] = [int(v) for v in self.support.tolist()]
        out["matrix"] = [[int(v) for v in row] for row in self.matrix.tolist()]
        if class_names is not None:
            names = list(class_names)
            if len(names) != self.num_classes:
                raise ShapeError(
                    f"class_names has {len(names)} entries, expected {self.num_classes}"
                )
            out["per_class"] = {
                name: {
                    **{m: out[m][i] for m in self._per_class},
                    "support": out["support"][i],
                }
                for i, name in enumerate(names)
            }
        return out


def metrics_from_matrix(matrix: np.ndarray | torch.Tensor) -> SegmentationMetrics:
    """Reduce a confusion matrix to :class:`SegmentationMetrics`.

    Args:
        matrix: ``(K, K)`` non-negative integer counts, rows = target, columns = prediction.

    Returns:
        The metrics (see the module docstring for NaN and zero-division rules).

    Raises:
        ShapeError: not a square 2-D matrix.
    """
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    cm = np.asarray(matrix).astype(np.int64, copy=True)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ShapeError(f"confusion matrix must be (K, K) with K >= 1, got {cm.shape}")
    tp = np.diag(cm)
    support = cm.sum(axis=1)  # tp + fn
    predicted = cm.sum(axis=0)  # tp + fp
    fp = predicted - tp
    fn = support - tp
    total = int(cm.sum())
    absent = (support + predicted) == 0

    def per_class(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = _safe_ratio(num, den)
        out[absent] = np.nan
        return out

    iou = per_class(tp, tp + fp + fn)
    dice = per_class(2 * tp, 2 * tp + fp + fn)
    precision = per_class(tp, tp + fp)
    recall = per_class(tp, tp + fn)
    accuracy = float(tp.sum() / total) if total else math.nan
    if total:
        freq = support / total
        fw_iou = float(np.sum(freq[support > 0] * iou[support > 0]))
    else:
        fw_iou = math.nan

    def weighted(values: np.ndarray) -> float:
        if not support.sum():
            return math.nan
        return float(np.sum(np.nan_to_num(values) * support) / support.sum())

    return SegmentationMetrics(
        matrix=cm,
        support=support,
        pixel_accuracy=accuracy,
        iou=iou,
        dice=dice,
        precision=precision,
        recall=recall,
        miou=_nanmean(iou),
        mean_dice=_nanmean(dice),
        frequency_weighted_iou=fw_iou,
        micro_precision=accuracy,
        micro_recall=accuracy,
        micro_f1=accuracy,
        macro_precision=_nanmean(precision),
        macro_recall=_nanmean(recall),
        macro_f1=_nanmean(dice),
        weighted_precision=weighted(precision),
        weighted_recall=weighted(recall),
        weighted_f1=weighted(dice),
    )


def _to_numpy_labels(x: ArrayLike, name: str) -> np.ndarray:
    """Integer labels as a NumPy array (zero-copy for CPU tensors)."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex():
            raise ShapeError(
                f"{name} must hold integer class labels, got {x.dtype}; "
                "for logits (B, K, H, W) pass logits.argmax(1)"
            )
        arr = x.detach().cpu().numpy()
    else:
        arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ShapeError(
            f"{name} must hold integer class labels, got {arr.dtype}; "
            "for logits (B, K, H, W) pass logits.argmax(1)"
        )
    return arr


class ConfusionMatrix:
    """Streaming ``(K, K)`` confusion matrix for semantic segmentation.

    Args:
        num_classes: K.
        ignore_index: target value whose pixels are not counted (any value outside
            ``[0, K)`` is allowed, e.g. 255).

    Example:
        >>> import torch
        >>> cm = ConfusionMatrix(num_classes=2)
        >>> cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
        >>> cm.matrix
        array([[1, 1],
               [0, 0]])
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index={ignore_index} is a valid class of [0, {num_classes}); "
                "choose a value outside, e.g. 255"
            )
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self._lut: np.ndarray | None = None

    @property
    def matrix(self) -> np.ndarray:
        """Copy of the ``(K, K)`` int64 counts (rows = target, columns = prediction)."""
        return self._matrix.copy()

    def reset(self) -> None:
        """Zero the counts."""
        self._matrix[:] = 0

    def update(self, preds: ArrayLike, target: ArrayLike) -> None:
        """Count one image ``(H, W)`` or a batch ``(B, H, W)``.

        Args:
            preds: predicted class labels, integer, values in ``[0, K)``.
            target: true class labels, integer, same shape, values in ``[0, K)`` or
                ``ignore_index``.

        Raises:
            ShapeError: shapes differ, not 2-D/3-D, or non-integer dtype (logits).
            LabelRangeError: a prediction outside ``[0, K)`` or a target outside
                ``[0, K)`` that is not ``ignore_index``.
        """
        p = _to_numpy_labels(preds, "preds")
        t = _to_numpy_labels(target, "target")
        if p.shape != t.shape or p.ndim not in (2, 3):
            raise ShapeError(
                f"preds and target must both be (H, W) or (B, H, W) with equal shapes, "
                f"got preds {p.shape} and target {t.shape}"
            )
        if p.size == 0:
            return
        self._matrix += self._count(p.ravel(), t.ravel())

    def _count(self, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``(K, K)`` counts of flat label arrays; validates ranges."""
        k = self.num_classes
        p_min, p_max = int(p.min()), int(p.max())
        if p_min < 0 or p_max >= k:
            raise LabelRangeError(
                f"predictions must be in [0, {k}), found range [{p_min}, {p_max}]"
            )
        # Row offsets (label * K) come from a lookup table for labels in [0, 65536):
        # row K collects ignored pixels, row K + 1 flags invalid labels.
        t_min, t_max = int(t.min()), int(t.max())
        if t_min >= 0 and t_max < _LUT_SIZE:
            rows = np.take(self._row_lut(), t)
        else:
            rows = t.astype(np.intp)
            rows[(rows < 0) | (rows >= k)] = k + 1
            rows[t == self.ignore_index] = k
            rows *= k
        np.add(rows, p, out=rows, casting="unsafe")
        counts = np.bincount(rows, minlength=(k + 2) * k).reshape(k + 2, k)
        if counts[k + 1].any():
            bad = t[rows // k == k + 1]
            raise LabelRangeError(
                f"target labels must be in [0, {k}) or ignore_index={self.ignore_index}, "
                f"found {sorted({int(v) for v in np.unique(bad)[:5]})}"
            )
        return counts[:k]

    def _row_lut(self) -> np.ndarray:
        """``(65536,)`` intp: target label -> first bin of its row (built once)."""
        if self._lut is None:
            k = self.num_classes
            lut = np.full(_LUT_SIZE, (k + 1) * k, dtype=np.intp)
            lut[:k] = np.arange(k) * k
            if 0 <= self.ignore_index < _LUT_SIZE:
                lut[self.ignore_index] = k * k
            self._lut = lut
        return self._lut

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts (e.g. from a parallel worker).

        Raises:
            ValueError: different ``num_classes``.
        """
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix "
                f"into a {self.num_classes}-class one"
            )
        self._matrix += other._matrix

    def compute(self) -> SegmentationMetrics:
        """Metrics of everything counted since the last :meth:`reset`."""
        return metrics_from_matrix(self._matrix)

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self._matrix.sum())})"
        )


def _class_boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels with a 4-neighbour of a different label."""
    edge = np.zeros(labels.shape, dtype=bool)
    vertical = labels[1:, :] != labels[:-1, :]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def boundary_f1(
    pred: ArrayLike,
    target: ArrayLike,
    tolerance_px: float = 2,
    *,
    num_classes: int | None = None,
    ignore_index: int = 255,
    average: str = "macro",
) -> float | np.ndarray:
    """Boundary F1 score (BF score, Csurka et al. 2013) per class.

    A class's boundary is the set of its pixels with a 4-neighbour of another label (the
    image border is not a boundary). A predicted boundary pixel is correct when a target
    boundary pixel of the same class lies within ``tolerance_px`` (Euclidean), and vice
    versa for recall. Pixels whose target is ``ignore_index`` are never scored (neither
    as predicted nor as target boundary), but the rim of an ignored region counts as a
    target boundary of the class beside it: in VOC-style masks the ignore band outlines
    the objects.

    Args:
        pred: ``(H, W)`` integer predicted labels.
        target: ``(H, W)`` integer true labels (``ignore_index`` allowed).
        tolerance_px: distance tolerance in pixels (>= 0).
        num_classes: K; default ``max label + 1`` over both maps (ignored label excluded).
        ignore_index: target label excluded from scoring.
        average: ``"macro"`` (NaN-mean over classes) or ``"none"`` (per class).

    Returns:
        ``"macro"``: a float (NaN if no class has a boundary). ``"none"``: ``(K,)`` float64,
        NaN for classes with no boundary in either map.

    Raises:
        ShapeError: shapes differ or are not 2-D, or non-integer dtypes.
        LabelRangeError: a label outside ``[0, num_classes)`` (target: and not ignored).
        ValueError: unknown ``average`` or negative tolerance.

    Example:
        >>> import numpy as np
        >>> t = np.zeros((8, 8), np.int64); t[:, 4:] = 1
        >>> p = np.zeros((8, 8), np.int64); p[:, 5:] = 1
        >>> boundary_f1(p, t, tolerance_px=1)
        1.0
    """
    import cv2

    if average not in ("macro", "none"):
        raise ValueError(f"average must be 'macro' or 'none', got {average!r}")
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    p = _to_numpy_labels(pred, "pred")
    t = _to_numpy_labels(target, "target")
    if p.shape != t.shape or p.ndim != 2:
        raise ShapeError(
            f"pred and target must both be (H, W) with equal shapes, got {p.shape} and {t.shape}"
        )
    valid = t != ignore_index
    if num_classes is None:
        top = max(int(p.max()) if p.size else -1, int(t[valid].max()) if valid.any() else -1)
        num_classes = top + 1
    if p.size:
        p_min, p_max = int(p.min()), int(p.max())
        if p_min < 0 or p_max >= num_classes:
            raise LabelRangeError(
                f"predictions must be in [0, {num_classes}), found range [{p_min}, {p_max}]"
            )
        t_valid = t[valid]
        if t_valid.size and (int(t_valid.min()) < 0 or int(t_valid.max()) >= num_classes):
            raise LabelRangeError(
                f"target labels must be in [0, {num_classes}) or ignore_index={ignore_index}"
            )
    p_edges = _class_boundaries(p) & valid
    t_edges = _class_boundaries(t) & valid
    scores = np.full(num_classes, np.nan, dtype=np.float64)
    for cls in np.union1d(np.unique(p[p_edges]), np.unique(t[t_edges])).tolist():
        pb = p_edges & (p == cls)
        tb = t_edges & (t == cls)
        n_p, n_t = int(pb.sum()), int(tb.sum())
        if n_p == 0 or n_t == 0:
            scores[cls] = 0.0
            continue
        # Every pixel queried lies in the bounding box of both boundaries, so the
        # distance transforms can run on that crop only.
        rows = np.flatnonzero((pb | tb).any(axis=1))
        cols = np.flatnonzero((pb | tb).any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        pb, tb = pb[box], tb[box]
        # distanceTransform gives each pixel's distance to the nearest zero pixel.
        dist_to_t = cv2.distanceTransform(
            (~tb).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
        )
        dist_to_p = cv2.distanceTransform(
            (~pb).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
        )
        precision = float((dist_to_t[pb] <= tolerance_px).mean())
        recall = float((dist_to_p[tb] <= tolerance_px).mean())
        total = precision + recall
        scores[cls] = 2 * precision * recall / total if total > 0 else 0.0
    if average == "none":
        return scores
    return _nanmean(scores)
