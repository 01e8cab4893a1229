"""Dataset validation: find every broken or suspicious file before training on it.

:func:`validate_dataset` runs format-independent checks over a
:class:`~pixelwise.data.dataset.SegmentationDataset` and returns a
:class:`ValidationReport` that lists each problem as a
:class:`~pixelwise.data.dataset.DataIssue` (file, reason, hint) with a *kind* code, so a
report can be counted and filtered. Problems the reader already met (files it skipped)
are included with kind ``"reader"``.

Kinds and their severity:

========================  ========  ===============================================
kind                      severity  meaning
========================  ========  ===============================================
``reader``                (as is)   reported by the format reader while reading
``unreadable_image``      error     the image file cannot be decoded
``image_size_mismatch``   error     decoded size differs from the size recorded
``bad_annotation``        error     the label file / record cannot be loaded
``label_size_mismatch``   error     labels are not the size of the image
``unknown_class``         error     label ids that are neither a class nor ignore
``empty_instance``        error     an instance mask with zero pixels
``duplicate_id``          error     two samples share an image id
``duplicate_file``        warning   one image file is listed by several samples
``overlapping_instances`` warning   non-crowd instance masks share pixels (opt-in)
``no_labels``             warning   the image carries no label at all (opt-out)
========================  ========  ===============================================

Polygons are turned into masks by the readers, so they are checked there;
:func:`validate_polygon` is the shared helper for that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pixelwise.core.errors import DataError
from pixelwise.core.labels import Annotation
from pixelwise.core.masks import polygon_self_intersects, ring_area
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset
from pixelwise.data.image_io import read_image

__all__ = ["ISSUE_KINDS", "ValidationReport", "validate_dataset", "validate_polygon"]

#: Kind code -> one-line description (see the module docstring).
ISSUE_KINDS: dict[str, str] = {
    "reader": "reported by the format reader",
    "unreadable_image": "image file cannot be decoded",
    "image_size_mismatch": "image size differs from the recorded size",
    "bad_annotation": "annotation cannot be loaded",
    "label_size_mismatch": "labels differ in size from the image",
    "unknown_class": "label ids not in the taxonomy",
    "empty_instance": "instance mask with zero pixels",
    "duplicate_id": "image id used by several samples",
    "duplicate_file": "image file listed more than once",
    "overlapping_instances": "instance masks overlap",
    "no_labels": "image has no labels",
}

_PROGRESS_MIN_SAMPLES = 50
_LIST_LIMIT = 10


def _short(values: Sequence[Any], limit: int = _LIST_LIMIT) -> str:
    values = list(values)
    text = ", ".join(str(v) for v in values[:limit])
    return f"[{text}{', ...' if len(values) > limit else ''}]"


@dataclass
class ValidationReport:
    """Everything :func:`validate_dataset` found.

    Attributes:
        issues: problems in discovery order (reader issues first).
        kinds: the kind code of each issue (same length as ``issues``).
        n_checked: samples checked.
        n_ok: checked samples without any error (warnings allowed).
        name: the dataset's name.
    """

    issues: list[DataIssue] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    n_checked: int = 0
    n_ok: int = 0
    name: str = "dataset"

    def add(self, kind: str, issue: DataIssue) -> None:
        """Record one issue under a kind code from :data:`ISSUE_KINDS`."""
        if kind not in ISSUE_KINDS:
            raise KeyError(f"unknown issue kind {kind!r}; valid kinds are {sorted(ISSUE_KINDS)}")
        self.issues.append(issue)
        self.kinds.append(kind)

    @property
    def counts(self) -> dict[str, int]:
        """``kind -> number of issues``, commonest first."""
        return dict(Counter(self.kinds).most_common())

    @property
    def n_errors(self) -> int:
        """Issues of severity ``"error"``."""
        return sum(1 for i in self.issues if i.severity == "error")

    @property
    def n_warnings(self) -> int:
        """Issues of any other severity."""
        return len(self.issues) - self.n_errors

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings do not count)."""
        return self.n_errors == 0

    def of_kind(self, kind: str) -> list[DataIssue]:
        """The issues of one kind."""
        return [i for i, k in zip(self.issues, self.kinds) if k == kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; each issue carries its ``kind``."""
        return {
            "name": self.name,
            "ok": self.ok,
            "n_checked": self.n_checked,
            "n_ok": self.n_ok,
            "n_errors": self.n_errors,
            "n_warnings": self.n_warnings,
            "counts": self.counts,
            "issues": [{**issue.to_dict(), "kind": kind} for issue, kind in zip(self.issues, self.kinds)],
        }

    def format_text(self, max_issues: int = 50) -> str:
        """Plain-text report for the command line: summary, counts per kind, then issues."""
        verdict = "OK" if self.ok else "FAILED"
        lines = [
            f"Validation of {self.name!r}: {verdict} - {self.n_checked} samples checked, {self.n_ok} without errors, "
            f"{self.n_errors} error(s), {self.n_warnings} warning(s)"
        ]
        for kind, count in self.counts.items():
            lines.append(f"  {kind:<22} {count:>6}  {ISSUE_KINDS[kind]}")
        if self.issues:
            lines.append("")
            ordered = sorted(self.issues, key=lambda i: i.severity != "error")  # errors first, stable
            lines += [f"  {issue}" for issue in ordered[:max_issues]]
            if len(ordered) > max_issues:
                lines.append(f"  ... and {len(ordered) - max_issues} more")
        return "\n".join(lines)


# ----------------------------------------------------------------------- polygons
def validate_polygon(ring: np.ndarray | Sequence[float] | Sequence[Sequence[float]], width: int, height: int,
                     tolerance: float = 0.5) -> list[str]:
    """Problems of one polygon ring, in plain words (empty list when it is fine).

    Coordinates are in the pixel-edge convention of :mod:`pixelwise.core.masks` (the image
    spans ``[0, width] x [0, height]``). A closing point equal to the first is ignored.

    Checks: odd number of coordinates, non-finite values, fewer than 3 distinct points,
    zero area, self-intersection, and vertices more than ``tolerance`` pixels outside the
    image.

    Args:
        ring: ``(K, 2)`` ``(x, y)`` vertices or a flat COCO list ``[x0, y0, x1, y1, ...]``.
        width: image width W.
        height: image height H.
        tolerance: how far outside the image a vertex may lie (rounding slack).

    Returns:
        A list of problem descriptions.

    Example:
        >>> validate_polygon([0, 0, 4, 0, 4, 4, 0, 4], width=8, height=8)
        []
        >>> validate_polygon([0, 0, 4, 4], width=8, height=8)
        ['polygon has 2 distinct points; at least 3 are needed']
    """
    try:
        points = np.asarray(ring, dtype=np.float64)
    except (TypeError, ValueError):
        return ["polygon coordinates are not numbers"]
    if points.ndim == 1:
        if points.size % 2:
            return [f"polygon has an odd number of coordinates ({points.size}); expected x, y pairs"]
        points = points.reshape(-1, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        return [f"polygon must be (K, 2) x, y vertices or a flat list, got shape {points.shape}"]
    if not np.isfinite(points).all():
        return ["polygon has non-finite coordinates (NaN or inf)"]
    if len(points) >= 2 and np.array_equal(points[0], points[-1]):
        points = points[:-1]
    if len(points) < 3:
        return [f"polygon has {len(points)} distinct points; at least 3 are needed"]
    problems: list[str] = []
    if polygon_self_intersects(points):
        problems.append("polygon intersects itself")
    elif ring_area(points) <= 1e-9:
        problems.append("polygon has zero area (its points are collinear or repeated)")
    x_min, y_min = points.min(axis=0)
    x_max, y_max = points.max(axis=0)
    if x_min < -tolerance or y_min < -tolerance or x_max > width + tolerance or y_max > height + tolerance:
        problems.append(
            f"polygon reaches outside the image: x in [{x_min:g}, {x_max:g}], y in [{y_min:g}, {y_max:g}] "
            f"but the image is {width}x{height} (WxH)"
        )
    return problems


# ------------------------------------------------------------------- per sample
def _load_annotation(sample: Sample) -> Annotation:
    """Load fresh from the loader (no size check: the caller reports mismatches itself)."""
    if sample.loader is not None:
        return sample.loader()
    return sample.annotation()


def _check_classes(annotation: Annotation, taxonomy: Taxonomy, sample: Sample, report: ValidationReport) -> bool:
    """Report label ids unknown to the taxonomy; True when some were found."""
    found = False
    hint = f"add the classes to the taxonomy, remap them, or set them to the ignore index {taxonomy.ignore_index}"
    if annotation.semantic is not None:
        labels = annotation.semantic.labels
        values = np.unique(labels)
        unknown = [v for v in taxonomy.unknown_ids(values.tolist()) if v != annotation.semantic.ignore_index]
        if unknown:
            pixels = int(np.isin(labels, unknown).sum())
            report.add("unknown_class", DataIssue(
                sample.image_path, f"semantic labels contain class ids {_short(unknown)} not in the taxonomy "
                f"({pixels} pixels)", "error", sample.image_id, hint))
            found = True
    if annotation.instances is not None and len(annotation.instances):
        class_ids = annotation.instances.class_ids
        unknown = taxonomy.unknown_ids(class_ids.tolist())
        if unknown:
            which = np.flatnonzero(np.isin(class_ids, unknown)).tolist()
            report.add("unknown_class", DataIssue(
                sample.image_path, f"instances {_short(which)} have class ids {_short(unknown)} not in the taxonomy",
                "error", sample.image_id, hint))
            found = True
    if annotation.panoptic is not None:
        unknown = taxonomy.unknown_ids(s.category_id for s in annotation.panoptic.segments)
        if unknown:
            report.add("unknown_class", DataIssue(
                sample.image_path, f"panoptic segments have category ids {_short(unknown)} not in the taxonomy",
                "error", sample.image_id, hint))
            found = True
    return found


def _check_instances(annotation: Annotation, sample: Sample, report: ValidationReport, check_overlaps: bool) -> bool:
    """Report empty (and optionally overlapping) instances; True when an error was found."""
    instances = annotation.instances
    if instances is None or len(instances) == 0:
        return False
    error = False
    areas = instances.areas()
    empty = np.flatnonzero(areas == 0)
    if empty.size:
        names = instances.ids[empty].tolist() if instances.ids is not None else empty.tolist()
        label = "ids" if instances.ids is not None else "indices"
        report.add("empty_instance", DataIssue(
            sample.image_path, f"{empty.size} instance mask(s) are empty (0 pixels), {label} {_short(names)}",
            "error", sample.image_id, "drop these annotations or redraw them; empty masks have no box"))
        error = True
    if check_overlaps:
        crowd = instances.iscrowd if instances.iscrowd is not None else np.zeros(len(instances), bool)
        solid = np.flatnonzero(~crowd & (areas > 0))
        if len(solid) > 1:
            masks = instances.select(solid).dense_masks()
            depth = masks.sum(axis=0, dtype=np.int32)
            shared = int((depth > 1).sum())
            if shared:
                report.add("overlapping_instances", DataIssue(
                    sample.image_path, f"instance masks overlap on {shared} pixels", "warning", sample.image_id,
                    "overlaps are resolved by painting later instances on top; fix the masks if that is wrong"))
    return error


def _has_labels(annotation: Annotation) -> bool:
    if annotation.semantic is not None:
        labels = annotation.semantic.labels
        if (labels != annotation.semantic.ignore_index).any():
            return True
    if annotation.instances is not None and len(annotation.instances):
        return True
    if annotation.panoptic is not None and (annotation.panoptic.segment_ids != 0).any():
        return True
    return False


def _check_sample(
    sample: Sample,
    taxonomy: Taxonomy,
    report: ValidationReport,
    check_images: bool,
    check_overlaps: bool,
    warn_unlabelled: bool,
) -> bool:
    """Run the per-sample checks; True when the sample has no error."""
    ok = True
    expected = (int(sample.height), int(sample.width))
    if check_images:
        try:
            image = read_image(sample.image_path)
        except DataError as exc:
            report.add("unreadable_image", DataIssue.from_error(exc, sample.image_id))
            ok = False
        else:
            actual = (int(image.shape[0]), int(image.shape[1]))
            if actual != expected:
                report.add("image_size_mismatch", DataIssue(
                    sample.image_path, f"image is {actual[0]}x{actual[1]} (HxW) but the dataset records "
                    f"{expected[0]}x{expected[1]}", "error", sample.image_id,
                    "fix the size in the annotation file (EXIF rotation swaps height and width)"))
                ok = False
    try:
        annotation = _load_annotation(sample)
    except DataError as exc:
        issue = DataIssue.from_error(exc, sample.image_id)
        if issue.path is None:
            issue = DataIssue(sample.image_path, issue.reason, "error", sample.image_id, issue.hint)
        report.add("bad_annotation", issue)
        return False
    except (ValueError, KeyError, TypeError, OSError) as exc:  # ShapeError and loader bugs on odd input
        report.add("bad_annotation", DataIssue(
            sample.image_path, f"annotation cannot be loaded: {exc.__class__.__name__}: {exc}", "error",
            sample.image_id))
        return False
    shape = annotation.shape
    if shape is not None and shape != expected:
        report.add("label_size_mismatch", DataIssue(
            sample.image_path, f"labels are {shape[0]}x{shape[1]} (HxW) but the image is {expected[0]}x{expected[1]}",
            "error", sample.image_id, "re-export the mask at the image's size; masks are never resized silently"))
        ok = False
    if _check_classes(annotation, taxonomy, sample, report):
        ok = False
    if _check_instances(annotation, sample, report, check_overlaps):
        ok = False
    if warn_unlabelled and not _has_labels(annotation):
        report.add("no_labels", DataIssue(
            sample.image_path, "image has no labels" if not annotation.is_empty else "image has no annotation",
            "warning", sample.image_id, "label it, or remove it unless it is meant as a negative example"))
    return ok


def _file_key(path: Path) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


def validate_dataset(
    dataset: SegmentationDataset,
    check_images: bool = True,
    progress: bool = True,
    check_overlaps: bool = False,
    warn_unlabelled: bool = True,
) -> ValidationReport:
    """Check every sample of a dataset and collect the problems.

    Never stops at a bad file. Annotations are loaded afresh from their files (cached
    in-memory annotations are used as they are) and are not kept.

    Args:
        dataset: any format's dataset; its ``issues`` open the report (kind ``"reader"``).
        check_images: decode every image (catches truncated files and wrong sizes; the
            slowest part). False checks labels only.
        progress: show a tqdm bar (only for more than 50 samples).
        check_overlaps: warn when non-crowd instance masks share pixels.
        warn_unlabelled: warn about images without any label.

    Returns:
        A :class:`ValidationReport`; ``report.ok`` is False when any error was found.

    Example:
        >>> report = validate_dataset(dataset)  # doctest: +SKIP
        >>> print(report.format_text())  # doctest: +SKIP
    """
    report = ValidationReport(name=dataset.name)
    for issue in dataset.issues:
        report.add("reader", issue)
    taxonomy = dataset.taxonomy
    ids_seen: dict[str, Sample] = {}
    files_seen: dict[str, Sample] = {}
    show = progress and len(dataset) > _PROGRESS_MIN_SAMPLES
    for sample in tqdm(dataset.samples, desc="validate", unit="img", disable=not show):
        report.n_checked += 1
        ok = True
        first = ids_seen.setdefault(sample.image_id, sample)
        if first is not sample:
            report.add("duplicate_id", DataIssue(
                sample.image_path, f"image id {sample.image_id!r} is already used by {first.image_path}", "error",
                sample.image_id, "give every image a unique id (for example its path relative to the root)"))
            ok = False
        key = _file_key(sample.image_path)
        other = files_seen.setdefault(key, sample)
        if other is not sample:
            report.add("duplicate_file", DataIssue(
                sample.image_path, f"image file is listed twice (ids {other.image_id!r} and {sample.image_id!r})",
                "warning", sample.image_id, "remove one entry; a repeated image can leak between splits"))
        if not _check_sample(sample, taxonomy, report, check_images, check_overlaps, warn_unlabelled):
            ok = False
        report.n_ok += int(ok)
    return report
