"""Inference (layer 4): one shared pipeline (:class:`Segmenter`) over swappable backends.

``TorchBackend`` is imported lazily, so ``import pixelwise.runtime`` does not load torch
(an ONNX Runtime or LiteRT deployment needs only NumPy and OpenCV here).

Example:
    >>> from pixelwise.runtime import Segmenter, TorchBackend  # doctest: +SKIP
    >>> from pixelwise.models.checkpoint import load_checkpoint  # doctest: +SKIP
    >>> ckpt = load_checkpoint("best.pt")  # doctest: +SKIP
    >>> seg = Segmenter(TorchBackend.from_checkpoint(ckpt), ckpt.taxonomy, ckpt.preprocess)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pixelwise.runtime.predictor import (
    SUPPORTED_TASKS,
    BackendOutputError,
    ImageInput,
    Predictor,
    Segmenter,
)
from pixelwise.runtime.results import SemanticResult

if TYPE_CHECKING:  # pragma: no cover
    from pixelwise.runtime.torch_backend import TorchBackend

__all__ = [
    "SUPPORTED_TASKS",
    "BackendOutputError",
    "ImageInput",
    "Predictor",
    "Segmenter",
    "SemanticResult",
    "TorchBackend",
]


def __getattr__(name: str) -> Any:
    if name == "TorchBackend":
        from pixelwise.runtime.torch_backend import TorchBackend

        return TorchBackend
    raise AttributeError(f"module 'pixelwise.runtime' has no attribute {name!r}")
