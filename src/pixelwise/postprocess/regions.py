"""Label maps and instances to regions and measurements: polygons, boxes, areas, counts."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixelwise.core.labels import InstanceSet
from pixelwise.core.masks import mask_to_box, mask_to_polygons
from pixelwise.core.taxonomy import Taxonomy


@dataclass(frozen=True)
class Region:
    """One connected region (semantic) or one instance.

    Coordinates are in pixel-edge coordinates (see :mod:`pixelwise.core.masks`).

    Attributes:
        class_id: class of the region.
        class_name: its name.
        area: pixel count.
        box: ``(x_min, y_min, x_max, y_max)``.
        perimeter: outline length in pixels (holes included).
        centroid: ``(x, y)``.
        polygons: exterior rings as ``[[x, y], ...]`` lists (holes in ``holes``).
        holes: hole rings per polygon.
        score: instance confidence, when known.
        instance_id: index of the instance, when the region is an instance.
    """

    class_id: int
    class_name: str
    area: int
    box: tuple[float, float, float, float]
    perimeter: float
    centroid: tuple[float, float]
    polygons: list[list[list[float]]] = field(default_factory=list)
    holes: list[list[list[list[float]]]] = field(default_factory=list)
    score: float | None = None
    instance_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _region_from_mask(
    mask: np.ndarray, class_id: int, class_name: str, tolerance: float, score: float | None = None, instance_id: int | None = None
) -> Region:
    polygons = mask_to_polygons(mask, tolerance=tolerance)
    ys, xs = np.nonzero(mask)
    exact = mask_to_polygons(mask) if tolerance > 0 else polygons
    perimeter = float(sum(p.perimeter() for p in exact))
    return Region(
        class_id=int(class_id),
        class_name=class_name,
        area=int(mask.sum()),
        box=tuple(float(v) for v in mask_to_box(mask)),  # type: ignore[arg-type]
        perimeter=perimeter,
        centroid=(float(xs.mean() + 0.5), float(ys.mean() + 0.5)) if xs.size else (float("nan"), float("nan")),
        polygons=[p.exterior.tolist() for p in polygons],
        holes=[[h.tolist() for h in p.holes] for p in polygons],
        score=score,
        instance_id=instance_id,
    )


def _name(taxonomy: Taxonomy | None, class_id: int) -> str:
    if taxonomy is not None and class_id in taxonomy:
        return taxonomy.name_of(class_id)
    return f"class_{class_id}"


def semantic_regions(
    labels: np.ndarray,
    taxonomy: Taxonomy | None = None,
    skip_ids: Iterable[int] = (0,),
    ignore_index: int = 255,
    min_area: int = 1,
    tolerance: float = 0.0,
) -> list[Region]:
    """One :class:`Region` per 8-connected component of each class.

    Args:
        labels: ``(H, W)`` integer class ids.
        taxonomy: for class names.
        skip_ids: classes not measured (background by default).
        ignore_index: void value, never a region.
        min_area: components smaller than this are left out.
        tolerance: polygon simplification in pixels (0 = exact outline).
    """
    skip = set(int(s) for s in skip_ids) | {ignore_index}
    regions: list[Region] = []
    for class_id in np.unique(labels):
        if int(class_id) in skip:
            continue
        count, comp, stats, _ = cv2.connectedComponentsWithStats((labels == class_id).astype(np.uint8), connectivity=8)
        for index in range(1, count):
            if stats[index, cv2.CC_STAT_AREA] < min_area:
                continue
            regions.append(_region_from_mask(comp == index, int(class_id), _name(taxonomy, int(class_id)), tolerance))
    return regions


def instance_regions(instances: InstanceSet, taxonomy: Taxonomy | None = None, tolerance: float = 0.0) -> list[Region]:
    """One :class:`Region` per instance (all its parts), with its score."""
    regions = []
    for index, (mask, class_id) in enumerate(zip(instances.dense_masks(), instances.class_ids)):
        score = None if instances.scores is None else float(instances.scores[index])
        regions.append(_region_from_mask(mask, int(class_id), _name(taxonomy, int(class_id)), tolerance, score, index))
    return regions


@dataclass(frozen=True)
class ClassMeasurement:
    """Per image and class: pixel area, area fraction, number of regions."""

    class_id: int
    class_name: str
    area: int
    area_fraction: float
    region_count: int


def measure_classes(
    labels: np.ndarray, regions: Sequence[Region], taxonomy: Taxonomy | None = None, ignore_index: int = 255
) -> list[ClassMeasurement]:
    """Per-class area, area fraction (of labelled pixels) and region count for one image."""
    valid = labels != ignore_index
    total = int(valid.sum()) or 1
    counts: dict[int, int] = {}
    for region in regions:
        counts[region.class_id] = counts.get(region.class_id, 0) + 1
    out = []
    ids = taxonomy.ids if taxonomy is not None else sorted(int(v) for v in np.unique(labels[valid]))
    for class_id in ids:
        area = int((labels == class_id).sum())
        out.append(ClassMeasurement(class_id, _name(taxonomy, class_id), area, area / total, counts.get(class_id, 0)))
    return out


def write_measurements_csv(rows: Iterable[dict[str, Any]], path: Path) -> Path:
    """Write flat dict rows (same keys) to CSV; nested values are JSON-ish strings."""
    rows = list(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        if not rows:
            return path
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    return path
