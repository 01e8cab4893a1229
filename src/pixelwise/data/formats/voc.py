"""Pascal VOC segmentation format (``voc``): palette PNGs next to JPEG images.

Layout of a VOC root::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png      palette PNG, class id per pixel, 255 = void
    SegmentationObject/<id>.png     palette PNG, instance 1..N per pixel, 0 = none, 255 = void
    ImageSets/Segmentation/<split>.txt   optional: one id per line
    labels.txt                      optional: one class name per line, line index = class id

Reading:
    * ids are the ``SegmentationClass`` PNG stems (or the lines of ``<split>.txt``);
    * the semantic map is the class PNG's palette indices as stored (255 stays void);
    * instances come from the object PNG; each instance's class is the majority of the
      class PNG under it, void pixels not counted (VOC's void band hugs object outlines);
      an instance lying wholly on void has no class and is dropped;
    * ``labels.txt`` gives names (a first line ``__ignore__`` is skipped, labelme style;
      lines ``__unused_<k>__`` reserve an id); ``background`` / ``_background_`` is stuff,
      every other class a thing; colours come from the VOC palette. Without ``labels.txt``
      the 21 VOC classes are used. When a Pixelwise manifest at the root holds a taxonomy
      with the same ids and names, its colours, thing flags and supercategories are used.

Writing (lossy points):
    * class ids must be 0..254 (8-bit PNG, 255 = void); the taxonomy's ignore pixels become 255;
    * the object PNG holds at most 254 instances; crowd instances become 255 (void), so
      they do not come back as instances; instances later in the list cover earlier ones;
    * images are stored as JPEG: JPEG sources are copied, others re-encoded (lossy);
    * scores, boxes and instance ids are not stored; ids are re-numbered 1..N;
    * image ids are made file-safe (characters other than letters, digits, ``._-``
      become ``_``; clashes get ``_2``, ``_3``...).

Example:
    >>> from pixelwise.data.formats import read_dataset, write_dataset
    >>> ds = read_dataset("tests/data/voc_sample", "voc")  # doctest: +SKIP
    >>> write_dataset(ds, "/tmp/voc_copy", "voc")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pixelwise.core.convert import complete_annotation, instances_from_id_map
from pixelwise.core.errors import AnnotationError, DataError, FormatError, PixelwiseError, TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.taxonomy import ClassInfo, Taxonomy, voc_palette
from pixelwise.data.dataset import (
    DataIssue,
    Sample,
    SegmentationDataset,
    read_manifest_metadata,
    write_manifest,
)
from pixelwise.data.formats.common import safe_stem as _safe_stem
from pixelwise.data.formats.base import MANIFEST_NAME, FormatSpec, register_format
from pixelwise.data.image_io import (
    image_size,
    list_images,
    read_image,
    read_label_image,
    write_image,
    write_label_png,
)

__all__ = [
    "VOC_CLASSES",
    "VOC_VOID",
    "read_labels_txt",
    "read_voc",
    "voc_taxonomy",
    "write_labels_txt",
    "write_voc",
]

#: The 21 Pascal VOC segmentation classes; the position is the class id.
VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

#: Void value of VOC masks (object outlines, difficult regions).
VOC_VOID = 255

_BACKGROUND_NAMES = frozenset({"background", "_background_"})
_IGNORE_LINE = "__ignore__"
_UNUSED_RE = re.compile(r"^__unused_\d+__$")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_PROGRESS_MIN = 50
_MAX_OBJECTS = 254


# --------------------------------------------------------------------------- taxonomy


def voc_taxonomy() -> Taxonomy:
    """The 21 VOC classes with VOC palette colours; background is stuff, the rest things.

    Example:
        >>> tax = voc_taxonomy()
        >>> tax.name_of(15), tax.get(15).is_thing, tax.get(0).is_thing
        ('person', True, False)
    """
    return Taxonomy.from_names(list(VOC_CLASSES), stuff=["background"], ignore_index=VOC_VOID)


def read_labels_txt(path: str | Path) -> Taxonomy:
    """Read a VOC / labelme ``labels.txt``: one class name per line, line index = id.

    A first line ``__ignore__`` is skipped (it stands for the void label); blank lines are
    skipped; ``__unused_<k>__`` lines reserve an id without making a class. Names
    ``background`` / ``_background_`` are stuff, all others things; colours follow the
    VOC palette by id; the ignore index is 255.

    Args:
        path: the text file.

    Returns:
        The taxonomy.

    Raises:
        FormatError: unreadable file, no class, duplicate names, or more than 255 ids.
    """
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read labels file ({exc.__class__.__name__}: {exc})") from exc
    names = [line for line in lines if line]
    if names and names[0] == _IGNORE_LINE:
        names = names[1:]
    if len(names) > VOC_VOID:
        raise FormatError(path, f"{len(names)} class lines, but VOC masks hold ids 0..254 only",
                          "merge classes or use another format")
    palette = voc_palette(256)
    classes = []
    for class_id, name in enumerate(names):
        if _UNUSED_RE.match(name):
            continue
        color = tuple(int(c) for c in palette[class_id])
        classes.append(ClassInfo(class_id, name, color, name not in _BACKGROUND_NAMES))  # type: ignore[arg-type]
    if not classes:
        raise FormatError(path, "labels file names no class", "write one class name per line, background first")
    try:
        return Taxonomy(tuple(classes), ignore_index=VOC_VOID)
    except TaxonomyError as exc:
        raise FormatError(path, str(exc), "class names must be unique") from exc


def write_labels_txt(taxonomy: Taxonomy, path: str | Path) -> Path:
    """Write ``labels.txt``: line ``k`` is the name of class id ``k``.

    Ids without a class get a ``__unused_<k>__`` line so later ids keep their line.

    Args:
        taxonomy: classes with ids 0..254.
        path: destination file.

    Returns:
        The path written.

    Raises:
        TaxonomyError: an id above 254 or a name with a line break.
    """
    _check_voc_taxonomy(taxonomy)
    by_id = {c.id: c.name for c in taxonomy}
    lines = []
    for class_id in range(max(by_id) + 1 if by_id else 0):
        name = by_id.get(class_id, f"__unused_{class_id}__")
        if "\n" in name or "\r" in name:
            raise TaxonomyError(f"class name {name!r} contains a line break; labels.txt holds one name per line")
        lines.append(name)
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check_voc_taxonomy(taxonomy: Taxonomy) -> None:
    too_big = [c.id for c in taxonomy if c.id >= VOC_VOID]
    if too_big:
        raise TaxonomyError(
            f"class ids {too_big} do not fit a VOC mask (ids 0..254, 255 = void); "
            "remap them with Taxonomy.remapped() before writing VOC"
        )


def _manifest_taxonomy(root: Path) -> Taxonomy | None:
    """The taxonomy stored in a Pixelwise manifest at ``root`` (None if absent or broken)."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        taxonomy = Taxonomy.from_dict(json.loads(path.read_text())["taxonomy"])
        return Taxonomy(taxonomy.classes, ignore_index=VOC_VOID)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _reader_taxonomy(root: Path) -> Taxonomy:
    labels_txt = root / "labels.txt"
    taxonomy = read_labels_txt(labels_txt) if labels_txt.is_file() else voc_taxonomy()
    stored = _manifest_taxonomy(root)
    if stored is not None and {(c.id, c.name) for c in stored} == {(c.id, c.name) for c in taxonomy}:
        return stored
    return taxonomy


