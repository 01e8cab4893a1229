"""Preprocessing adapter between a saved :class:`PreprocessConfig` and the torch dataset.

:class:`~pixelwise.data.loader.SemanticTorchDataset` lives in the data layer, which may not
import :mod:`pixelwise.transforms`; it takes any :class:`~pixelwise.data.loader.SamplePreprocessor`.
:class:`SemanticPreprocessor` is the one training uses: the same denoising, geometry and
normalisation as :func:`~pixelwise.transforms.preprocess.preprocess_image`, split in two so
the image stays ``uint8`` (cacheable, augmentable) until normalisation.

Example:
    >>> import numpy as np
    >>> from pixelwise.transforms.preprocess import PreprocessConfig
    >>> prep = SemanticPreprocessor(PreprocessConfig(input_size=(64, 64)))
    >>> image, labels = prep.place(np.zeros((30, 40, 3), np.uint8), np.zeros((30, 40), np.uint8), 255)
    >>> image.shape, image.dtype, labels.shape, tuple(prep.normalize(image).shape)
    ((64, 64, 3), dtype('uint8'), (64, 64), (3, 64, 64))
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from pixelwise.data.loader import normalize_image
from pixelwise.transforms.preprocess import (
    Geometry,
    PreprocessConfig,
    denoise_image,
    plan_geometry,
    preprocess_labels,
)

__all__ = ["SemanticPreprocessor", "place_image"]


def place_image(image: np.ndarray, geometry: Geometry, config: PreprocessConfig) -> np.ndarray:
    """Resize and pad an ``(H, W, 3) uint8`` image into the network input, staying ``uint8``.

    Same result as the geometry part of
    :func:`~pixelwise.transforms.preprocess.preprocess_image` (bilinear resize, then
    ``config.pad_value`` around the scaled image at ``geometry.offset``).

    Args:
        image: ``(H, W, 3) uint8`` RGB (already denoised if the config asks for it).
        geometry: from :func:`~pixelwise.transforms.preprocess.plan_geometry`.
        config: gives the pad value.

    Returns:
        ``(h', w', 3) uint8`` with ``(h', w') = geometry.padded``.
    """
    h, w = geometry.scaled
    if (h, w) != image.shape[:2]:
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if geometry.padded == (h, w):
        return np.ascontiguousarray(image)
    out = np.full((*geometry.padded, 3), config.pad_value, dtype=np.uint8)
    top, left = geometry.offset
    out[top : top + h, left : left + w] = image
    return out


class SemanticPreprocessor:
    """Applies a :class:`PreprocessConfig` to training samples (a ``SamplePreprocessor``).

    Args:
        config: the preprocessing saved in the checkpoint.
    """

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"SemanticPreprocessor({self.config!r})"

    def place(self, image: np.ndarray, labels: np.ndarray, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Denoise, then resize/pad image (bilinear) and labels (nearest, padding = ignore).

        Args:
            image: ``(H, W, 3) uint8`` RGB.
            labels: ``(H, W)`` integer class ids.
            ignore_index: label of padded pixels.

        Returns:
            ``(h', w', 3) uint8`` and ``(h', w')`` labels (same dtype as given).
        """
        config = self.config
        geometry = plan_geometry(image.shape[0], image.shape[1], config)
        image = denoise_image(image, config.denoise, config.denoise_strength)
        return place_image(image, geometry, config), preprocess_labels(labels, geometry, ignore_index)

    def normalize(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(h, w, 3) uint8`` or ``(3, h, w)`` float in [0, 1] -> ``(3, h, w) float32`` with the config's mean/std."""
        return normalize_image(image, self.config.mean, self.config.std)
