"""Label and result types shared by every layer: semantic map, instance set, panoptic map.

They are small frozen dataclasses validated on construction: a wrong shape or dtype fails
at once with the expected and the actual value in the message. Adapters to and from other
libraries live outside these classes (formats, runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pixelwise.core.errors import ShapeError
from pixelwise.core.masks import RLE, masks_to_boxes, rle_area, rle_decode, rle_encode_many, rle_to_box

_INT_KINDS = ("i", "u")


def _as_int_map(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ShapeError(f"{name} must be (H, W), got shape {array.shape}")
    if array.dtype.kind not in _INT_KINDS:
        if array.dtype == bool:
            array = array.astype(np.uint8)
        else:
            raise ShapeError(f"{name} must have an integer dtype, got {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ShapeError(f"{name} must be non-empty, got shape {array.shape}")
    return array


@dataclass(frozen=True)
class SemanticMap:
    """Per-pixel class ids.

    Attributes:
        labels: ``(H, W)`` integer class ids (uint8/uint16/int32/int64); ``ignore_index``
            marks void pixels.
        ignore_index: value meaning "no label" (default 255).
    """

    labels: np.ndarray
    ignore_index: int = 255

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _as_int_map(self.labels, "semantic labels"))

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))

    def class_ids(self) -> list[int]:
        """Sorted class ids present, the ignore index excluded."""
        return [int(v) for v in np.unique(self.labels) if v != self.ignore_index]

    def pixel_counts(self, num_classes: int) -> np.ndarray:
        """``(num_classes,) int64`` pixels per class id (ids >= num_classes and void dropped)."""
        values = self.labels.reshape(-1).astype(np.int64)
        values = values[(values >= 0) & (values < num_classes)]
        return np.bincount(values, minlength=num_classes).astype(np.int64)

    def mask_of(self, class_id: int) -> np.ndarray:
        """``(H, W)`` bool mask of one class."""
        return self.labels == class_id


@dataclass(frozen=True)
class InstanceSet:
    """N object instances of one image.

    Masks are held either densely (``(N, H, W)`` bool) or as a list of N COCO RLE dicts;
    both forms give the same answers. Boxes are computed from masks when not given.

    Attributes:
        height: image height H.
        width: image width W.
        class_ids: ``(N,) int64`` class of each instance.
        masks: ``(N, H, W)`` bool, or a list of N RLE dicts of size ``[H, W]``.
        scores: ``(N,) float32`` confidences, or None for ground truth.
        boxes: ``(N, 4) float64`` ``xyxy`` in edge coordinates.
        iscrowd: ``(N,) bool`` COCO crowd flags (a crowd region covers several objects).
        ids: ``(N,) int64`` stable instance ids (track ids, source annotation ids) or None.
    """

    height: int
    width: int
    class_ids: np.ndarray
    masks: np.ndarray | list[RLE]
    scores: np.ndarray | None = None
    boxes: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if int(self.height) <= 0 or int(self.width) <= 0:
            raise ShapeError(f"instance set size must be positive, got {self.height}x{self.width}")
        class_ids = np.asarray(self.class_ids)
        if class_ids.ndim != 1 or (class_ids.size and class_ids.dtype.kind not in _INT_KINDS):
            raise ShapeError(f"class_ids must be (N,) integers, got shape {class_ids.shape} dtype {class_ids.dtype}")
        n = len(class_ids)
        object.__setattr__(self, "class_ids", class_ids.astype(np.int64))
        if isinstance(self.masks, list):
            if len(self.masks) != n:
                raise ShapeError(f"{len(self.masks)} RLE masks for {n} class ids")
            for i, rle in enumerate(self.masks):
                size = [int(v) for v in rle.get("size", ())] if isinstance(rle, dict) else None
                if size != [self.height, self.width]:
                    raise ShapeError(f"RLE mask {i} has size {size}, expected [{self.height}, {self.width}]")
        else:
            masks = np.asarray(self.masks)
            if n == 0 and masks.size == 0:
                masks = np.zeros((0, self.height, self.width), dtype=bool)
            if masks.shape != (n, self.height, self.width):
                raise ShapeError(f"masks must be (N, H, W) = ({n}, {self.height}, {self.width}), got {masks.shape}")
            if masks.dtype != bool:
                masks = masks != 0
            object.__setattr__(self, "masks", masks)
        for name, width, dtype in (("scores", None, np.float32), ("iscrowd", None, bool), ("ids", None, np.int64)):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value).astype(dtype)
                if value.shape != (n,):
                    raise ShapeError(f"{name} must be ({n},), got {value.shape}")
                object.__setattr__(self, name, value)
        if self.iscrowd is None:
            object.__setattr__(self, "iscrowd", np.zeros(n, dtype=bool))
        if self.boxes is None:
            object.__setattr__(self, "boxes", self._boxes_from_masks())
        else:
            boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4) if n else np.zeros((0, 4))
            if boxes.shape != (n, 4):
                raise ShapeError(f"boxes must be (N, 4) xyxy = ({n}, 4), got {np.asarray(self.boxes).shape}")
            object.__setattr__(self, "boxes", boxes)

    def _boxes_from_masks(self) -> np.ndarray:
        if isinstance(self.masks, list):
            return np.stack([rle_to_box(r) for r in self.masks]) if self.masks else np.zeros((0, 4))
        return masks_to_boxes(self.masks)

    @classmethod
    def empty(cls, height: int, width: int) -> InstanceSet:
        """No instances."""
        return cls(height, width, np.zeros(0, np.int64), np.zeros((0, height, width), bool))

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.height), int(self.width))

    def dense_masks(self) -> np.ndarray:
        """``(N, H, W)`` bool masks (decodes RLE when held as RLE)."""
        if isinstance(self.masks, list):
            if not self.masks:
                return np.zeros((0, self.height, self.width), dtype=bool)
            return np.stack([rle_decode(r) for r in self.masks])
        return self.masks

    def rles(self) -> list[RLE]:
        """N compressed RLE dicts."""
        if isinstance(self.masks, list):
            from pixelwise.core.masks import rle_compress

            return [rle_compress(r) for r in self.masks]
        return rle_encode_many(self.masks)

    def areas(self) -> np.ndarray:
        """``(N,) int64`` pixel areas."""
        if isinstance(self.masks, list):
            return np.array([rle_area(r) for r in self.masks], dtype=np.int64)
        return self.masks.reshape(len(self), -1).sum(axis=1).astype(np.int64)

    def select(self, keep: np.ndarray | Sequence[int] | Sequence[bool]) -> InstanceSet:
        """Subset by a bool mask or an index list."""
        index = np.asarray(keep)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        masks: np.ndarray | list[RLE]
        masks = [self.masks[i] for i in index] if isinstance(self.masks, list) else self.masks[index]
        return InstanceSet(
            self.height,
            self.width,
            self.class_ids[index],
            masks,
            None if self.scores is None else self.scores[index],
            self.boxes[index] if self.boxes is not None else None,
            self.iscrowd[index] if self.iscrowd is not None else None,
            None if self.ids is None else self.ids[index],
        )

    def with_rle(self) -> InstanceSet:
        """Same instances with masks held as compressed RLE (compact for storage)."""
        return replace(self, masks=self.rles())

    def with_dense(self) -> InstanceSet:
        """Same instances with masks held as a dense array."""
        return replace(self, masks=self.dense_masks())


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a panoptic map.

    Attributes:
        id: value of the segment in the segment-id map (> 0).
        category_id: its class id.
        is_thing: True for a countable object, False for stuff.
        iscrowd: COCO crowd flag.
    """

    id: int
    category_id: int
    is_thing: bool = True
    iscrowd: bool = False

    def __post_init__(self) -> None:
        if int(self.id) <= 0:
            raise ShapeError(f"panoptic segment id must be > 0 (0 is void), got {self.id}")
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "category_id", int(self.category_id))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"id": self.id, "category_id": self.category_id, "is_thing": self.is_thing, "iscrowd": self.iscrowd}


