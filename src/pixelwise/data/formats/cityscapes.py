"""Cityscapes-style format (``cityscapes``): labelIds and instanceIds PNGs per image.

Layout of a Cityscapes root::

    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    gtFine/<split>/<city>/<stem>_gtFine_labelIds.png      (H, W) uint8 class ids
    gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png   (H, W) 16-bit, see below
    gtFine/<split>/<city>/<stem>_gtFine_color.png         colour view (written, never read)
    classes.json                                          optional taxonomy (Taxonomy.to_dict())

instanceIds values: a thing instance is ``class_id * 1000 + n`` (``n`` from 0 per class);
any value below 1000 is a plain class id (stuff, or a thing region without instances such
as a crowd of cars). The reader is lenient about the layout: images are looked for under
``leftImg8bit/``, else ``images/``, else the root; ground truth under ``gtFine/`` (or
``gtCoarse/``), else anywhere under the root; images and ground truth are matched by the stem
(image name without ``_leftImg8bit``), so flat folders work too.

Reading:
    * semantic map = labelIds (or the class part of instanceIds when labelIds is missing);
    * instances = the instanceIds values >= 1000 (``ids`` keeps the raw values);
    * panoptic map = one segment per instanceIds value: instances are things, plain values
      of thing classes are crowd thing segments, other plain values stuff segments, values
      in ``void_ids`` or equal to the ignore index are void;
    * taxonomy = ``classes.json`` if present, else the 34 Cityscapes labelIds (0..33)
      with their official names, colours and ``hasInstances`` flags. Nothing is mapped to
      the ignore index by default: ``unlabeled`` (0) etc. are ordinary classes; pass
      ``void_ids=CITYSCAPES_VOID_IDS`` to turn ids 0..6 into void (255).

Writing (lossy points):
    * class ids and the ignore index must be < 256 (labelIds is 8-bit);
    * every image goes to one ``<split>/<city>`` folder (defaults ``train`` / ``pixelwise``);
      images are PNG (non-PNG sources are re-encoded, losslessly for 8-bit RGB);
    * instance values must fit 16 bits (class ids up to 65) and at most 1000 instances per
      class; instances of class 0 cannot be encoded; crowd instances are written as the plain
      class id, so they come back as crowd panoptic segments, not as instances;
    * a sample without instances gets no instanceIds file (it reads back as semantic only);
    * instanceIds PNGs use the smallest lossless depth (8-bit when every value is < 256);
    * scores, boxes and instance order are not stored; image ids are made file-safe.

Example:
    >>> from pixelwise.data.formats import read_dataset
    >>> ds = read_dataset("cityscapes", "cityscapes", split="val")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pixelwise.core.convert import complete_annotation, instances_from_id_map
from pixelwise.core.errors import AnnotationError, DataError, FormatError, PixelwiseError, TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.data.dataset import (
    DataIssue,
    Sample,
    SegmentationDataset,
    read_manifest_metadata,
    write_manifest,
)
from pixelwise.data.formats.common import copy_image_as as _copy_image
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
    "CITYSCAPES_LABELS",
    "CITYSCAPES_VOID_IDS",
    "INSTANCE_OFFSET",
    "cityscapes_taxonomy",
    "decode_instance_ids",
    "decode_instance_value",
    "encode_instance_value",
    "read_cityscapes",
    "write_cityscapes",
]

#: Multiplier of the class id in instanceIds values (``class * 1000 + n``).
INSTANCE_OFFSET = 1000

#: The 34 Cityscapes labelIds: ``(id, name, category, has_instances, (r, g, b))``.
#: From the published Cityscapes label definitions (the ``license plate`` label, id -1,
#: never appears in labelIds images and is left out).
CITYSCAPES_LABELS: tuple[tuple[int, str, str, bool, tuple[int, int, int]], ...] = (
    (0, "unlabeled", "void", False, (0, 0, 0)),
    (1, "ego vehicle", "void", False, (0, 0, 0)),
    (2, "rectification border", "void", False, (0, 0, 0)),
    (3, "out of roi", "void", False, (0, 0, 0)),
    (4, "static", "void", False, (0, 0, 0)),
    (5, "dynamic", "void", False, (111, 74, 0)),
    (6, "ground", "void", False, (81, 0, 81)),
    (7, "road", "flat", False, (128, 64, 128)),
    (8, "sidewalk", "flat", False, (244, 35, 232)),
    (9, "parking", "flat", False, (250, 170, 160)),
    (10, "rail track", "flat", False, (230, 150, 140)),
    (11, "building", "construction", False, (70, 70, 70)),
    (12, "wall", "construction", False, (102, 102, 156)),
    (13, "fence", "construction", False, (190, 153, 153)),
    (14, "guard rail", "construction", False, (180, 165, 180)),
    (15, "bridge", "construction", False, (150, 100, 100)),
    (16, "tunnel", "construction", False, (150, 120, 90)),
    (17, "pole", "object", False, (153, 153, 153)),
    (18, "polegroup", "object", False, (153, 153, 153)),
    (19, "traffic light", "object", False, (250, 170, 30)),
    (20, "traffic sign", "object", False, (220, 220, 0)),
    (21, "vegetation", "nature", False, (107, 142, 35)),
    (22, "terrain", "nature", False, (152, 251, 152)),
    (23, "sky", "sky", False, (70, 130, 180)),
    (24, "person", "human", True, (220, 20, 60)),
    (25, "rider", "human", True, (255, 0, 0)),
    (26, "car", "vehicle", True, (0, 0, 142)),
    (27, "truck", "vehicle", True, (0, 0, 70)),
    (28, "bus", "vehicle", True, (0, 60, 100)),
    (29, "caravan", "vehicle", True, (0, 0, 90)),
    (30, "trailer", "vehicle", True, (0, 0, 110)),
    (31, "train", "vehicle", True, (0, 80, 100)),
    (32, "motorcycle", "vehicle", True, (0, 0, 230)),
    (33, "bicycle", "vehicle", True, (119, 11, 32)),
)

#: labelIds of the Cityscapes "void" category (unlabeled .. ground), for ``void_ids``.
CITYSCAPES_VOID_IDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)

CLASSES_JSON = "classes.json"
_IMAGE_SUFFIX = "_leftImg8bit"
_GT_RE = re.compile(
    r"^(?P<stem>.+?)_(?P<kind>gtFine|gtCoarse)_(?P<what>labelIds|instanceIds|color|labelTrainIds|instanceTrainIds)$"
)
_GT_DIRS = ("gtFine", "gtCoarse")
_IMAGE_DIRS = ("leftImg8bit", "images")
from pixelwise.data.formats.common import UNSAFE_CHARS as _UNSAFE_CHARS  # noqa: E402
_PROGRESS_MIN = 50
_MAX_UINT16 = 65535


# --------------------------------------------------------------------------- taxonomy and ids


def cityscapes_taxonomy() -> Taxonomy:
    """The 34 Cityscapes labelIds (0..33): names, colours, categories as supercategories.

    ``is_thing`` is Cityscapes' ``hasInstances`` (person, rider, car, truck, bus, caravan,
    trailer, train, motorcycle, bicycle). The ignore index is 255.

    Example:
        >>> tax = cityscapes_taxonomy()
        >>> tax.name_of(26), tax.get(26).is_thing, tax.get(7).is_thing
        ('car', True, False)
    """
    return Taxonomy(
        tuple(ClassInfo(i, name, color, things, category) for i, name, category, things, color in CITYSCAPES_LABELS)
    )


def decode_instance_value(value: int) -> tuple[int, int | None]:
    """Split one instanceIds value into ``(class_id, instance number or None)``.

    Example:
        >>> decode_instance_value(26001), decode_instance_value(7)
        ((26, 1), (7, None))
    """
    value = int(value)
    if value >= INSTANCE_OFFSET:
        return value // INSTANCE_OFFSET, value % INSTANCE_OFFSET
    return value, None


def encode_instance_value(class_id: int, number: int | None = None) -> int:
    """Inverse of :func:`decode_instance_value` (``None`` -> the plain class id).

    Raises:
        ValueError: ``number`` outside 0..999, or an instance of class 0 (it would read
            back as the plain class ``number``).
    """
    if number is None:
        return int(class_id)
    if not 0 <= int(number) < INSTANCE_OFFSET:
        raise ValueError(f"instance number must be 0..{INSTANCE_OFFSET - 1}, got {number}")
    if int(class_id) <= 0:
        raise ValueError(f"instances need a class id >= 1 to be encoded, got {class_id}")
    return int(class_id) * INSTANCE_OFFSET + int(number)


def decode_instance_ids(instance_ids: np.ndarray) -> tuple[np.ndarray, InstanceSet]:
    """Decode an instanceIds map into class ids and thing instances.

    Args:
        instance_ids: ``(H, W)`` integer instanceIds values.

    Returns:
        ``(classes, instances)``: ``(H, W) int64`` class id of every pixel and the
        instances of the values >= 1000 in increasing value order (``ids`` = raw values).
    """
    values = np.asarray(instance_ids).astype(np.int64)
    classes = np.where(values >= INSTANCE_OFFSET, values // INSTANCE_OFFSET, values)
    things = np.where(values >= INSTANCE_OFFSET, values, 0)
    present = [int(v) for v in np.unique(things) if v]
    if not present:
        return classes, InstanceSet.empty(*values.shape)
    class_of = {v: v // INSTANCE_OFFSET for v in present}
    return classes, instances_from_id_map(things, class_of=class_of, ignore_ids=(0,))


def _panoptic_from_instance_ids(values: np.ndarray, taxonomy: Taxonomy, void: set[int]) -> PanopticMap:
    """One segment per instanceIds value (segment ids 1..K by increasing value)."""
    unique, inverse = np.unique(values, return_inverse=True)
    lut = np.zeros(len(unique), dtype=np.int32)
    segments: list[SegmentInfo] = []
    for index, value in enumerate(unique.tolist()):
        class_id, number = decode_instance_value(value)
        if number is None and value in void:
            continue
        segment_id = len(segments) + 1
        lut[index] = segment_id
        if number is not None:
            segments.append(SegmentInfo(segment_id, class_id, True, False))
        else:
            thing = class_id in taxonomy and taxonomy.get(class_id).is_thing
            segments.append(SegmentInfo(segment_id, class_id, thing, thing))
    return PanopticMap(lut[inverse.reshape(values.shape)], tuple(segments))


# --------------------------------------------------------------------------- reading


def _read_ids_png(path: Path) -> np.ndarray:
    array = read_label_image(path)
    if array.ndim != 2:
        raise AnnotationError(path, "id image is RGB; labelIds / instanceIds must be single-channel",
                              "the *_color.png files are for viewing, use *_labelIds.png")
    return array


def _load_cityscapes_annotation(
    label_png: Path | None, instance_png: Path | None, taxonomy: Taxonomy, void_ids: tuple[int, ...]
) -> Annotation:
    label_ids = _read_ids_png(label_png) if label_png is not None else None
    instance_ids = _read_ids_png(instance_png) if instance_png is not None else None
    if label_ids is not None and instance_ids is not None and label_ids.shape != instance_ids.shape:
        raise AnnotationError(
            instance_png,
            f"instanceIds is {instance_ids.shape[1]}x{instance_ids.shape[0]} but labelIds is "
            f"{label_ids.shape[1]}x{label_ids.shape[0]} (WxH)",
        )
    instances = panoptic = None
    if instance_ids is not None:
        classes, instances = decode_instance_ids(instance_ids)
        void = set(void_ids) | {taxonomy.ignore_index}
        panoptic = _panoptic_from_instance_ids(instance_ids.astype(np.int64), taxonomy, void)
        if label_ids is None:
            label_ids = classes
    labels = np.array(label_ids)  # a copy: void ids are overwritten below
    if void_ids:
        labels[np.isin(labels, void_ids)] = taxonomy.ignore_index
    return Annotation(SemanticMap(labels, ignore_index=taxonomy.ignore_index), instances, panoptic)


def _image_stem(path: Path) -> str:
    stem = path.stem
    return stem[: -len(_IMAGE_SUFFIX)] if stem.endswith(_IMAGE_SUFFIX) and len(stem) > len(_IMAGE_SUFFIX) else stem


def _split_dir(base: Path, split: str | None, root: Path) -> Path:
    if split is None:
        return base
    folder = base / split
    if folder.is_dir():
        return folder
    available = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []
    raise FormatError(folder, f"split {split!r} not found",
                      f"available splits: {available}" if available else f"{root} has no split folders")


def _find_layout(root: Path, split: str | None) -> tuple[Path, Path | None]:
    """(folder to list images in, folder to list ground truth in or None = the whole root)."""
    image_base = next((root / d for d in _IMAGE_DIRS if (root / d).is_dir()), root)
    gt_base = next((root / d for d in _GT_DIRS if (root / d).is_dir()), None)
    if split is not None and image_base == root and gt_base is None:
        raise FormatError(root, f"split {split!r} asked for, but the folder has no leftImg8bit/ or images/ tree",
                          "drop the split option for a flat folder")
    image_dir = _split_dir(image_base, split, root)
    gt_dir = _split_dir(gt_base, split, root) if gt_base is not None else None
    return image_dir, gt_dir


def _index_ground_truth(folder: Path) -> dict[str, dict[str, Path]]:
    """stem -> {"labelIds": path, "instanceIds": path}; gtFine preferred over gtCoarse."""
    found: dict[str, dict[str, tuple[str, Path]]] = {}
    for path in sorted(folder.rglob("*.png")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        match = _GT_RE.match(path.stem)
        if match is None or match["what"] not in ("labelIds", "instanceIds"):
            continue
        entry = found.setdefault(match["stem"], {})
        current = entry.get(match["what"])
        if current is None or (current[0] != "gtFine" and match["kind"] == "gtFine"):
            entry[match["what"]] = (match["kind"], path)
    return {stem: {what: p for what, (_, p) in entry.items()} for stem, entry in found.items()}


def _load_taxonomy(root: Path) -> Taxonomy:
    path = root / CLASSES_JSON
    if not path.is_file():
        return cityscapes_taxonomy()
    try:
        return Taxonomy.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise FormatError(path, f"classes file is unusable: {exc}",
                          "write it with json.dump(taxonomy.to_dict()) or delete it to use the Cityscapes classes") from exc


def _read_metadata(root: Path, issues: list[DataIssue]) -> dict[str, dict[str, Any]]:
    try:
        return read_manifest_metadata(root / MANIFEST_NAME)
    except DataError as exc:
        issues.append(DataIssue.from_error(exc, severity="warning"))
        return {}


def read_cityscapes(
    path: str | Path,
    *,
    split: str | None = None,
    void_ids: Sequence[int] = (),
    progress: bool = True,
) -> SegmentationDataset:
    """Read a Cityscapes-style folder (standard or flat layout, see the module notes).

    Sizes are checked from file headers; annotations load lazily.

    Args:
        path: the root folder.
        split: sub-folder of ``leftImg8bit/`` and ``gtFine/`` (``train``, ``val``...);
            None reads every split.
        void_ids: class ids turned into the ignore index in the semantic map and into
            void in the panoptic map (e.g. :data:`CITYSCAPES_VOID_IDS`); default none.
        progress: show a progress bar (only with 50 or more images).

    Returns:
        The dataset; images without ground truth, with unreadable or wrong-sized files,
        or with a duplicate stem are skipped and listed in ``issues``.

    Raises:
        FormatError: not a folder, unknown split, or a broken ``classes.json``.

    Example:
        >>> ds = read_cityscapes("cityscapes", split="val", void_ids=CITYSCAPES_VOID_IDS)  # doctest: +SKIP
    """
    root = Path(path)
    if not root.is_dir():
        raise FormatError(root, "Cityscapes root is not a folder", "point to the folder holding leftImg8bit/ and gtFine/")
    taxonomy = _load_taxonomy(root)
    void = tuple(int(v) for v in void_ids)
    if any(not 0 <= v < 256 for v in void):
        raise ValueError(f"void_ids must be labelIds in 0..255, got {void}")
    issues: list[DataIssue] = []
    metadata = _read_metadata(root, issues)
    image_dir, gt_dir = _find_layout(root, split)
    ground_truth = _index_ground_truth(gt_dir if gt_dir is not None else root)
    gt_roots = [root / d for d in _GT_DIRS]
    images = [
        p for p in list_images(image_dir)
        if _GT_RE.match(p.stem) is None and not any(g in p.parents for g in gt_roots)
    ]
    samples: list[Sample] = []
    seen: set[str] = set()
    show = progress and len(images) >= _PROGRESS_MIN
    for image_path in tqdm(images, desc="reading cityscapes", unit="image", disable=not show):
        stem = _image_stem(image_path)
        if stem in seen:
            issues.append(DataIssue(image_path, f"another image already has the stem {stem!r}; skipped", "error", stem,
                                    "image stems must be unique across splits and cities"))
            continue
        gt = ground_truth.get(stem, {})
        if not gt:
            issues.append(DataIssue(image_path, "no *_gtFine_labelIds.png or *_gtFine_instanceIds.png for this image",
                                    "warning", stem, f"expected e.g. {stem}_gtFine_labelIds.png"))
            continue
        try:
            height, width = image_size(image_path)
            bad = None
            for mask in gt.values():
                mask_hw = image_size(mask)
                if mask_hw != (height, width):
                    bad = DataIssue(mask, f"mask is {mask_hw[1]}x{mask_hw[0]} but image is {width}x{height} (WxH)",
                                    "error", stem, "re-export the mask at the image's size")
                    break
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, stem))
            continue
        if bad is not None:
            issues.append(bad)
            continue
        seen.add(stem)
        loader = partial(_load_cityscapes_annotation, gt.get("labelIds"), gt.get("instanceIds"), taxonomy, void)
        samples.append(Sample(stem, image_path, height, width, dict(metadata.get(stem, {})), loader))
    return SegmentationDataset(taxonomy, samples, issues, root.name or "cityscapes", root, "cityscapes")


# --------------------------------------------------------------------------- writing




def _check_writable_taxonomy(taxonomy: Taxonomy) -> None:
    too_big = [c.id for c in taxonomy if c.id > 255]
    if too_big or not 0 <= taxonomy.ignore_index <= 255:
        raise TaxonomyError(
            f"labelIds PNGs are 8-bit: class ids {too_big} and ignore index {taxonomy.ignore_index} "
            "must all be 0..255; remap them with Taxonomy.remapped() first"
        )


def _label_ids(semantic: SemanticMap, ignore_index: int, where: Path) -> np.ndarray:
    """``(H, W) uint8`` labelIds; the map's void pixels get ``ignore_index``."""
    labels = semantic.labels.astype(np.int64)
    void = labels == semantic.ignore_index
    bad = ~void & ((labels < 0) | (labels > 255))
    if bad.any():
        values = sorted({int(v) for v in np.unique(labels[bad])})
        raise AnnotationError(where, f"class ids {values[:10]} do not fit an 8-bit labelIds image",
                              "remap the classes to 0..255 first")
    labels[void] = ignore_index
    return labels.astype(np.uint8)


