"""Augmentation of an image with its semantic map, instance masks and boxes, together.

Built on ``torchvision.transforms.v2``: the image travels as ``tv_tensors.Image``, the
semantic map as :class:`SemanticMask` (a ``tv_tensors.Mask`` subclass) and the instances as
a ``tv_tensors.Mask`` stack, so every geometric transform moves them identically. Masks are
always resampled with nearest neighbour (label values are never interpolated). Pixels that
come from outside the image (padding, rotated-in corners) get the image fill 0, the
ignore index in the semantic map and 0 (no object) in instance masks.

After the geometric and photometric transforms, boxes are recomputed from the transformed
instance masks (tight ``xyxy`` in edge coordinates: after a rotation, a transformed box
would be loose), and ``v2.SanitizeBoundingBoxes`` removes instances that vanished (cropped
out, or smaller than ``min_instance_area``) together with their masks, labels and crowd
flags.

Randomness: every draw comes from torch's global RNG, as in all torchvision transforms.
Seed it once (``torch.manual_seed``; the trainer does, and a ``DataLoader`` gives each
worker its own seed) or pass ``seed=`` to one call for a result independent of the global
state.

Example:
    >>> import numpy as np
    >>> from pixelwise.transforms import build_augmentation
    >>> aug = build_augmentation("standard", 64)
    >>> out = aug(np.zeros((48, 80, 3), np.uint8), np.zeros((48, 80), np.int64), seed=0)
    >>> tuple(out.image.shape), out.image.dtype, tuple(out.semantic.shape)
    ((3, 64, 64), torch.float32, (64, 64))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from pixelwise.core.errors import ShapeError
from pixelwise.core.labels import InstanceSet, SemanticMap

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

Size = tuple[int, int]


class SemanticMask(tv_tensors.Mask):
    """An ``(H, W)`` class-id map: transformed like any mask, but padded with the ignore index.

    Kernels dispatch through the ``Mask`` parent (nearest resampling); fill dictionaries
    can name this type to give it its own fill value.
    """


def _fill_for(fill: dict[type, float], inpt: Any) -> float:
    return fill.get(type(inpt), 0)


def _first_size(flat_inputs: list[Any]) -> Size:
    for inpt in flat_inputs:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
            return (int(inpt.shape[-2]), int(inpt.shape[-1]))
    raise TypeError("no tv_tensors.Image or Mask among the inputs to know the image size")


def _resize(transform: v2.Transform, inpt: Any, size: Size) -> Any:
    if (int(inpt.shape[-2]), int(inpt.shape[-1])) == size:
        return inpt
    # NEAREST_EXACT samples at pixel centres like bilinear does; plain NEAREST (torch's legacy
    # mode) is shifted by up to half a source pixel, which misaligns masks and image.
    mode = v2.InterpolationMode.NEAREST_EXACT if isinstance(inpt, tv_tensors.Mask) else v2.InterpolationMode.BILINEAR
    return transform._call_kernel(F.resize, inpt, list(size), interpolation=mode, antialias=True)


RESIZE_POLICIES = ("letterbox", "resize")


def _base_scale(height: int, width: int, size: Size, policy: str) -> tuple[float, float]:
    """``(sy, sx)`` that maps an ``height x width`` image onto ``size`` under ``policy``."""
    h, w = size
    if policy == "resize":
        return h / height, w / width
    scale = min(h / height, w / width)
    return scale, scale


class ResizeTo(v2.Transform):
    """Deterministic resize to ``size``, as :mod:`pixelwise.transforms.preprocess` does it.

    ``letterbox`` keeps the aspect ratio and pads equally on both sides (top/left get the
    smaller half); ``resize`` stretches to ``size``.

    Args:
        size: ``(h, w)`` output, or None to leave the size unchanged.
        policy: ``"letterbox"`` or ``"resize"``.
        fill: fill per tv_tensor type (exact type match, default 0).
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Mask)

    def __init__(self, size: Size | None, policy: str = "letterbox", fill: dict[type, float] | None = None) -> None:
        super().__init__()
        if policy not in RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {policy!r}")
        self.size = size
        self.policy = policy
        self.fill = dict(fill or {})

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = _first_size(flat_inputs)
        if self.size is None:
            return {"resize": (height, width), "padding": [0, 0, 0, 0]}
        h, w = self.size
        sy, sx = _base_scale(height, width, self.size, self.policy)
        nh, nw = min(max(round(height * sy), 1), h), min(max(round(width * sx), 1), w)
        top, left = (h - nh) // 2, (w - nw) // 2
        return {"resize": (nh, nw), "padding": [left, top, w - nw - left, h - nh - top]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = _resize(self, inpt, params["resize"])
        if any(params["padding"]):
            out = self._call_kernel(F.pad, out, padding=params["padding"], fill=_fill_for(self.fill, inpt))
        return out


class RandomScaleCrop(v2.Transform):
    """Random zoom then a random ``size`` window, padding where the zoomed image is smaller.

    Zoom 1 maps the image onto the window exactly as :class:`ResizeTo` does with the same
    policy (so object sizes match evaluation); the factor is drawn log-uniformly from
    ``scale``, so 2.0 zooms in to a quarter of the view and 0.5 leaves a padded border.
    Padding goes to random sides.

    Args:
        size: ``(h, w)`` output, or None for the input size.
        scale: ``(low, high)`` zoom range (> 0).
        fill: fill per tv_tensor type (exact type match, default 0).
        policy: ``"letterbox"`` (zoom 1 fits the whole image) or ``"resize"`` (zoom 1
            stretches it to the window).
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Mask)

    def __init__(
        self, size: Size | None, scale: tuple[float, float], fill: dict[type, float] | None = None, policy: str = "letterbox"
    ) -> None:
        super().__init__()
        if policy not in RESIZE_POLICIES:
            raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {policy!r}")
        self.policy = policy
        low, high = float(scale[0]), float(scale[1])
        if not 0 < low <= high:
            raise ValueError(f"scale range must satisfy 0 < low <= high, got {scale}")
        self.size = size
        self.scale = (low, high)
        self.fill = dict(fill or {})

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = _first_size(flat_inputs)
        h, w = self.size or (height, width)
        low, high = math.log(self.scale[0]), math.log(self.scale[1])
        factor = math.exp(low + (high - low) * float(torch.rand(())))
        sy, sx = _base_scale(height, width, (h, w), self.policy)
        nh, nw = max(round(height * sy * factor), 1), max(round(width * sx * factor), 1)
        pad_h, pad_w = max(h - nh, 0), max(w - nw, 0)
        top_pad = int(torch.randint(0, pad_h + 1, ()))
        left_pad = int(torch.randint(0, pad_w + 1, ()))
        top = int(torch.randint(0, nh + pad_h - h + 1, ()))
        left = int(torch.randint(0, nw + pad_w - w + 1, ()))
        return {
            "resize": (nh, nw),
            "padding": [left_pad, top_pad, pad_w - left_pad, pad_h - top_pad],
            "crop": (top, left, h, w),
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = _resize(self, inpt, params["resize"])
        if any(params["padding"]):
            out = self._call_kernel(F.pad, out, padding=params["padding"], fill=_fill_for(self.fill, inpt))
        top, left, h, w = params["crop"]
        if (top, left, h, w) != (0, 0, int(out.shape[-2]), int(out.shape[-1])):
            out = self._call_kernel(F.crop, out, top=top, left=left, height=h, width=w)
        return out


@dataclass
class AugmentedSample:
    """One augmented sample, ready for a model.

    Attributes:
        image: ``(3, h, w) float32`` in ``[0, 1]``.
        semantic: ``(h, w) int64`` class ids (ignore index where padded), or None.
        masks: ``(N, h, w) bool`` instance masks, or None when no instances were given.
        boxes: ``(N, 4) float32`` ``xyxy`` in edge coordinates, tight around ``masks``.
        labels: ``(N,) int64`` instance classes.
        iscrowd: ``(N,) bool`` crowd flags.
    """

    image: torch.Tensor
    semantic: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    iscrowd: torch.Tensor | None = None

    def target(self) -> dict[str, torch.Tensor]:
        """Torchvision detection target ``{"boxes", "labels", "masks"}`` (plus ``"semantic"`` when present)."""
        out: dict[str, torch.Tensor] = {}
        if self.masks is not None:
            out.update(boxes=self.boxes, labels=self.labels, masks=self.masks)  # type: ignore[arg-type]
        if self.semantic is not None:
            out["semantic"] = self.semantic
        return out


def _sanitize_labels(sample: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    return sample["labels"], sample["iscrowd"]


def _boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """``(N, 4) float32`` tight ``xyxy`` boxes in edge coordinates; zeros for empty masks."""
    n, height, width = masks.shape
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    y0 = rows.to(torch.uint8).argmax(dim=1)
    x0 = cols.to(torch.uint8).argmax(dim=1)
    y1 = height - rows.flip(1).to(torch.uint8).argmax(dim=1)
    x1 = width - cols.flip(1).to(torch.uint8).argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)
    boxes[~rows.any(dim=1)] = 0.0
    return boxes


class Augmentation:
    """A named augmentation pipeline applied jointly to image, semantic map and instances.

    Build one with :func:`build_augmentation`; call it per sample. ``transforms`` are
    v2 transforms taking ``{"image", "semantic", "instances"}``; a float conversion of
    the image is appended (a no-op if a transform already converted it).

    Attributes:
        preset: preset name.
        size: ``(h, w)`` output size, or None to keep the input size.
        ignore_index: semantic value for pixels from outside the image.
        min_instance_area: instances with fewer visible pixels are dropped.
        transforms: the ``v2.Compose`` applied to ``{"image", "semantic", "instances"}``
            (``instances`` is an ``(H, W)`` id map when the masks are disjoint, else an
            ``(N, H, W)`` uint8 stack).
    """

    def __init__(
        self,
        preset: str,
        size: Size | None,
        transforms: Sequence[v2.Transform],
        ignore_index: int = 255,
        min_instance_area: int = 1,
    ) -> None:
        self.preset = preset
        self.size = size
        self.ignore_index = int(ignore_index)
        self.min_instance_area = max(int(min_instance_area), 1)
        self.transforms = v2.Compose([*transforms, _to_float()])  # a no-op when the preset converted already
        self._sanitize = v2.SanitizeBoundingBoxes(min_size=1, labels_getter=_sanitize_labels)

    def __repr__(self) -> str:
        return f"Augmentation(preset={self.preset!r}, size={self.size}, ignore_index={self.ignore_index})"

    def __call__(
        self,
        image: np.ndarray | torch.Tensor,
        semantic: np.ndarray | torch.Tensor | SemanticMap | None = None,
        instances: InstanceSet | None = None,
        seed: int | None = None,
    ) -> AugmentedSample:
        """Augment one sample.

        Args:
            image: ``(H, W, 3)`` uint8 RGB array, or a ``(3, H, W)`` tensor (uint8, or
                float in ``[0, 1]``).
            semantic: ``(H, W)`` integer class ids (array, tensor or :class:`SemanticMap`).
            instances: instances of the same ``(H, W)``.
            seed: when given, the random draws of this call come from ``torch.manual_seed(seed)``
                inside a forked RNG (the global state is left untouched).

        Returns:
            An :class:`AugmentedSample` of the output size.

        Raises:
            ShapeError: the image is not ``(H, W, 3)`` / ``(3, H, W)``, or the labels
                are not the image's size.
        """
        if seed is None:
            return self._apply(image, semantic, instances)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(seed))  # CPU generator only: no device lazy-init cost
            return self._apply(image, semantic, instances)

    # ------------------------------------------------------------------ internals
    def _apply(
        self,
        image: np.ndarray | torch.Tensor,
        semantic: np.ndarray | torch.Tensor | SemanticMap | None,
        instances: InstanceSet | None,
    ) -> AugmentedSample:
        img = _as_image(image)
        height, width = int(img.shape[-2]), int(img.shape[-1])
        sample: dict[str, Any] = {"image": img}
        if semantic is not None:
            sample["semantic"] = _as_semantic(semantic, (height, width))
        n = 0
        id_map = False
        if instances is not None:
            if instances.shape != (height, width):
                raise ShapeError(f"instances are {instances.shape} (H, W) but the image is {(height, width)}")
            n = len(instances)
            if n:
                dense = instances.dense_masks()
                # disjoint masks travel as one id map (1 channel instead of N)
                id_map = bool(dense.sum(axis=0, dtype=np.uint16).max() <= 1) if n > 1 else True
                if id_map:
                    ids = np.zeros((height, width), dtype=np.int64)
                    for index, mask in enumerate(dense):
                        ids[mask] = index + 1
                    sample["instances"] = tv_tensors.Mask(torch.from_numpy(ids))
                else:
                    sample["instances"] = tv_tensors.Mask(torch.from_numpy(dense.astype(np.uint8)))

        out = self.transforms(sample)
        result = AugmentedSample(image=out["image"].as_subclass(torch.Tensor).clamp_(0.0, 1.0))
        out_h, out_w = int(result.image.shape[-2]), int(result.image.shape[-1])
        if semantic is not None:
            result.semantic = out["semantic"].as_subclass(torch.Tensor).to(torch.int64)
        if instances is not None:
            if n == 0:
                masks = torch.zeros((0, out_h, out_w), dtype=torch.bool)
            elif id_map:
                ids_out = out["instances"].as_subclass(torch.Tensor)
                masks = ids_out.unsqueeze(0) == torch.arange(1, n + 1, dtype=ids_out.dtype).view(-1, 1, 1)
            else:
                masks = out["instances"].as_subclass(torch.Tensor).to(torch.bool)
            boxes = _boxes_from_masks(masks)
            if self.min_instance_area > 1 and n:
                boxes[masks.flatten(1).sum(dim=1) < self.min_instance_area] = 0.0
            kept = self._sanitize(
                {
                    "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(out_h, out_w)),
                    "masks": tv_tensors.Mask(masks),
                    "labels": torch.as_tensor(instances.class_ids, dtype=torch.int64),
                    "iscrowd": torch.as_tensor(np.asarray(instances.iscrowd, dtype=bool)),
                }
            )
            result.masks = kept["masks"].as_subclass(torch.Tensor)
            result.boxes = kept["boxes"].as_subclass(torch.Tensor)
            result.labels = kept["labels"]
            result.iscrowd = kept["iscrowd"]
        return result


def _as_image(image: np.ndarray | torch.Tensor) -> tv_tensors.Image:
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ShapeError(f"image tensor must be (3, H, W), got {tuple(image.shape)}")
        return tv_tensors.Image(image)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ShapeError(f"image array must be (H, W, 3) RGB, got {array.shape}")
    if array.dtype != np.uint8:
        raise ShapeError(f"image array must be uint8, got {array.dtype}; pass a float (3, H, W) tensor in [0, 1] instead")
    return tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))))


def _as_semantic(semantic: np.ndarray | torch.Tensor | SemanticMap, shape: Size) -> SemanticMask:
    if isinstance(semantic, SemanticMap):
        semantic = semantic.labels
    if not isinstance(semantic, torch.Tensor):
        array = np.asarray(semantic)
        if array.dtype.kind not in "iu":
            raise ShapeError(f"semantic map must hold integer class ids, got dtype {array.dtype}")
        semantic = torch.from_numpy(array.astype(np.int64))
    tensor = semantic
    if tuple(tensor.shape) != shape:
        raise ShapeError(f"semantic map must be (H, W) = {shape} like the image, got {tuple(tensor.shape)}")
    if tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise ShapeError(f"semantic map must hold integer class ids, got dtype {tensor.dtype}")
    return SemanticMask(tensor.to(torch.int64))


# ---------------------------------------------------------------------- presets
def _to_float() -> v2.Transform:
    """Image to float32 in [0, 1]; masks untouched."""
    return v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)


def _preset_none(size: Size | None, fill: dict[type, float], policy: str) -> list[v2.Transform]:
    return [ResizeTo(size, policy, fill)]


def _preset_light(size: Size | None, fill: dict[type, float], policy: str) -> list[v2.Transform]:
    return [
        RandomScaleCrop(size, (0.8, 1.25), fill, policy),
        v2.RandomHorizontalFlip(0.5),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
    ]


def _preset_standard(size: Size | None, fill: dict[type, float], policy: str) -> list[v2.Transform]:
    return [
        RandomScaleCrop(size, (0.5, 2.0), fill, policy),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomRotation(15, interpolation=v2.InterpolationMode.BILINEAR, fill=dict(fill)),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05),
        v2.RandomApply([v2.GaussianBlur(kernel_size=7, sigma=(0.1, 1.5))], p=0.2),
    ]


def _preset_heavy(size: Size | None, fill: dict[type, float], policy: str) -> list[v2.Transform]:
    return [
        RandomScaleCrop(size, (0.35, 2.5), fill, policy),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5),
        v2.RandomRotation(30, interpolation=v2.InterpolationMode.BILINEAR, fill=dict(fill)),
        v2.RandomPerspective(distortion_scale=0.25, p=0.3, fill=dict(fill)),
        v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        v2.RandomGrayscale(p=0.1),
        v2.RandomApply([v2.GaussianBlur(kernel_size=9, sigma=(0.1, 2.0))], p=0.3),
        _to_float(),
        v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=0.3),
    ]


#: Preset name -> builder ``(size, fill, resize_policy) -> list of v2 transforms``.
PRESETS: dict[str, Callable[[Size | None, dict[type, float], str], list[v2.Transform]]] = {
    "none": _preset_none,
    "light": _preset_light,
    "standard": _preset_standard,
    "heavy": _preset_heavy,
}


def list_presets() -> list[str]:
    """Preset names, mildest first."""
    return list(PRESETS)


def build_augmentation(
    preset: str,
    size: int | Sequence[int] | None,
    ignore_index: int = 255,
    min_instance_area: int = 1,
    resize_policy: str = "letterbox",
) -> Augmentation:
    """Build an augmentation pipeline by name.

    Presets (each ends with a conversion of the image to float32 in ``[0, 1]``):

    - ``none``: deterministic resize to ``size`` (letterbox: keep the aspect ratio and pad
      both sides equally; or stretch), the same geometry as
      :func:`pixelwise.transforms.preprocess.plan_geometry`; for evaluation.
    - ``light``: zoom 0.8-1.25 with a random crop, horizontal flip, mild colour jitter.
    - ``standard``: zoom 0.5-2.0 with a random crop, horizontal flip, rotation +-15 deg,
      colour jitter, Gaussian blur (p=0.2). No vertical flip: scenes have an up.
    - ``heavy``: zoom 0.35-2.5, horizontal and vertical flips, rotation +-30 deg,
      perspective (p=0.3), strong colour jitter, grayscale (p=0.1), blur (p=0.3),
      Gaussian noise (p=0.3); for top-down imagery (microscopy, inspection, aerial).

    Args:
        preset: one of :func:`list_presets`.
        size: output ``h = w`` as an int, ``(h, w)``, or None to keep each input's size.
        ignore_index: semantic value given to pixels from outside the image.
        min_instance_area: drop instances with fewer visible pixels after augmentation.
        resize_policy: how zoom 1 maps an image onto ``size``: ``"letterbox"`` (keep the
            aspect ratio) or ``"resize"`` (stretch); use the policy of the model's
            preprocessing so objects have the same shape in training and inference.

    Returns:
        An :class:`Augmentation` (no mean/std normalisation: the model's preprocessing
        does that).

    Raises:
        KeyError: unknown preset (the message lists the valid names).
        ValueError: a size that is not positive, or an unknown resize policy.
    """
    if resize_policy not in RESIZE_POLICIES:
        raise ValueError(f"resize_policy must be one of {RESIZE_POLICIES}, got {resize_policy!r}")
    try:
        builder = PRESETS[preset]
    except KeyError:
        raise KeyError(f"unknown augmentation preset {preset!r}; valid presets: {', '.join(PRESETS)}") from None
    out_size: Size | None
    if size is None:
        out_size = None
    elif isinstance(size, (int, np.integer)):
        out_size = (int(size), int(size))
    else:
        values = [int(v) for v in size]
        if len(values) != 2:
            raise ValueError(f"size must be an int or (h, w), got {size!r}")
        out_size = (values[0], values[1])
    if out_size is not None and min(out_size) <= 0:
        raise ValueError(f"size must be positive, got {out_size}")
    fill: dict[type, float] = {tv_tensors.Image: 0, SemanticMask: int(ignore_index), tv_tensors.Mask: 0}
    return Augmentation(preset, out_size, builder(out_size, fill, resize_policy), ignore_index, min_instance_area)
