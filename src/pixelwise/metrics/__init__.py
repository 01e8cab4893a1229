"""Segmentation metrics: streaming confusion matrix, derived scores, boundary F1 (layer 3).

Example:
    >>> import numpy as np
    >>> from pixelwise.metrics import ConfusionMatrix
    >>> cm = ConfusionMatrix(num_classes=2)
    >>> cm.update(np.array([[0, 1]]), np.array([[0, 1]]))
    >>> cm.compute().miou
    1.0
"""

from pixelwise.metrics.confusion import (
    ConfusionMatrix,
    LabelRangeError,
    SegmentationMetrics,
    boundary_f1,
    metrics_from_matrix,
)

__all__ = [
    "ConfusionMatrix",
    "LabelRangeError",
    "SegmentationMetrics",
    "boundary_f1",
    "metrics_from_matrix",
]
