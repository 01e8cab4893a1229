"""The format registry: one reader and one writer per dataset format, found by name.

Every format module registers itself with :func:`register_format`; callers use
:func:`read_dataset` / :func:`write_dataset` / :func:`convert_dataset`.
A reader never raises on one bad file: it records a DataIssue and skips the sample.
Writers copy (or re-encode) images and write labels, and save the metadata manifest
``pixelwise_manifest.json`` at the root so metadata survives formats that cannot hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pixelwise.data.dataset import SegmentationDataset

MANIFEST_NAME = "pixelwise_manifest.json"


class DatasetReader(Protocol):
    """``reader(path, **options) -> SegmentationDataset``."""

    def __call__(self, path: Path, **options: Any) -> SegmentationDataset: ...


class DatasetWriter(Protocol):
    """``writer(dataset, out_dir, **options) -> Path`` (returns the root written)."""

    def __call__(self, dataset: SegmentationDataset, out_dir: Path, **options: Any) -> Path: ...


@dataclass(frozen=True)
class FormatSpec:
    """A registered format.

    Attributes:
        name: registry key (``coco``, ``coco-panoptic``, ``voc``, ``yolo-seg``, ``cityscapes``, ``masks``).
        reader: reads a folder or file.
        writer: writes a dataset.
        description: one line for ``--help``.
        views: label views the format stores: subset of {"semantic", "instances", "panoptic"}.
    """

    name: str
    reader: DatasetReader
    writer: DatasetWriter
    description: str
    views: frozenset[str]


_FORMATS: dict[str, FormatSpec] = {}


def register_format(spec: FormatSpec) -> FormatSpec:
    """Add a format to the registry (a second registration of a name replaces the first)."""
    _FORMATS[spec.name] = spec
    return spec


def get_format(name: str) -> FormatSpec:
    """The spec of a format; KeyError listing valid names otherwise."""
    _load_builtin_formats()
    try:
        return _FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; valid formats: {', '.join(sorted(_FORMATS))}") from None


def list_formats() -> list[FormatSpec]:
    """Every registered format, by name."""
    _load_builtin_formats()
    return [_FORMATS[k] for k in sorted(_FORMATS)]


def read_dataset(path: str | Path, format: str, **options: Any) -> SegmentationDataset:
    """Read a dataset in a named format (see :func:`list_formats`)."""
    return get_format(format).reader(Path(path), **options)


def write_dataset(dataset: SegmentationDataset, out_dir: str | Path, format: str, **options: Any) -> Path:
    """Write a dataset in a named format; returns the root written."""
    return get_format(format).writer(dataset, Path(out_dir), **options)


def convert_dataset(
    src: str | Path, dst: str | Path, from_format: str, to_format: str, read_options: dict[str, Any] | None = None, **write_options: Any
) -> tuple[SegmentationDataset, Path]:
    """Read ``src`` as one format and write it to ``dst`` as another."""
    dataset = read_dataset(src, from_format, **(read_options or {}))
    return dataset, write_dataset(dataset, dst, to_format, **write_options)


_loaded = False
_BUILTIN_MODULES: tuple[str, ...] = ("coco", "coco_panoptic", "voc", "yolo_seg", "cityscapes", "mask_folder")
ProgressFactory = Callable[..., Any]


def _load_builtin_formats() -> None:
    global _loaded
    if _loaded:
        return
    import importlib

    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(f"pixelwise.data.formats.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pixelwise.data.formats.{module}":
                raise
    _loaded = True


def detect_format(path: str | Path) -> str:
    """Guess a dataset's format from its layout.

    Rules, first match wins: a ``.json`` file is ``coco`` (``coco-panoptic`` when its
    annotations carry ``segments_info``); a folder with ``data.yaml`` is ``yolo-seg``; with
    ``JPEGImages`` + ``SegmentationClass`` it is ``voc``; with ``leftImg8bit`` / ``gtFine`` or
    ``*_gtFine_labelIds.png`` files it is ``cityscapes``; with ``panoptic.json`` it is
    ``coco-panoptic``; with ``annotations.json`` or ``annotations/*.json`` it is ``coco``;
    with ``masks/`` it is ``masks``.

    Raises:
        FormatError: nothing matched; the message lists what was looked for.
    """
    import json

    from pixelwise.core.errors import FormatError

    path = Path(path)
    if not path.exists():
        raise FormatError(path, "does not exist")
    if path.is_file():
        if path.suffix.lower() == ".json":
            try:
                payload = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                return "coco"
            annotations = payload.get("annotations") if isinstance(payload, dict) else None
            if isinstance(annotations, list) and annotations and isinstance(annotations[0], dict) and "segments_info" in annotations[0]:
                return "coco-panoptic"
            return "coco"
        raise FormatError(path, "is a file but not a .json annotation file", "pass the dataset folder or its COCO JSON")
    if (path / "data.yaml").is_file() or (path / "data.yml").is_file():
        return "yolo-seg"
    if (path / "JPEGImages").is_dir() and (path / "SegmentationClass").is_dir():
        return "voc"
    if (path / "leftImg8bit").is_dir() or (path / "gtFine").is_dir() or any(path.rglob("*_gtFine_labelIds.png")):
        return "cityscapes"
    if (path / "panoptic.json").is_file():
        return "coco-panoptic"
    if (path / "annotations.json").is_file() or any((path / "annotations").glob("*.json")):
        return "coco"
    if (path / "masks").is_dir():
        return "masks"
    raise FormatError(
        path,
        "cannot tell the dataset format from the layout",
        "pass --format (coco, coco-panoptic, voc, yolo-seg, cityscapes, masks)",
    )
