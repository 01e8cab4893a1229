"""Dataset statistics: image sizes, class balance, channel mean/std, metadata counts.

Works on any :class:`~pixelwise.data.dataset.SegmentationDataset`, whatever format it
was read from. Annotations are loaded one sample at a time (nothing is cached), so the
memory use does not grow with the dataset.

Where pixel counts come from, per image (first view present wins):

1. the semantic map: each id's pixels; the ignore index counts as void;
2. else the panoptic map: each segment's area to its category; segment 0 is void;
3. else the instances, painted in order (later on top, as
   :func:`pixelwise.core.convert.instance_id_map`); uncovered pixels count as void.

Ids found in the labels but absent from the taxonomy are counted too and listed as
``unknown``; :func:`pixelwise.data.validate.validate_dataset` reports them as errors.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from pixelwise.core.convert import instance_id_map
from pixelwise.core.errors import DataError
from pixelwise.core.labels import Annotation
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset
from pixelwise.data.image_io import read_image

__all__ = ["DatasetStats", "dataset_statistics"]

_PROGRESS_MIN_SAMPLES = 50
_METADATA_TOP = 50
_LEVELS = np.arange(256, dtype=np.float64)
_LEVELS_SQ = _LEVELS**2


@dataclass
class DatasetStats:
    """What a dataset holds.

    Attributes:
        name: dataset name.
        n_images: number of samples.
        n_labelled: samples with at least one label view.
        n_failed: samples whose annotation could not be loaded (see ``issues``).
        size_counts: ``(height, width) -> number of images``.
        class_ids: taxonomy ids in declaration order, then unknown ids found (sorted).
        class_names: ``id -> name`` (unknown ids are named ``"unknown <id>"``).
        class_colors: ``id -> (r, g, b)``.
        pixel_counts: ``id -> labelled pixels`` over the dataset (void excluded).
        ignore_pixels: void pixels (ignore index, panoptic 0, or not covered by instances).
        instance_counts: ``id -> number of instances`` (instances, else panoptic thing
            segments), crowd regions included.
        image_counts: ``id -> images in which the class appears`` (any view).
        instance_areas: pixel area of every non-crowd instance, in dataset order.
        channel_mean: RGB mean in 0..1 over ``n_images_for_mean`` images, or None.
        channel_std: RGB standard deviation in 0..1, or None.
        n_images_for_mean: images actually read for the mean/std.
        metadata_counts: ``key -> Counter(value -> images)``; list values count each item.
        unknown_ids: ids found in the labels that the taxonomy does not define.
        issues: samples that could not be read, with the reason.
        ignore_index: the taxonomy's ignore index.
    """

    name: str
    n_images: int = 0
    n_labelled: int = 0
    n_failed: int = 0
    size_counts: Counter[tuple[int, int]] = field(default_factory=Counter)
    class_ids: list[int] = field(default_factory=list)
    class_names: dict[int, str] = field(default_factory=dict)
    class_colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    pixel_counts: dict[int, int] = field(default_factory=dict)
    ignore_pixels: int = 0
    instance_counts: dict[int, int] = field(default_factory=dict)
    image_counts: dict[int, int] = field(default_factory=dict)
    instance_areas: list[int] = field(default_factory=list, repr=False)
    channel_mean: tuple[float, float, float] | None = None
    channel_std: tuple[float, float, float] | None = None
    n_images_for_mean: int = 0
    metadata_counts: dict[str, Counter[str]] = field(default_factory=dict)
    unknown_ids: list[int] = field(default_factory=list)
    issues: list[DataIssue] = field(default_factory=list)
    ignore_index: int = 255

    # -- derived ----------------------------------------------------------------
    @property
    def labelled_pixels(self) -> int:
        """Pixels carrying a class (void excluded)."""
        return int(sum(self.pixel_counts.values()))

    @property
    def pixel_fractions(self) -> dict[int, float]:
        """``id -> share of the labelled pixels`` (all 0.0 when nothing is labelled)."""
        total = self.labelled_pixels
        return {i: (self.pixel_counts.get(i, 0) / total if total else 0.0) for i in self.class_ids}

    @property
    def imbalance_ratio(self) -> float | None:
        """Largest over smallest nonzero pixel count of the taxonomy's classes (None if none has pixels)."""
        unknown = set(self.unknown_ids)
        nonzero = [c for i, c in self.pixel_counts.items() if c > 0 and i not in unknown]
        return max(nonzero) / min(nonzero) if nonzero else None

    def _sides(self, axis: int) -> list[tuple[int, int]]:
        return [(size[axis], n) for size, n in self.size_counts.items()]

    def size_summary(self) -> dict[str, float | int | None]:
        """Min / max / mean of image heights and widths (None for an empty dataset)."""
        out: dict[str, float | int | None] = {}
        for axis, side in ((0, "height"), (1, "width")):
            values = self._sides(axis)
            total = sum(n for _, n in values)
            out[f"min_{side}"] = min((v for v, _ in values), default=None)
            out[f"max_{side}"] = max((v for v, _ in values), default=None)
            out[f"mean_{side}"] = (sum(v * n for v, n in values) / total) if total else None
        return out

    # -- output -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (sizes as lists, metadata limited to the 50 commonest values per key)."""
        fractions = self.pixel_fractions
        areas = np.asarray(self.instance_areas, dtype=np.float64)
        ratio = self.imbalance_ratio
        return {
            "name": self.name,
            "n_images": self.n_images,
            "n_labelled": self.n_labelled,
            "n_failed": self.n_failed,
            "sizes": [
                {"height": h, "width": w, "count": n} for (h, w), n in self.size_counts.most_common()
            ],
            **self.size_summary(),
            "classes": [
                {
                    "id": i,
                    "name": self.class_names.get(i, str(i)),
                    "pixels": int(self.pixel_counts.get(i, 0)),
                    "pixel_fraction": fractions.get(i, 0.0),
                    "instances": int(self.instance_counts.get(i, 0)),
                    "images": int(self.image_counts.get(i, 0)),
                }
                for i in self.class_ids
            ],
            "labelled_pixels": self.labelled_pixels,
            "ignore_pixels": int(self.ignore_pixels),
            "ignore_index": self.ignore_index,
            "imbalance_ratio": ratio,
            "unknown_ids": list(self.unknown_ids),
            "instance_areas": {
                "count": int(areas.size),
                "min": float(areas.min()) if areas.size else None,
                "median": float(np.median(areas)) if areas.size else None,
                "mean": float(areas.mean()) if areas.size else None,
                "max": float(areas.max()) if areas.size else None,
            },
            "channel_mean": list(self.channel_mean) if self.channel_mean is not None else None,
            "channel_std": list(self.channel_std) if self.channel_std is not None else None,
            "n_images_for_mean": self.n_images_for_mean,
            "metadata": {
                key: {"distinct": len(counter), "values": dict(counter.most_common(_METADATA_TOP))}
                for key, counter in self.metadata_counts.items()
            },
            "issues": [issue.to_dict() for issue in self.issues],
        }

    def format_table(self, max_metadata_values: int = 8) -> str:
        """Plain-text report for the command line."""
        lines = [f"Dataset {self.name!r}: {self.n_images} images, {self.n_labelled} labelled, {self.n_failed} failed"]
        if self.size_counts:
            sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in self.size_counts.most_common(5))
            more = len(self.size_counts) - 5
            lines.append(f"Image sizes (HxW): {sizes}" + (f", ... {more} more" if more > 0 else ""))
            s = self.size_summary()
            lines.append(
                f"  height {s['min_height']}..{s['max_height']} (mean {s['mean_height']:.1f}), "
                f"width {s['min_width']}..{s['max_width']} (mean {s['mean_width']:.1f})"
            )
        if self.channel_mean is not None and self.channel_std is not None:
            mean = ", ".join(f"{v:.4f}" for v in self.channel_mean)
            std = ", ".join(f"{v:.4f}" for v in self.channel_std)
            lines.append(f"RGB mean (0-1): [{mean}]  std: [{std}]  ({self.n_images_for_mean} images)")
        name_width = max([5] + [len(self.class_names.get(i, "")) for i in self.class_ids])
        header = f"{'id':>5}  {'class':<{name_width}}  {'pixels':>14}  {'share':>7}  {'images':>7}  {'instances':>9}"
        lines += ["", header, "-" * len(header)]
        fractions = self.pixel_fractions
        for i in self.class_ids:
            lines.append(
                f"{i:>5}  {self.class_names.get(i, ''):<{name_width}}  {self.pixel_counts.get(i, 0):>14,}  "
                f"{100 * fractions.get(i, 0.0):>6.2f}%  {self.image_counts.get(i, 0):>7}  {self.instance_counts.get(i, 0):>9}"
            )
        total = self.labelled_pixels + self.ignore_pixels
        share = f" ({100 * self.ignore_pixels / total:.2f}% of all)" if total else ""
        lines.append(f"Void / ignored pixels: {self.ignore_pixels:,}{share}")
        ratio = self.imbalance_ratio
        lines.append(f"Imbalance ratio (max/min nonzero pixels): {ratio:.1f}" if ratio else "Imbalance ratio: n/a")
        if self.unknown_ids:
            lines.append(f"Unknown class ids in labels: {self.unknown_ids} (run validation)")
        if self.metadata_counts:
            lines += ["", "Metadata (keys with mostly unique values, e.g. ids or measurements, are left out):"]
            for key, counter in self.metadata_counts.items():
                if len(counter) > max(max_metadata_values, self.n_images // 2):
                    continue
                shown = ", ".join(f"{v} ({n})" for v, n in counter.most_common(max_metadata_values))
                more = len(counter) - max_metadata_values
                lines.append(f"  {key}: {shown}" + (f", ... {more} more values" if more > 0 else ""))
        if self.issues:
            lines += ["", f"{len(self.issues)} sample(s) could not be read:"]
            lines += [f"  {issue}" for issue in self.issues[:10]]
            if len(self.issues) > 10:
                lines.append(f"  ... {len(self.issues) - 10} more")
        return "\n".join(lines)


# --------------------------------------------------------------------- counting
def _count_values(labels: np.ndarray) -> dict[int, int]:
    """``value -> pixels`` of an integer map."""
    flat = labels.reshape(-1)
    if flat.size and flat.min() >= 0 and flat.max() < 65536:
        counts = np.bincount(flat.astype(np.int64, copy=False))
        present = np.flatnonzero(counts)
        return {int(v): int(counts[v]) for v in present}
    values, counts = np.unique(flat, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _pixel_counts(annotation: Annotation, ignore_index: int) -> tuple[dict[int, int], int]:
    """``(class id -> pixels, void pixels)`` of one annotation (see the module docstring)."""
    if annotation.semantic is not None:
        counts = _count_values(annotation.semantic.labels)
        void = counts.pop(annotation.semantic.ignore_index, 0)
        return counts, void
    if annotation.panoptic is not None:
        areas = annotation.panoptic.areas()
        per_class: Counter[int] = Counter()
        for segment in annotation.panoptic.segments:
            per_class[segment.category_id] += areas.get(segment.id, 0)
        height, width = annotation.panoptic.shape
        void = height * width - sum(areas.values())
        return {k: v for k, v in per_class.items() if v > 0}, int(void)
    if annotation.instances is not None:
        instances = annotation.instances
        if len(instances) == 0:
            return {}, instances.height * instances.width
        ids = _count_values(instance_id_map(instances))
        void = ids.pop(0, 0)
        by_class: Counter[int] = Counter()
        for instance_id, pixels in ids.items():
            by_class[int(instances.class_ids[instance_id - 1])] += pixels
        return dict(by_class), void
    return {}, 0


def _classes_present(annotation: Annotation, ignore_index: int) -> set[int]:
    present: set[int] = set()
    if annotation.semantic is not None:
        present |= set(annotation.semantic.class_ids())
    if annotation.instances is not None:
        areas = annotation.instances.areas()
        present |= {int(c) for c, a in zip(annotation.instances.class_ids, areas) if a > 0}
    if annotation.panoptic is not None:
        areas = annotation.panoptic.areas()
        present |= {s.category_id for s in annotation.panoptic.segments if areas.get(s.id, 0) > 0}
    present.discard(ignore_index)
    return present


def _instance_classes(annotation: Annotation) -> tuple[list[int], list[int]]:
    """Class id of every instance (instances, else panoptic things) and non-crowd areas."""
    if annotation.instances is not None:
        instances = annotation.instances
        crowd = instances.iscrowd if instances.iscrowd is not None else np.zeros(len(instances), bool)
        areas = instances.areas()
        return [int(c) for c in instances.class_ids], [int(a) for a, k in zip(areas, crowd) if not k]
    if annotation.panoptic is not None:
        areas = annotation.panoptic.areas()
        things = [s for s in annotation.panoptic.segments if s.is_thing]
        return [s.category_id for s in things], [areas.get(s.id, 0) for s in things if not s.iscrowd]
    return [], []


def _metadata_values(value: Any) -> Iterable[str]:
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _metadata_values(item)
    elif isinstance(value, dict):
        yield json.dumps(value, sort_keys=True, default=str)
    else:
        yield str(value)


def _mean_indices(n: int, limit: int) -> list[int]:
    """Evenly spread sample indices, at most ``limit`` of ``n`` (deterministic)."""
    if limit <= 0 or n == 0:
        return []
    if n <= limit:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, limit)})