def _instance_ids(label_ids: np.ndarray, instances: InstanceSet, where: Path) -> np.ndarray:
    """``(H, W) int64`` instanceIds: labelIds with instances painted as ``class*1000+n``."""
    out = label_ids.astype(np.int64)
    crowd = instances.iscrowd if instances.iscrowd is not None else np.zeros(len(instances), bool)
    counters: dict[int, int] = {}
    for mask, class_id, is_crowd in zip(instances.dense_masks(), instances.class_ids.tolist(), crowd):
        if not mask.any():
            continue
        if is_crowd:
            out[mask] = class_id
            continue
        number = counters.get(class_id, 0)
        try:
            value = encode_instance_value(class_id, number)
        except ValueError as exc:
            raise AnnotationError(where, f"instance of class {class_id} cannot be encoded: {exc}") from None
        if value > _MAX_UINT16:
            raise AnnotationError(where, f"instance value {value} of class {class_id} exceeds 16 bits",
                                  "instanceIds hold class ids up to 65; remap the thing classes")
        counters[class_id] = number + 1
        out[mask] = value
    return out


def _as_data_error(exc: Exception, path: Path) -> DataError:
    if isinstance(exc, DataError):
        return exc
    return DataError(path, f"cannot write sample ({exc.__class__.__name__}: {exc})")




