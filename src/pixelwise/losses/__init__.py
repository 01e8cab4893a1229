"""Segmentation losses built by name (layer 3).

Example:
    >>> from pixelwise.losses import build_loss
    >>> loss_fn = build_loss("ce+dice", num_classes=3)
"""

from pixelwise.losses.segmentation import (
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    JaccardLoss,
    LossSpecError,
    WeightedSumLoss,
    build_loss,
    class_weights_from_pixel_counts,
    list_losses,
)

__all__ = [
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "LossSpecError",
    "WeightedSumLoss",
    "build_loss",
    "class_weights_from_pixel_counts",
    "list_losses",
]