@dataclass(frozen=True)
class PanopticMap:
    """Every pixel a class, every thing an identity.

    Attributes:
        segment_ids: ``(H, W)`` int32 segment ids; 0 is void (unlabelled).
        segments: one :class:`SegmentInfo` per non-zero id in the map (ids unique).
    """

    segment_ids: np.ndarray
    segments: tuple[SegmentInfo, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        ids = _as_int_map(self.segment_ids, "panoptic segment_ids").astype(np.int32, copy=False)
        object.__setattr__(self, "segment_ids", ids)
        segments = tuple(self.segments)
        object.__setattr__(self, "segments", segments)
        seen = [s.id for s in segments]
        if len(set(seen)) != len(seen):
            raise ShapeError(f"panoptic segment ids must be unique, got {sorted(seen)}")
        present = set(np.unique(ids).tolist()) - {0}
        missing = sorted(present - set(seen))
        if missing:
            raise ShapeError(f"segment ids {missing[:10]} appear in the map but have no SegmentInfo")

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.segment_ids.shape[0]), int(self.segment_ids.shape[1]))

    def segment(self, segment_id: int) -> SegmentInfo:
        """The info of one segment id (KeyError if absent)."""
        for s in self.segments:
            if s.id == segment_id:
                return s
        raise KeyError(f"no segment with id {segment_id}; ids are {[s.id for s in self.segments]}")

    def areas(self) -> dict[int, int]:
        """Pixel area per segment id (segments absent from the map have area 0)."""
        values, counts = np.unique(self.segment_ids, return_counts=True)
        table = dict(zip(values.tolist(), counts.tolist()))
        return {s.id: int(table.get(s.id, 0)) for s in self.segments}


@dataclass(frozen=True)
class Annotation:
    """Whatever ground truth an image has; any field may be None.

    Use :mod:`pixelwise.core.convert` to derive a missing view (for example the semantic
    map from instances) with a taxonomy.
    """

    semantic: SemanticMap | None = None
    instances: InstanceSet | None = None
    panoptic: PanopticMap | None = None

    def __post_init__(self) -> None:
        shapes = {name: v.shape for name, v in self._views().items()}
        if len(set(shapes.values())) > 1:
            raise ShapeError(f"annotation views disagree in size: {shapes}")

    def _views(self) -> dict[str, Any]:
        return {n: v for n, v in (("semantic", self.semantic), ("instances", self.instances), ("panoptic", self.panoptic)) if v is not None}

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(H, W)`` of the views, or None when there is no view."""
        views = self._views()
        return next(iter(views.values())).shape if views else None

    @property
    def is_empty(self) -> bool:
        """True when no view is present."""
        return not self._views()
