"""Segmentation models: registry, factory, base model and weight loading (layer 3).

Example:
    >>> import torch
    >>> from pixelwise.models import create_model
    >>> model = create_model("unet-resnet18", num_classes=3)
    >>> model.predict(torch.rand(1, 3, 50, 70)).shape
    torch.Size([1, 3, 50, 70])
"""

from pixelwise.models.registry import (
    ModelConfigError,
    ModelSpec,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)
from pixelwise.models.semantic import (
    SegmentationModel,
    pad_to_divisor,
    padded_size,
    to_channels_last,
)
from pixelwise.models.weights import LoadReport, WeightsError, load_weights, save_weights

__all__ = [
    "LoadReport",
    "ModelConfigError",
    "ModelSpec",
    "SegmentationModel",
    "WeightsError",
    "create_model",
    "get_model_spec",
    "list_models",
    "load_weights",
    "pad_to_divisor",
    "padded_size",
    "register_model",
    "save_weights",
    "to_channels_last",
]
