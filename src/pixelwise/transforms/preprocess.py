"""Deterministic preprocessing shared by training and every inference backend.

A :class:`PreprocessConfig` is saved inside each checkpoint and model sidecar, so inference
repeats exactly what training did: optional denoising, geometry (resize, letterbox or pad to
a multiple), and normalisation. Everything is NumPy/OpenCV so the same code path serves
PyTorch, ONNX Runtime and LiteRT backends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from pixelwise.core.errors import ShapeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_POLICIES = ("resize", "letterbox", "pad", "none")
DENOISERS = ("median", "bilateral", "nlmeans")


@dataclass(frozen=True)
class PreprocessConfig:
    """How an RGB image becomes a network input.

    Attributes:
        input_size: ``(height, width)`` the network sees, or None to keep the image size.
        resize_policy: "resize" (stretch to input_size), "letterbox" (keep aspect ratio,
            pad the rest), "pad" (pad to a multiple of ``divisor``, no scaling; input_size
            ignored) or "none".
        divisor: the padded size is a multiple of this ("pad" policy and "none" check).
        mean: per-channel RGB mean on the [0, 1] scale.
        std: per-channel RGB standard deviation on the [0, 1] scale.
        denoise: None or one of "median", "bilateral", "nlmeans" (applied before resizing).
        denoise_strength: kernel size (median), sigma (bilateral) or h (nlmeans).
        pad_value: grey level (0..255) used for padded image pixels.
    """

    input_size: tuple[int, int] | None = (256, 256)
    resize_policy: str = "resize"
    divisor: int = 32
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    denoise: str | None = None
    denoise_strength: float = 5.0
    pad_value: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resize_policy not in RESIZE_POLICIES:
            raise ValueError(f"resize_policy must be one of {RESIZE_POLICIES}, got {self.resize_policy!r}")
        if self.denoise is not None and self.denoise not in DENOISERS:
            raise ValueError(f"denoise must be None or one of {DENOISERS}, got {self.denoise!r}")
        if self.input_size is not None:
            object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        if self.resize_policy in ("resize", "letterbox") and self.input_size is None:
            raise ValueError(f"resize_policy {self.resize_policy!r} needs an input_size")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError(f"mean and std need 3 values (std > 0), got {self.mean} / {self.std}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (round-trips through :meth:`from_dict`)."""
        data = asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict` (unknown keys are rejected)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        if values.get("input_size") is not None:
            values["input_size"] = tuple(values["input_size"])
        return cls(**values)


@dataclass(frozen=True)
class Geometry:
    """Where the original image sits inside the network input.

    Attributes:
        original: ``(H, W)`` of the image before preprocessing.
        scaled: ``(h, w)`` after resizing, before padding.
        padded: ``(h', w')`` network input size.
        offset: ``(top, left)`` padding before the image.
    """

    original: tuple[int, int]
    scaled: tuple[int, int]
    padded: tuple[int, int]
    offset: tuple[int, int] = (0, 0)


def plan_geometry(height: int, width: int, config: PreprocessConfig) -> Geometry:
    """Compute the resize and padding for an image of ``height x width``."""
    policy = config.resize_policy
    if policy == "resize":
        target = config.input_size
        assert target is not None
        return Geometry((height, width), target, target)
    if policy == "letterbox":
        target = config.input_size
        assert target is not None
        scale = min(target[0] / height, target[1] / width)
        scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
        top = (target[0] - scaled[0]) // 2
        left = (target[1] - scaled[1]) // 2
        return Geometry((height, width), scaled, target, (top, left))
    if policy == "pad":
        d = config.divisor
        padded = (-(-height // d) * d, -(-width // d) * d)
        return Geometry((height, width), (height, width), padded)
    return Geometry((height, width), (height, width), (height, width))


def denoise_image(image: np.ndarray, method: str | None, strength: float = 5.0) -> np.ndarray:
    """Denoise an ``(H, W, 3) uint8`` image with median, bilateral or non-local means."""
    if method is None:
        return image
    if method == "median":
        k = max(3, int(strength) | 1)
        return cv2.medianBlur(image, k)
    if method == "bilateral":
        return cv2.bilateralFilter(image, d=5, sigmaColor=float(strength) * 10, sigmaSpace=float(strength))
    if method == "nlmeans":
        return cv2.fastNlMeansDenoisingColored(image, None, float(strength), float(strength), 7, 21)
    raise ValueError(f"unknown denoise method {method!r}; valid: {DENOISERS}")


def _place(array: np.ndarray, geometry: Geometry, interpolation: int, fill: float) -> np.ndarray:
    h, w = geometry.scaled
    if (h, w) != array.shape[:2]:
        array = cv2.resize(array, (w, h), interpolation=interpolation)
    if geometry.padded == (h, w):
        return array
    out_shape = (*geometry.padded, *array.shape[2:])
    out = np.full(out_shape, fill, dtype=array.dtype)
    top, left = geometry.offset
    out[top : top + h, left : left + w] = array
    return out


def preprocess_image(image: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, Geometry]:
    """Turn an RGB image into a normalised network input.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        config: the saved preprocessing.

    Returns:
        ``(3, h', w') float32`` CHW input and the :class:`Geometry` to undo it.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    geometry = plan_geometry(image.shape[0], image.shape[1], config)
    image = denoise_image(image, config.denoise, config.denoise_strength)
    placed = _place(image, geometry, cv2.INTER_LINEAR, config.pad_value)
    mean = np.asarray(config.mean, dtype=np.float32) * 255.0
    std = np.asarray(config.std, dtype=np.float32) * 255.0
    chw = ((placed.astype(np.float32) - mean) / std).transpose(2, 0, 1)
    return np.ascontiguousarray(chw), geometry


def preprocess_labels(labels: np.ndarray, geometry: Geometry, ignore_index: int = 255) -> np.ndarray:
    """Apply an image's geometry to its ``(H, W)`` label map (nearest; padding = ignore)."""
    if labels.shape[:2] != geometry.original:
        raise ShapeError(f"labels are {labels.shape[:2]} but the image was {geometry.original}")
    return _place(labels, geometry, cv2.INTER_NEAREST, ignore_index)


def restore_probabilities(probs: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Crop the padding off ``(K, h', w')`` scores and resize them back to ``(K, H, W)`` (bilinear)."""
    if probs.shape[1:] != geometry.padded:
        raise ShapeError(f"scores are {probs.shape[1:]} but the network input was {geometry.padded}")
    top, left = geometry.offset
    h, w = geometry.scaled
    crop = probs[:, top : top + h, left : left + w]
    if (h, w) == geometry.original:
        return np.ascontiguousarray(crop)
    height, width = geometry.original
    hwk = cv2.resize(np.ascontiguousarray(crop.transpose(1, 2, 0)), (width, height), interpolation=cv2.INTER_LINEAR)
    if hwk.ndim == 2:
        hwk = hwk[:, :, None]
    return np.ascontiguousarray(hwk.transpose(2, 0, 1))


def restore_labels(labels: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Crop the padding off an ``(h', w')`` label map and resize it back to ``(H, W)`` (nearest)."""
    if labels.shape != geometry.padded:
        raise ShapeError(f"labels are {labels.shape} but the network input was {geometry.padded}")
    top, left = geometry.offset
    h, w = geometry.scaled
    crop = labels[top : top + h, left : left + w]
    if (h, w) == geometry.original:
        return np.ascontiguousarray(crop)
    height, width = geometry.original
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_NEAREST)