def write_cityscapes(
    dataset: SegmentationDataset,
    out_dir: str | Path,
    *,
    split: str = "train",
    city: str = "pixelwise",
    progress: bool = True,
) -> Path:
    """Write a dataset in the Cityscapes layout (see the module notes for what is lossy).

    Missing views are derived first (:func:`~pixelwise.core.convert.complete_annotation`),
    so instance-only or panoptic-only samples get a semantic map. Samples that cannot be
    written are skipped and reported in ``dataset.issues`` and in the manifest.

    Args:
        dataset: what to write; class ids and the ignore index must be 0..255.
        out_dir: the root to create.
        split: split folder name under ``leftImg8bit/`` and ``gtFine/``.
        city: city folder name under the split.
        progress: show a progress bar (only with 50 or more samples).

    Returns:
        ``out_dir``.

    Raises:
        TaxonomyError: a class id or the ignore index above 255.

    Example:
        >>> write_cityscapes(ds, "/tmp/cs", split="val")  # doctest: +SKIP
        PosixPath('/tmp/cs')
    """
    out = Path(out_dir)
    taxonomy = dataset.taxonomy
    _check_writable_taxonomy(taxonomy)
    for name, value in (("split", split), ("city", city)):
        if not value or _UNSAFE_CHARS.search(value) or value in (".", ".."):
            raise ValueError(f"{name} must be a plain folder name (letters, digits, '._-'), got {value!r}")
    image_dir = out / "leftImg8bit" / split / city
    gt_dir = out / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    palette = taxonomy.palette(256)
    issues: list[DataIssue] = []
    written: list[Sample] = []
    used: set[str] = set()
    show = progress and len(dataset.samples) >= _PROGRESS_MIN
    for sample in tqdm(dataset.samples, desc="writing cityscapes", unit="image", disable=not show):
        stem = _safe_stem(sample.image_id, used)
        image_out = image_dir / f"{stem}{_IMAGE_SUFFIX}.png"
        label_png = gt_dir / f"{stem}_gtFine_labelIds.png"
        instance_png = gt_dir / f"{stem}_gtFine_instanceIds.png"
        color_png = gt_dir / f"{stem}_gtFine_color.png"
        try:
            annotation = sample.annotation()
            if annotation.is_empty:
                issues.append(DataIssue(sample.image_path, "sample has no labels; skipped", "warning", sample.image_id))
                used.discard(stem)
                continue
            if annotation.semantic is None or (annotation.instances is None and annotation.panoptic is not None):
                annotation = complete_annotation(annotation, taxonomy)
            label_ids = _label_ids(annotation.semantic, taxonomy.ignore_index, label_png)  # type: ignore[arg-type]
            instance_ids = (
                None if annotation.instances is None else _instance_ids(label_ids, annotation.instances, instance_png)
            )
            _copy_image(Path(sample.image_path), image_out)
            write_label_png(label_png, label_ids)
            if instance_ids is not None:
                write_label_png(instance_png, instance_ids)
            write_image(color_png, palette[label_ids])
        except (PixelwiseError, OSError) as exc:
            for leftover in (image_out, label_png, instance_png, color_png):
                leftover.unlink(missing_ok=True)
            issues.append(DataIssue.from_error(_as_data_error(exc, sample.image_path), sample.image_id))
            used.discard(stem)
            continue
        written.append(Sample(stem, image_out, sample.height, sample.width, dict(sample.metadata)))
    (out / CLASSES_JSON).write_text(json.dumps(taxonomy.to_dict(), indent=2), encoding="utf-8")
    dataset.issues.extend(issues)
    write_manifest(SegmentationDataset(taxonomy, written, issues, dataset.name, out, "cityscapes"), out / MANIFEST_NAME)
    return out


register_format(
    FormatSpec(
        "cityscapes",
        read_cityscapes,
        write_cityscapes,
        "Cityscapes: leftImg8bit/ images + gtFine/ labelIds and instanceIds (class*1000+n) PNGs",
        frozenset({"semantic", "instances", "panoptic"}),
    )
)