def _read_metadata(root: Path, issues: list[DataIssue]) -> dict[str, dict[str, Any]]:
    try:
        return read_manifest_metadata(root / MANIFEST_NAME)
    except DataError as exc:
        issues.append(DataIssue.from_error(exc, severity="warning"))
        return {}


# --------------------------------------------------------------------------- reading


def _read_index_png(path: Path) -> np.ndarray:
    labels = read_label_image(path)
    if labels.ndim != 2:
        raise AnnotationError(path, "mask is an RGB image, VOC masks are palette (index) PNGs",
                              "convert colours to class ids first (e.g. with the 'masks' format)")
    return labels


def _class_votes(objects: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Instance value -> majority class under it, void class pixels not counted."""
    obj = objects.astype(np.int64).ravel()
    cls = labels.astype(np.int64).ravel()
    valid = (obj != 0) & (obj != VOC_VOID) & (cls != VOC_VOID) & (cls >= 0)
    if not valid.any():
        return {}
    n_cls = int(cls[valid].max()) + 1
    n_obj = int(obj[valid].max()) + 1
    votes = np.bincount(obj[valid] * n_cls + cls[valid], minlength=n_obj * n_cls).reshape(n_obj, n_cls)
    present = np.flatnonzero(votes.sum(axis=1))
    return {int(v): int(np.argmax(votes[v])) for v in present}


def _instances_from_voc(objects: np.ndarray, labels: np.ndarray) -> InstanceSet:
    """Instances of a VOC object map ``(H, W)`` given the class map ``(H, W)``.

    Instances whose pixels are all void in the class map have no class and are dropped.
    """
    class_of = _class_votes(objects, labels)
    values = {int(v) for v in np.unique(objects)} - {0, VOC_VOID}
    orphans = sorted(values - set(class_of))
    if orphans:
        objects = np.where(np.isin(objects, orphans), 0, objects)
    if not class_of:
        return InstanceSet.empty(*objects.shape)
    return instances_from_id_map(objects, class_of=class_of, ignore_ids=(0, VOC_VOID))


def _load_voc_annotation(class_png: Path, object_png: Path | None) -> Annotation:
    labels = _read_index_png(class_png)
    semantic = SemanticMap(labels, ignore_index=VOC_VOID)
    instances = None
    if object_png is not None:
        objects = _read_index_png(object_png)
        if objects.shape != labels.shape:
            raise AnnotationError(
                object_png,
                f"object mask is {objects.shape[1]}x{objects.shape[0]} but class mask is "
                f"{labels.shape[1]}x{labels.shape[0]} (WxH)",
                "both masks must have the image's size",
            )
        instances = _instances_from_voc(objects, labels)
    return Annotation(semantic, instances)


def _split_ids(root: Path, split: str) -> list[str]:
    folder = root / "ImageSets" / "Segmentation"
    path = folder / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []
        raise FormatError(path, f"split {split!r} not found",
                          f"available splits: {available}" if available else "this VOC root has no ImageSets/Segmentation")
    ids: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts:
            ids.setdefault(parts[0], None)
    return list(ids)


def _image_index(folder: Path) -> dict[str, Path]:
    """stem -> image path, JPEG preferred when several files share a stem."""
    index: dict[str, Path] = {}
    for path in list_images(folder, recursive=False):
        current = index.get(path.stem)
        if current is None or (path.suffix.lower() in _JPEG_SUFFIXES and current.suffix.lower() not in _JPEG_SUFFIXES):
            index[path.stem] = path
    return index


def _size_issue(mask: Path, mask_hw: tuple[int, int], image_hw: tuple[int, int], image_id: str) -> DataIssue:
    return DataIssue(
        mask,
        f"mask is {mask_hw[1]}x{mask_hw[0]} but image is {image_hw[1]}x{image_hw[0]} (WxH)",
        "error",
        image_id,
        "re-export the mask at the image's size",
    )


def read_voc(
    path: str | Path, *, split: str | None = None, check_ids: bool = True, progress: bool = True
) -> SegmentationDataset:
    """Read a Pascal VOC segmentation folder.

    Image and mask sizes are checked from file headers; annotations load lazily.

    Args:
        path: the VOC root (holding ``JPEGImages`` and ``SegmentationClass``).
        split: name of an ``ImageSets/Segmentation/<split>.txt`` list; None takes every
            image with a ``SegmentationClass`` PNG.
        check_ids: read each class PNG once to report class ids the taxonomy lacks
            (warnings; the samples are kept). Turn off to open huge sets faster.
        progress: show a progress bar (only with 50 or more ids).

    Returns:
        The dataset; samples with a missing image, an unreadable or wrong-sized mask are
        skipped and listed in ``issues``.

    Raises:
        FormatError: ``path`` is not a VOC root, the split list is missing, or
            ``labels.txt`` is unusable.

    Example:
        >>> ds = read_voc("tests/data/voc_sample")  # doctest: +SKIP
        >>> len(ds.samples[0].annotation().instances)  # doctest: +SKIP
        19
    """
    root = Path(path)
    class_dir = root / "SegmentationClass"
    image_dir = root / "JPEGImages"
    object_dir = root / "SegmentationObject"
    if not root.is_dir():
        raise FormatError(root, "VOC root is not a folder", "point to the folder holding JPEGImages/")
    for folder in (class_dir, image_dir):
        if not folder.is_dir():
            raise FormatError(folder, "folder missing", "a VOC root holds JPEGImages/ and SegmentationClass/")
    taxonomy = _reader_taxonomy(root)
    issues: list[DataIssue] = []
    metadata = _read_metadata(root, issues)
    if split is not None:
        ids = _split_ids(root, split)
    else:
        ids = sorted(p.stem for p in class_dir.glob("*.png") if not p.name.startswith("."))
    images = _image_index(image_dir)
    samples: list[Sample] = []
    show = progress and len(ids) >= _PROGRESS_MIN
    for image_id in tqdm(ids, desc="reading voc", unit="image", disable=not show):
        class_png = class_dir / f"{image_id}.png"
        if not class_png.is_file():
            issues.append(DataIssue(class_png, "class mask missing for an id of the split list", "error", image_id))
            continue
        image_path = images.get(image_id)
        if image_path is None:
            issues.append(DataIssue(image_dir / f"{image_id}.jpg", "image missing for this mask", "error", image_id,
                                    "put the image in JPEGImages/ under the mask's name"))
            continue
        object_candidate = object_dir / f"{image_id}.png"
        object_png = object_candidate if object_candidate.is_file() else None
        try:
            height, width = image_size(image_path)
            bad = None
            for mask in (class_png, object_png):
                if mask is not None:
                    mask_hw = image_size(mask)
                    if mask_hw != (height, width):
                        bad = _size_issue(mask, mask_hw, (height, width), image_id)
                        break
            if bad is not None:
                issues.append(bad)
                continue
            if check_ids:
                unknown = taxonomy.unknown_ids(np.unique(_read_index_png(class_png)).tolist())
                if unknown:
                    issues.append(DataIssue(class_png, f"class ids {unknown} are not in the taxonomy", "warning",
                                            image_id, "add them to labels.txt or remap the mask"))
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, image_id))
            continue
        samples.append(
            Sample(image_id, image_path, height, width, dict(metadata.get(image_id, {})),
                   partial(_load_voc_annotation, class_png, object_png))
        )
    return SegmentationDataset(taxonomy, samples, issues, root.name or "voc", root, "voc")


# --------------------------------------------------------------------------- writing




def _voc_class_map(semantic: SemanticMap, where: Path) -> np.ndarray:
    """``(H, W) uint8`` VOC class map: ignore pixels -> 255; other ids must be 0..254."""
    labels = semantic.labels.astype(np.int64)
    void = labels == semantic.ignore_index
    bad = ~void & ((labels < 0) | (labels >= VOC_VOID))
    if bad.any():
        values = sorted({int(v) for v in np.unique(labels[bad])})
        raise AnnotationError(where, f"class ids {values[:10]} do not fit a VOC mask (0..254, 255 = void)",
                              "remap the classes before writing VOC")
    out = labels.astype(np.uint8)
    out[void] = VOC_VOID
    return out


def _voc_object_map(instances: InstanceSet, where: Path) -> np.ndarray:
    """``(H, W) uint8`` object map: instance k (non-crowd, non-empty) -> k, crowd -> 255."""
    crowd = instances.iscrowd if instances.iscrowd is not None else np.zeros(len(instances), bool)
    masks = instances.dense_masks()
    count = int(sum(1 for m, c in zip(masks, crowd) if not c and m.any()))
    if count > _MAX_OBJECTS:
        raise AnnotationError(where, f"{count} instances, but a VOC object mask holds at most {_MAX_OBJECTS}",
                              "use the coco or cityscapes format for crowded images")
    out = np.zeros(instances.shape, dtype=np.uint8)
    index = 0
    for mask, is_crowd in zip(masks, crowd):
        if is_crowd:
            out[mask] = VOC_VOID
        elif mask.any():
            index += 1
            out[mask] = index
    return out


def _as_data_error(exc: Exception, path: Path) -> DataError:
    if isinstance(exc, DataError):
        return exc
    return DataError(path, f"cannot write sample ({exc.__class__.__name__}: {exc})")


def _copy_image(source: Path, destination: Path, quality: int) -> None:
    if source.suffix.lower() in _JPEG_SUFFIXES:
        shutil.copy2(source, destination)
    else:
        write_image(destination, read_image(source), quality=quality)


def write_voc(
    dataset: SegmentationDataset,
    out_dir: str | Path,
    *,
    image_set: str = "default",
    quality: int = 95,
    progress: bool = True,
) -> Path:
    """Write a dataset as Pascal VOC (see the module notes for what is lossy).

    Samples without a semantic map get one derived from their instances or panoptic map
    (:func:`~pixelwise.core.convert.complete_annotation`). A sample that cannot be written
    (no labels, unreadable annotation or image, class ids above 254, more than 254
    instances) is skipped and reported in ``dataset.issues`` and in the manifest.

    Args:
        dataset: what to write; class ids must be 0..254.
        out_dir: the VOC root to create.
        image_set: name of the ``ImageSets/Segmentation/<image_set>.txt`` listing all ids.
        quality: JPEG quality when an image is re-encoded.
        progress: show a progress bar (only with 50 or more samples).

    Returns:
        ``out_dir``.

    Raises:
        TaxonomyError: a class id above 254.

    Example:
        >>> write_voc(read_voc("tests/data/voc_sample"), "/tmp/voc_out")  # doctest: +SKIP
        PosixPath('/tmp/voc_out')
    """
    out = Path(out_dir)
    taxonomy = dataset.taxonomy
    _check_voc_taxonomy(taxonomy)
    dirs = {name: out / name for name in ("JPEGImages", "SegmentationClass", "SegmentationObject")}
    sets_dir = out / "ImageSets" / "Segmentation"
    for folder in (*dirs.values(), sets_dir):
        folder.mkdir(parents=True, exist_ok=True)
    class_palette = taxonomy.palette(256)
    class_palette[VOC_VOID] = voc_palette(256)[VOC_VOID]
    object_palette = voc_palette(256)
    issues: list[DataIssue] = []
    written: list[Sample] = []
    used: set[str] = set()
    show = progress and len(dataset.samples) >= _PROGRESS_MIN
    for sample in tqdm(dataset.samples, desc="writing voc", unit="image", disable=not show):
        stem = _safe_stem(sample.image_id, used)
        class_png = dirs["SegmentationClass"] / f"{stem}.png"
        object_png = dirs["SegmentationObject"] / f"{stem}.png"
        image_out = dirs["JPEGImages"] / f"{stem}.jpg"
        try:
            annotation = sample.annotation()
            if annotation.is_empty:
                issues.append(DataIssue(sample.image_path, "sample has no labels; VOC needs a class mask, skipped",
                                        "warning", sample.image_id))
                used.discard(stem)
                continue
            if annotation.semantic is None or (annotation.instances is None and annotation.panoptic is not None):
                annotation = complete_annotation(annotation, taxonomy)
            class_map = _voc_class_map(annotation.semantic, class_png)  # type: ignore[arg-type]
            object_map = None if annotation.instances is None else _voc_object_map(annotation.instances, object_png)
            _copy_image(Path(sample.image_path), image_out, quality)
            write_label_png(class_png, class_map, palette=class_palette)
            if object_map is not None:
                write_label_png(object_png, object_map, palette=object_palette)
        except (PixelwiseError, OSError) as exc:
            for leftover in (image_out, class_png, object_png):
                leftover.unlink(missing_ok=True)
            issues.append(DataIssue.from_error(_as_data_error(exc, sample.image_path), sample.image_id))
            used.discard(stem)
            continue
        written.append(Sample(stem, image_out, sample.height, sample.width, dict(sample.metadata)))
    write_labels_txt(taxonomy, out / "labels.txt")
    (sets_dir / f"{image_set}.txt").write_text("".join(f"{s.image_id}\n" for s in written), encoding="utf-8")
    dataset.issues.extend(issues)
    write_manifest(SegmentationDataset(taxonomy, written, issues, dataset.name, out, "voc"), out / MANIFEST_NAME)
    return out


register_format(
    FormatSpec(
        "voc",
        read_voc,
        write_voc,
        "Pascal VOC: JPEGImages/ + palette PNGs in SegmentationClass/ and SegmentationObject/",
        frozenset({"semantic", "instances"}),
    )
)
