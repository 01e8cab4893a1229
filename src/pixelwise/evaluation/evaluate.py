"""Dataset-level evaluation of a segmenter against ground truth, at original resolution.

:func:`evaluate` runs a :class:`~pixelwise.runtime.Segmenter` over every sample of a
:class:`~pixelwise.data.dataset.SegmentationDataset` and compares its ``(H, W)`` labels
with the sample's semantic map (derived from instances or panoptic segments when the
format holds only those). It streams: one confusion matrix for the dataset, one per
metadata slice, and a per-image score used to rank the worst images; only the few worst
images are kept in memory for the report.

Example:
    >>> import pixelwise  # doctest: +SKIP
    >>> from pixelwise.data.formats import read_dataset  # doctest: +SKIP
    >>> result = evaluate(pixelwise.load("best.pt"), read_dataset("val/", "voc"))  # doctest: +SKIP
    >>> print(result.format_summary())  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from pixelwise.core.convert import complete_annotation
from pixelwise.core.errors import DataError, PixelwiseError, TaxonomyError
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset
from pixelwise.data.image_io import read_image
from pixelwise.evaluation.slices import SliceAccumulator, SliceMetrics, choose_slice_keys
from pixelwise.metrics.confusion import (
    ConfusionMatrix,
    LabelRangeError,
    SegmentationMetrics,
    boundary_f1,
    metrics_from_matrix,
)
from pixelwise.runtime.predictor import Segmenter

__all__ = ["EvaluationResult", "ImageScore", "WorstCase", "evaluate", "check_taxonomies"]

#: Worst images are kept at most this large (longest side, pixels) for the report.
_WORST_MAX_SIDE = 512


@dataclass(frozen=True)
class ImageScore:
    """How well one image was segmented.

    Attributes:
        image_id: the sample's id.
        image_path: its file.
        iou: mean IoU over the classes present in its ground truth or prediction (NaN when
            every pixel is void).
        pixel_accuracy: correct / labelled pixels (NaN when every pixel is void).
        boundary_f1: mean boundary F1 over classes with a boundary in either map (NaN if none).
        pixels: labelled (non-void) pixels.
        metadata: the sample's metadata.
    """

    image_id: str
    image_path: str
    iou: float
    pixel_accuracy: float
    boundary_f1: float
    pixels: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NaN becomes None)."""
        return {
            "image_id": self.image_id,
            "image_path": self.image_path,
            "iou": _clean(self.iou),
            "pixel_accuracy": _clean(self.pixel_accuracy),
            "boundary_f1": _clean(self.boundary_f1),
            "pixels": self.pixels,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class WorstCase:
    """A badly segmented image kept for the report (shrunk to at most 512 px per side).

    Attributes:
        score: its :class:`ImageScore`.
        image: ``(h, w, 3) uint8`` RGB.
        target: ``(h, w)`` int32 ground-truth ids (void = the taxonomy's ignore index).
        prediction: ``(h, w)`` int32 predicted ids.
    """

    score: ImageScore
    image: np.ndarray
    target: np.ndarray
    prediction: np.ndarray


def _clean(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _nanmean(values: Sequence[float] | np.ndarray) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` measured.

    Attributes:
        taxonomy: the classes scored (the segmenter's).
        metrics: pooled metrics of all evaluated pixels.
        boundary_f1: mean over images of the per-image boundary F1.
        boundary_f1_per_class: ``(K,)`` float64 mean over images per class (NaN when a
            class never had a boundary).
        boundary_tolerance: distance tolerance of the boundary F1, in pixels.
        per_image: one :class:`ImageScore` per evaluated image, in dataset order.
        slices: per metadata value metrics (see :mod:`pixelwise.evaluation.slices`).
        slice_keys: the metadata keys sliced by.
        worst: the worst images by IoU, worst first.
        issues: problems met (the dataset's read issues, then skipped samples).
        dataset_name: for the report title.
        seconds: wall time of the evaluation.
    """

    taxonomy: Taxonomy
    metrics: SegmentationMetrics
    boundary_f1: float
    boundary_f1_per_class: np.ndarray
    boundary_tolerance: float
    per_image: list[ImageScore]
    slices: list[SliceMetrics]
    slice_keys: list[str]
    worst: list[WorstCase]
    issues: list[DataIssue]
    dataset_name: str = "dataset"
    seconds: float = 0.0

    @property
    def num_images(self) -> int:
        """Images evaluated (skipped samples excluded)."""
        return len(self.per_image)

    @property
    def class_names(self) -> list[str]:
        """Names of the K score channels (``id <k>`` for ids missing from the taxonomy)."""
        return [
            self.taxonomy.name_of(k) if k in self.taxonomy else f"id {k}" for k in range(self.metrics.num_classes)
        ]

    def summary(self) -> dict[str, Any]:
        """Headline numbers (JSON-friendly)."""
        m = self.metrics
        return {
            "dataset": self.dataset_name,
            "images": self.num_images,
            "issues": len(self.issues),
            "pixel_accuracy": _clean(m.pixel_accuracy),
            "miou": _clean(m.miou),
            "mean_dice": _clean(m.mean_dice),
            "frequency_weighted_iou": _clean(m.frequency_weighted_iou),
            "mean_class_accuracy": _clean(m.macro_recall),
            "boundary_f1": _clean(self.boundary_f1),
            "boundary_tolerance_px": self.boundary_tolerance,
            "mean_image_iou": _clean(_nanmean([s.iou for s in self.per_image])),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.num_images / self.seconds, 3) if self.seconds > 0 else None,
        }

    def per_class_rows(self) -> list[dict[str, Any]]:
        """One row per class: id, name, IoU, Dice, precision, recall, boundary F1, support."""
        m = self.metrics
        rows = []
        for k, name in enumerate(self.class_names):
            rows.append(
                {
                    "class_id": k,
                    "class_name": name,
                    "iou": _clean(m.iou[k]),
                    "dice": _clean(m.dice[k]),
                    "precision": _clean(m.precision[k]),
                    "recall": _clean(m.recall[k]),
                    "boundary_f1": _clean(self.boundary_f1_per_class[k]),
                    "support": int(m.support[k]),
                    "predicted": int(m.matrix[:, k].sum()),
                }
            )
        return rows

    def slice_rows(self) -> list[dict[str, Any]]:
        """One row per slice value (key, value, images, pixels, accuracy, mIoU, gap to overall)."""
        return [s.to_row(self.metrics.miou) for s in self.slices]

    def to_dict(self) -> dict[str, Any]:
        """Summary, full metrics, per-class rows, slices, per-image scores and issues."""
        return {
            "summary": self.summary(),
            "metrics": self.metrics.to_dict(self.class_names),
            "per_class": self.per_class_rows(),
            "slice_keys": self.slice_keys,
            "slices": self.slice_rows(),
            "worst": [w.score.image_id for w in self.worst],
            "per_image": [s.to_dict() for s in self.per_image],
            "issues": [i.to_dict() for i in self.issues],
        }

    def format_summary(self, max_slices: int = 20) -> str:
        """A plain-text table for the terminal."""
        s = self.summary()

        def pct(value: float | None) -> str:
            return "   n/a" if value is None else f"{100 * value:6.2f}"

        lines = [
            f"{self.dataset_name}: {s['images']} images evaluated, {s['issues']} issues, {s['seconds']:.1f} s",
            f"  mIoU {pct(s['miou'])}   pixel acc {pct(s['pixel_accuracy'])}   mean Dice {pct(s['mean_dice'])}"
            f"   boundary F1@{self.boundary_tolerance:g}px {pct(s['boundary_f1'])}",
            "",
            f"  {'class':24s} {'IoU':>7s} {'Dice':>7s} {'BF1':>7s} {'support':>12s}",
        ]
        for row in self.per_class_rows():
            lines.append(
                f"  {row['class_name'][:24]:24s} {pct(row['iou']):>7s} {pct(row['dice']):>7s} "
                f"{pct(row['boundary_f1']):>7s} {row['support']:12d}"
            )
        if self.slices:
            lines += ["", f"  {'slice':30s} {'images':>7s} {'mIoU':>7s} {'acc':>7s} {'gap':>7s}"]
            for row in self.slice_rows()[:max_slices]:
                gap = row.get("miou_gap")
                gap_text = "   n/a" if gap is None else f"{100 * gap:+6.2f}"
                label = f"{row['key']}={row['value']}"[:30]
                lines.append(
                    f"  {label:30s} {row['images']:7d} {pct(row['miou']):>7s} {pct(row['pixel_accuracy']):>7s} {gap_text:>7s}"
                )
            if len(self.slices) > max_slices:
                lines.append(f"  ... {len(self.slices) - max_slices} more slices in per_slice.csv")
        return "\n".join(lines)


def check_taxonomies(model: Taxonomy, data: Taxonomy) -> None:
    """Require every dataset class to exist in the model with the same id and name.

    Names are compared case-insensitively; extra model classes are fine.

    Raises:
        TaxonomyError: listing the classes that differ.
    """
    problems = []
    for info in data:
        if info.id not in model:
            problems.append(f"id {info.id} ({info.name!r}) is not a model class")
        elif model.name_of(info.id).lower() != info.name.lower():
            problems.append(f"id {info.id} is {info.name!r} in the dataset but {model.name_of(info.id)!r} in the model")
    if problems:
        raise TaxonomyError(
            "dataset and model classes differ: " + "; ".join(problems[:8])
            + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else "")
            + "; remap the dataset ids, or compare ids as they are "
            "(evaluate(..., check_taxonomy=False) / pixelwise val --ignore-class-names)"
        )


def semantic_target(sample: Sample, taxonomy: Taxonomy) -> np.ndarray | None:
    """``(H, W)`` ground-truth ids with void = ``taxonomy.ignore_index``, or None if unlabelled."""
    annotation = sample.annotation()
    if annotation.is_empty:
        return None
    if annotation.semantic is None:
        annotation = complete_annotation(annotation, taxonomy)
    semantic = annotation.semantic
    if semantic is None:
        return None
    labels = np.asarray(semantic.labels)
    if semantic.ignore_index != taxonomy.ignore_index:
        labels = np.where(labels == semantic.ignore_index, taxonomy.ignore_index, labels)
    return labels


def _shrink(image: np.ndarray, target: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = target.shape
    scale = _WORST_MAX_SIDE / max(h, w)
    if scale >= 1:
        return image.copy(), target.astype(np.int32), prediction.astype(np.int32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA),
        cv2.resize(target.astype(np.int32), size, interpolation=cv2.INTER_NEAREST),
        cv2.resize(prediction.astype(np.int32), size, interpolation=cv2.INTER_NEAREST),
    )


def evaluate(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    slice_keys: Sequence[str] | None = None,
    progress: bool = True,
    *,
    boundary_tolerance: float = 2.0,
    keep_worst: int = 10,
    check_taxonomy: bool = True,
    predict_options: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Score a segmenter on a labelled dataset at each image's original resolution.

    Per image: read the image, predict ``(H, W)`` labels, load the semantic ground truth
    (derived from instances / panoptic if needed), update the dataset confusion matrix,
    the image's own matrix (its mean IoU over classes present in ground truth or
    prediction ranks the worst images), its boundary F1, and the slice matrices.
    Unreadable images, broken or missing labels, size mismatches and labels outside the
    model's classes are recorded as issues and skipped.

    Args:
        segmenter: the model pipeline.
        dataset: samples with semantic, instance or panoptic ground truth.
        slice_keys: metadata keys to slice by; None chooses every key with 2 to 20
            distinct values (``camera``, ``lighting``, ``location``, ``tags``...);
            ``[]`` disables slicing.
        progress: show a tqdm bar.
        boundary_tolerance: boundary F1 distance tolerance in pixels.
        keep_worst: how many worst images to keep for the report.
        check_taxonomy: require matching class ids and names (see :func:`check_taxonomies`).
        predict_options: passed to :meth:`Segmenter.predict_batch` (``threshold``,
            ``min_region``, ``fill_holes``, ``smooth``).

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        TaxonomyError: dataset and model classes differ (with ``check_taxonomy``).
    """
    if check_taxonomy:
        check_taxonomies(segmenter.taxonomy, dataset.taxonomy)
    taxonomy = segmenter.taxonomy
    k = segmenter.num_classes
    ignore = taxonomy.ignore_index
    keys = choose_slice_keys(s.metadata for s in dataset.samples) if slice_keys is None else list(slice_keys)
    options = dict(predict_options or {})
    options["keep_probabilities"] = False

    total = ConfusionMatrix(k, ignore_index=ignore)
    slices = SliceAccumulator(keys, k)
    per_image: list[ImageScore] = []
    bf_rows: list[np.ndarray] = []
    worst_heap: list[tuple[float, int, WorstCase]] = []
    counter = itertools.count()
    issues: list[DataIssue] = list(dataset.issues)
    start = time.perf_counter()

    def score_chunk(chunk: list[tuple[Sample, np.ndarray, np.ndarray]]) -> None:
        results = segmenter.predict_batch([rgb for _, rgb, _ in chunk], **options)
        for (sample, rgb, target), result in zip(chunk, results):
            prediction = result.labels
            image_cm = ConfusionMatrix(k, ignore_index=ignore)
            try:
                image_cm.update(prediction, target)
            except LabelRangeError as exc:
                issues.append(DataIssue(sample.image_path, f"ground truth: {exc}", "error", sample.image_id,
                                        "the labels use ids the model does not predict"))
                continue
            total.merge(image_cm)
            image_metrics = metrics_from_matrix(image_cm.matrix)
            bf = np.asarray(
                boundary_f1(prediction, target, tolerance_px=boundary_tolerance, num_classes=k,
                            ignore_index=ignore, average="none"),
                dtype=np.float64,
            )
            bf_rows.append(bf)
            score = ImageScore(
                image_id=sample.image_id,
                image_path=str(sample.image_path),
                iou=image_metrics.miou,
                pixel_accuracy=image_metrics.pixel_accuracy,
                boundary_f1=_nanmean(bf),
                pixels=int(image_cm.matrix.sum()),
                metadata=dict(sample.metadata),
            )
            per_image.append(score)
            slices.update(sample.metadata, image_cm.matrix)
            if keep_worst > 0 and not math.isnan(score.iou):
                entry = (-score.iou, next(counter), WorstCase(score, *_shrink(rgb, target, prediction)))
                if len(worst_heap) < keep_worst:
                    heapq.heappush(worst_heap, entry)
                elif entry[0] > worst_heap[0][0]:
                    heapq.heapreplace(worst_heap, entry)

    chunk: list[tuple[Sample, np.ndarray, np.ndarray]] = []
    bar = tqdm(dataset.samples, desc="evaluating", unit="img", disable=not progress)
    for sample in bar:
        try:
            target = semantic_target(sample, dataset.taxonomy)
            if target is None:
                issues.append(DataIssue(sample.image_path, "no ground truth", "warning", sample.image_id))
                continue
            rgb = read_image(sample.image_path)
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, sample.image_id))
            continue
        except PixelwiseError as exc:  # e.g. a class id unknown to the taxonomy while converting
            issues.append(DataIssue(sample.image_path, f"{type(exc).__name__}: {exc}", "error", sample.image_id))
            continue
        if rgb.shape[:2] != target.shape:
            issues.append(
                DataIssue(
                    sample.image_path,
                    f"image is {rgb.shape[0]}x{rgb.shape[1]} but its labels are {target.shape[0]}x{target.shape[1]} (HxW)",
                    "error",
                    sample.image_id,
                    "re-export the mask at the image's size",
                )
            )
            continue
        chunk.append((sample, rgb, target))
        if len(chunk) >= segmenter.batch_size:
            score_chunk(chunk)
            chunk = []
    if chunk:
        score_chunk(chunk)
    bar.close()

    if bf_rows:
        stacked = np.stack(bf_rows)
        with np.errstate(invalid="ignore"):
            counts = (~np.isnan(stacked)).sum(axis=0)
            sums = np.nansum(stacked, axis=0)
            bf_per_class = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    else:
        bf_per_class = np.full(k, np.nan)
    worst = [entry[2] for entry in sorted(worst_heap, key=lambda e: (-e[0], e[1]))]
    return EvaluationResult(
        taxonomy=taxonomy,
        metrics=total.compute(),
        boundary_f1=_nanmean([s.boundary_f1 for s in per_image]),
        boundary_f1_per_class=bf_per_class,
        boundary_tolerance=float(boundary_tolerance),
        per_image=per_image,
        slices=slices.compute(),
        slice_keys=keys,
        worst=worst,
        issues=issues,
        dataset_name=dataset.name,
        seconds=time.perf_counter() - start,
    )
