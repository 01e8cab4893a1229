"""The in-memory description of a labelled dataset, shared by every format.

A :class:`SegmentationDataset` is a taxonomy plus a list of :class:`Sample`. A sample
knows its image file, size and metadata; its :class:`~pixelwise.core.Annotation` is loaded
lazily (a folder of 10,000 masks is not held in memory) and cached only on request.
Readers never stop at the first bad file: they skip it and record a :class:`DataIssue`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelwise.core.errors import DataError
from pixelwise.core.labels import Annotation
from pixelwise.core.taxonomy import Taxonomy

#: Metadata keys every format carries when it can; any other key is kept too.
METADATA_KEYS = ("source", "camera", "lighting", "location", "timestamp", "tags")


@dataclass(frozen=True)
class DataIssue:
    """A problem found in a dataset: which file, what is wrong, how bad.

    Attributes:
        path: the file at fault (image, mask, label file or JSON).
        reason: plain-words description, e.g. "mask is 10x10 but image is 32x24".
        severity: "error" (the sample was skipped or is unusable) or "warning".
        image_id: the sample concerned, when known.
        hint: how to fix it, when known.
    """

    path: Path | None
    reason: str
    severity: str = "error"
    image_id: str | None = None
    hint: str | None = None

    @classmethod
    def from_error(cls, error: DataError, image_id: str | None = None, severity: str = "error") -> DataIssue:
        """Wrap a raised :class:`DataError`."""
        return cls(error.path, error.reason, severity, image_id, error.hint)

    def __str__(self) -> str:
        where = str(self.path) if self.path else (self.image_id or "dataset")
        tail = f" (hint: {self.hint})" if self.hint else ""
        return f"[{self.severity}] {where}: {self.reason}{tail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "path": str(self.path) if self.path else None,
            "reason": self.reason,
            "severity": self.severity,
            "image_id": self.image_id,
            "hint": self.hint,
        }


AnnotationLoader = Callable[[], Annotation]


@dataclass
class Sample:
    """One image of a dataset.

    Attributes:
        image_id: unique id within the dataset (usually the file stem).
        image_path: where the image file is.
        height: image height in pixels (after EXIF orientation).
        width: image width in pixels.
        metadata: free key/values; see :data:`METADATA_KEYS` for the common ones.
        loader: returns the annotation; called by :meth:`annotation`.
    """

    image_id: str
    image_path: Path
    height: int
    width: int
    metadata: dict[str, Any] = field(default_factory=dict)
    loader: AnnotationLoader | None = field(default=None, repr=False)
    _cached: Annotation | None = field(default=None, repr=False)

    @classmethod
    def with_annotation(
        cls, image_id: str, image_path: Path, annotation: Annotation, metadata: Mapping[str, Any] | None = None
    ) -> Sample:
        """A sample whose annotation is already in memory."""
        shape = annotation.shape
        if shape is None:
            raise ValueError(f"{image_id}: with_annotation needs at least one label view to know the size")
        return cls(image_id, Path(image_path), shape[0], shape[1], dict(metadata or {}), None, annotation)

    def annotation(self, cache: bool = False) -> Annotation:
        """Load (or return the held) annotation; empty :class:`Annotation` if unlabelled.

        Raises:
            DataError: when the label file behind this sample is broken.
        """
        if self._cached is not None:
            return self._cached
        annotation = self.loader() if self.loader is not None else Annotation()
        shape = annotation.shape
        if shape is not None and shape != (self.height, self.width):
            raise DataError(
                self.image_path,
                f"labels are {shape[0]}x{shape[1]} (HxW) but the image is {self.height}x{self.width}",
                "re-export the mask at the image's size",
            )
        if cache:
            self._cached = annotation
        return annotation


@dataclass
class SegmentationDataset:
    """A taxonomy, its samples, and the issues met while reading them.

    Attributes:
        taxonomy: the classes.
        samples: readable samples, in a stable order.
        issues: files skipped or suspicious while reading.
        name: a label for reports.
        root: folder (or file) it was read from, if any.
        format: the format name it was read as, if any.
    """

    taxonomy: Taxonomy
    samples: list[Sample] = field(default_factory=list)
    issues: list[DataIssue] = field(default_factory=list)
    name: str = "dataset"
    root: Path | None = None
    format: str | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def by_id(self, image_id: str) -> Sample:
        """The sample with this id (KeyError if absent)."""
        for sample in self.samples:
            if sample.image_id == image_id:
                return sample
        raise KeyError(f"no sample {image_id!r} in {self.name}")

    def subset(self, image_ids: list[str], name: str | None = None) -> SegmentationDataset:
        """A dataset of the given ids, in that order (issues are not copied)."""
        index = {s.image_id: s for s in self.samples}
        missing = [i for i in image_ids if i not in index]
        if missing:
            raise KeyError(f"ids not in {self.name}: {missing[:5]}")
        return SegmentationDataset(self.taxonomy, [index[i] for i in image_ids], [], name or self.name, self.root, self.format)


def write_manifest(dataset: SegmentationDataset, path: Path) -> Path:
    """Write a JSON manifest: taxonomy, one record per sample (id, file, size, metadata), issues.

    Args:
        dataset: what to describe.
        path: output ``.json`` file (parent folders are created).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent
    records = []
    for sample in dataset.samples:
        try:
            file = str(Path(sample.image_path).resolve().relative_to(base.resolve()))
        except ValueError:
            file = str(sample.image_path)
        records.append(
            {"image_id": sample.image_id, "file": file, "height": sample.height, "width": sample.width, "metadata": sample.metadata}
        )
    payload = {
        "name": dataset.name,
        "format": dataset.format,
        "taxonomy": dataset.taxonomy.to_dict(),
        "images": records,
        "issues": [i.to_dict() for i in dataset.issues],
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def read_manifest_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """``image_id -> metadata`` from a manifest written by :func:`write_manifest` ({} if absent)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text())
        return {str(r["image_id"]): dict(r.get("metadata") or {}) for r in payload.get("images", [])}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(path, f"manifest is not valid JSON of the expected form: {exc}") from exc
