"""Layer 2: preprocessing and augmentation of (image, semantic map, instances) together.

``preprocess`` is NumPy/OpenCV only (every inference backend uses it); ``augment`` needs
torchvision and is imported lazily, so ONNX/LiteRT deployments do not load torch.
"""

from typing import Any

_AUGMENT_NAMES = (
    "PRESETS",
    "AugmentedSample",
    "Augmentation",
    "RESIZE_POLICIES",
    "RandomScaleCrop",
    "ResizeTo",
    "SemanticMask",
    "build_augmentation",
    "list_presets",
)

__all__ = list(_AUGMENT_NAMES)


def __getattr__(name: str) -> Any:
    if name in _AUGMENT_NAMES:
        from pixelwise.transforms import augment

        return getattr(augment, name)
    raise AttributeError(f"module 'pixelwise.transforms' has no attribute {name!r}")
