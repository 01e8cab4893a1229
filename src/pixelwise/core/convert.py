"""Conversions between the three label views (semantic, instance, panoptic).

Rules shared by every format:
- Instances are painted in order, later ones on top; crowd instances paint their class in
  the semantic map but are not things in the panoptic map unless ``keep_crowd``.
- Stuff in a panoptic map is one segment per stuff class present in the semantic map.
- The background class (default id 0) of a semantic map is stuff unless the taxonomy says
  it is a thing; void pixels (ignore index) become segment id 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelwise.core.errors import ShapeError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import Taxonomy


def instance_id_map(instances: InstanceSet) -> np.ndarray:
    """``(H, W) int32`` map with instance ``i`` painted as ``i + 1`` (0 = none), later on top."""
    out = np.zeros(instances.shape, dtype=np.int32)
    for index, mask in enumerate(instances.dense_masks()):
        out[mask] = index + 1
    return out


def semantic_from_instances(
    instances: InstanceSet, background_id: int = 0, ignore_index: int = 255, crowd_as_ignore: bool = False
) -> SemanticMap:
    """Paint instance classes over a background; crowd regions optionally become void."""
    labels = np.full(instances.shape, background_id, dtype=np.int32)
    crowd = instances.iscrowd if instances.iscrowd is not None else np.zeros(len(instances), bool)
    for mask, class_id, is_crowd in zip(instances.dense_masks(), instances.class_ids, crowd):
        labels[mask] = ignore_index if (is_crowd and crowd_as_ignore) else int(class_id)
    return SemanticMap(_smallest_dtype(labels), ignore_index=ignore_index)


def instances_from_id_map(
    instance_ids: np.ndarray,
    class_map: np.ndarray | None = None,
    class_of: dict[int, int] | None = None,
    ignore_ids: tuple[int, ...] = (0,),
) -> InstanceSet:
    """Split an ``(H, W)`` instance-id map into an :class:`InstanceSet`.

    The class of each instance comes from ``class_of[id]`` or, failing that, from the most
    common value of ``class_map`` under its mask.

    Args:
        instance_ids: ``(H, W)`` integer ids; values in ``ignore_ids`` are not instances.
        class_map: ``(H, W)`` integer class ids, same shape.
        class_of: explicit id -> class table.
        ignore_ids: ids that mark background / void.

    Returns:
        Instances sorted by id; ``ids`` holds the original map values.
    """
    instance_ids = np.asarray(instance_ids)
    if instance_ids.ndim != 2:
        raise ShapeError(f"instance id map must be (H, W), got {instance_ids.shape}")
    if class_map is not None and np.asarray(class_map).shape != instance_ids.shape:
        raise ShapeError(f"class map shape {np.asarray(class_map).shape} != instance map shape {instance_ids.shape}")
    if class_map is None and class_of is None:
        raise ValueError("give class_map or class_of to know each instance's class")
    values = [int(v) for v in np.unique(instance_ids) if int(v) not in ignore_ids]
    height, width = instance_ids.shape
    masks = np.zeros((len(values), height, width), dtype=bool)
    classes = np.zeros(len(values), dtype=np.int64)
    for index, value in enumerate(values):
        mask = instance_ids == value
        masks[index] = mask
        if class_of is not None and value in class_of:
            classes[index] = class_of[value]
        elif class_map is not None:
            under, counts = np.unique(np.asarray(class_map)[mask], return_counts=True)
            classes[index] = int(under[np.argmax(counts)])
        else:
            raise KeyError(f"instance id {value} has no class in class_of and no class_map was given")
    return InstanceSet(height, width, classes, masks, ids=np.asarray(values, dtype=np.int64))


def instances_from_semantic(semantic: SemanticMap, taxonomy: Taxonomy, connectivity: int = 8) -> InstanceSet:
    """One instance per connected region of each thing class of a semantic map.

    Stuff classes, unknown ids and the ignore index give no instance.

    Args:
        semantic: ``(H, W)`` class ids.
        taxonomy: says which classes are things.
        connectivity: 8 (diagonal neighbours join) or 4.

    Returns:
        Dense instances ordered by class id, then by OpenCV component label (scan order).
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    height, width = semantic.shape
    things = set(taxonomy.thing_ids)
    masks: list[np.ndarray] = []
    classes: list[int] = []
    for class_id in semantic.class_ids():
        if class_id not in things or class_id == semantic.ignore_index:
            continue
        count, labels = cv2.connectedComponents(semantic.mask_of(class_id).astype(np.uint8), connectivity=connectivity)
        for label in range(1, count):
            masks.append(labels == label)
            classes.append(class_id)
    stack = np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool)
    return InstanceSet(height, width, np.asarray(classes, dtype=np.int64), stack)