def _load_annotation(sample: Sample, issues: list[DataIssue]) -> Annotation | None:
    """The sample's annotation, or None after recording why it cannot be loaded."""
    try:
        return sample.annotation(cache=False)
    except DataError as exc:
        issues.append(DataIssue.from_error(exc, sample.image_id))
    except (ValueError, OSError) as exc:  # ShapeError and loader bugs on odd files
        issues.append(DataIssue(sample.image_path, f"annotation cannot be loaded: {exc}", "error", sample.image_id))
    return None


def dataset_statistics(
    dataset: SegmentationDataset,
    progress: bool = True,
    compute_mean: bool = True,
    max_images_for_mean: int = 200,
) -> DatasetStats:
    """Count what a dataset holds: sizes, class balance, channel mean/std, metadata.

    Annotations are loaded lazily one by one; a sample whose annotation (or, for the
    mean, image) cannot be read is recorded in ``issues`` and skipped. Image sizes come
    from the samples (no decoding); the RGB mean/std read at most ``max_images_for_mean``
    images spread evenly over the dataset.

    Args:
        dataset: any format's dataset.
        progress: show a tqdm bar (only for more than 50 samples).
        compute_mean: read images for the channel mean/std.
        max_images_for_mean: how many images at most the mean/std reads.

    Returns:
        A :class:`DatasetStats`.

    Example:
        >>> stats = dataset_statistics(dataset)  # doctest: +SKIP
        >>> print(stats.format_table())  # doctest: +SKIP
    """
    taxonomy = dataset.taxonomy
    ignore_index = taxonomy.ignore_index
    stats = DatasetStats(name=dataset.name, n_images=len(dataset), ignore_index=ignore_index)
    pixel_counts: Counter[int] = Counter()
    instance_counts: Counter[int] = Counter()
    image_counts: Counter[int] = Counter()
    mean_at = set(_mean_indices(len(dataset), max_images_for_mean if compute_mean else 0))
    channel_sum = np.zeros(3, dtype=np.float64)
    channel_sq = np.zeros(3, dtype=np.float64)
    n_pixels = 0
    show = progress and len(dataset) > _PROGRESS_MIN_SAMPLES
    for index, sample in enumerate(tqdm(dataset.samples, desc="statistics", unit="img", disable=not show)):
        stats.size_counts[(int(sample.height), int(sample.width))] += 1
        for key, value in sample.metadata.items():
            stats.metadata_counts.setdefault(str(key), Counter()).update(_metadata_values(value))
        annotation = _load_annotation(sample, stats.issues)
        if annotation is None:
            stats.n_failed += 1
        if annotation is not None and not annotation.is_empty:
            stats.n_labelled += 1
            counts, void = _pixel_counts(annotation, ignore_index)
            pixel_counts.update(counts)
            stats.ignore_pixels += void
            classes, areas = _instance_classes(annotation)
            instance_counts.update(classes)
            stats.instance_areas.extend(areas)
            image_counts.update(_classes_present(annotation, ignore_index))
        if index in mean_at:
            try:
                rgb = read_image(sample.image_path)
            except DataError as exc:
                stats.issues.append(DataIssue.from_error(exc, sample.image_id))
                continue
            for channel in range(3):  # exact sums from 256-bin histograms, no float copy
                histogram = np.bincount(rgb[:, :, channel].reshape(-1), minlength=256).astype(np.float64)
                channel_sum[channel] += histogram @ _LEVELS
                channel_sq[channel] += histogram @ _LEVELS_SQ
            n_pixels += rgb.shape[0] * rgb.shape[1]
            stats.n_images_for_mean += 1
    if n_pixels:
        mean = channel_sum / n_pixels
        variance = np.maximum(channel_sq / n_pixels - mean**2, 0.0)
        stats.channel_mean = tuple(float(v / 255.0) for v in mean)  # type: ignore[assignment]
        stats.channel_std = tuple(float(math.sqrt(v) / 255.0) for v in variance)  # type: ignore[assignment]
    found = set(pixel_counts) | set(instance_counts) | set(image_counts)
    unknown = sorted(found - set(taxonomy.ids) - {ignore_index})
    stats.class_ids = list(taxonomy.ids) + unknown
    stats.unknown_ids = unknown
    for info in taxonomy.classes:
        stats.class_names[info.id] = info.name
        stats.class_colors[info.id] = info.color
    for class_id in unknown:
        stats.class_names[class_id] = f"unknown {class_id}"
        stats.class_colors[class_id] = (128, 128, 128)
    stats.pixel_counts = {i: int(pixel_counts.get(i, 0)) for i in stats.class_ids}
    stats.instance_counts = {i: int(instance_counts.get(i, 0)) for i in stats.class_ids}
    stats.image_counts = {i: int(image_counts.get(i, 0)) for i in stats.class_ids}
    return stats
