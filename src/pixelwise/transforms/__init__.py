"""Layer 2: preprocessing and augmentation of (image, semantic map, instances) together."""

from pixelwise.transforms.augment import (
    PRESETS,
    AugmentedSample,
    Augmentation,
    RESIZE_POLICIES,
    RandomScaleCrop,
    ResizeTo,
    SemanticMask,
    build_augmentation,
    list_presets,
)

__all__ = [
    "PRESETS",
    "AugmentedSample",
    "Augmentation",
    "RESIZE_POLICIES",
    "RandomScaleCrop",
    "ResizeTo",
    "SemanticMask",
    "build_augmentation",
    "list_presets",
]