def panoptic_from_views(
    semantic: SemanticMap | None, instances: InstanceSet | None, taxonomy: Taxonomy, keep_crowd: bool = False
) -> PanopticMap:
    """Fuse stuff from a semantic map and things from instances into a panoptic map.

    Thing segments get ids ``1..N`` in instance order; stuff segments follow. Semantic
    pixels of thing classes not covered by any instance stay void (0).
    """
    if semantic is None and instances is None:
        raise ValueError("need a semantic map or instances to build a panoptic map")
    shape = semantic.shape if semantic is not None else instances.shape  # type: ignore[union-attr]
    segment_ids = np.zeros(shape, dtype=np.int32)
    segments: list[SegmentInfo] = []
    next_id = 1
    if instances is not None:
        crowd = instances.iscrowd if instances.iscrowd is not None else np.zeros(len(instances), bool)
        for mask, class_id, is_crowd in zip(instances.dense_masks(), instances.class_ids, crowd):
            if is_crowd and not keep_crowd:
                continue
            if not mask.any():
                continue
            segment_ids[mask] = next_id
            segments.append(SegmentInfo(next_id, int(class_id), True, bool(is_crowd)))
            next_id += 1
    if semantic is not None:
        free = segment_ids == 0
        stuff = set(taxonomy.stuff_ids)
        for class_id in semantic.class_ids():
            if class_id not in stuff:
                continue
            region = free & (semantic.labels == class_id)
            if region.any():
                segment_ids[region] = next_id
                segments.append(SegmentInfo(next_id, class_id, False))
                next_id += 1
    used = set(np.unique(segment_ids).tolist())
    return PanopticMap(segment_ids, tuple(s for s in segments if s.id in used))


def views_from_panoptic(
    panoptic: PanopticMap, ignore_index: int = 255
) -> tuple[SemanticMap, InstanceSet]:
    """Split a panoptic map into a semantic map (void -> ignore) and thing instances."""
    labels = np.full(panoptic.shape, ignore_index, dtype=np.int32)
    things = [s for s in panoptic.segments if s.is_thing]
    height, width = panoptic.shape
    masks = np.zeros((len(things), height, width), dtype=bool)
    for segment in panoptic.segments:
        labels[panoptic.segment_ids == segment.id] = segment.category_id
    for index, segment in enumerate(things):
        masks[index] = panoptic.segment_ids == segment.id
    instances = InstanceSet(
        height,
        width,
        np.array([s.category_id for s in things], dtype=np.int64),
        masks,
        iscrowd=np.array([s.iscrowd for s in things], dtype=bool),
        ids=np.array([s.id for s in things], dtype=np.int64),
    )
    return SemanticMap(_smallest_dtype(labels), ignore_index=ignore_index), instances


def complete_annotation(annotation: Annotation, taxonomy: Taxonomy, background_id: int = 0) -> Annotation:
    """Fill in the views an annotation lacks from the ones it has.

    - semantic from panoptic, else from instances (over ``background_id``);
    - instances from panoptic things, else one instance per connected region of each
      thing class of the semantic map;
    - panoptic from semantic stuff + instances.
    """
    semantic, instances, panoptic = annotation.semantic, annotation.instances, annotation.panoptic
    if panoptic is not None and (semantic is None or instances is None):
        sem_p, inst_p = views_from_panoptic(panoptic, taxonomy.ignore_index)
        semantic = semantic or sem_p
        instances = instances or inst_p
    if semantic is None and instances is not None:
        semantic = semantic_from_instances(instances, background_id, taxonomy.ignore_index)
    if instances is None and semantic is not None:
        instances = instances_from_semantic(semantic, taxonomy)
    if panoptic is None and (semantic is not None or instances is not None):
        panoptic = panoptic_from_views(semantic, instances, taxonomy)
    return Annotation(semantic, instances, panoptic)


def _smallest_dtype(labels: np.ndarray) -> np.ndarray:
    peak = int(labels.max()) if labels.size else 0
    low = int(labels.min()) if labels.size else 0
    if low >= 0 and peak < 256:
        return labels.astype(np.uint8)
    if low >= 0 and peak < 65536:
        return labels.astype(np.uint16)
    return labels.astype(np.int32)
