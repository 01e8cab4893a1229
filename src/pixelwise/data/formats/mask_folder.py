"""Plain mask folders (format name ``masks``): an image folder and a folder of label images.

Layout::

    root/
      images/a.jpg   images/b.png   ...
      masks/a.png    masks/b_mask.tif ...   # same stem, optional suffix
      classes.json or labels.txt            # optional class list

A mask belongs to the image with the same stem, or with the stem left after removing one
of the suffixes ``_mask``, ``_label``, ``_labels``, ``_instances`` (case-insensitive). Masks
are PNG (8/16-bit gray or palette) or TIFF (8/16-bit), read without palette conversion
(:func:`~pixelwise.data.image_io.read_label_image`). Without ``images/`` and ``masks/``
folders, images and masks share the root folder and masks must carry a suffix. The
options ``images_dir``, ``masks_dir``, ``image_glob``, ``mask_glob`` change where files are
looked for; ``pairs=[(image, mask), ...]`` lists the pairs explicitly (e.g. ``image.tif``
with ``instances.tif``).

Mask kinds (option ``mask_kind``):
    * ``"semantic"``: values are class ids (255 = void). 8-bit RGB masks are mapped to
      class ids through the taxonomy's colours (each colour must be a class colour).
    * ``"instance"``: values are instance ids, 0 = background, every instance of class
      ``instance_class`` (default 1). Gives instances (RLE masks, ``ids`` = the mask
      values) and a semantic map background / instance class. RGB masks: each distinct
      non-black colour is an instance.
    * ``"binary"``: 0 = background, any other value = foreground (class 1); if a mask holds
      both 1 and 255, 255 is void (VOC style). Gives a semantic map only.
    * ``"auto"`` (default) decides once per dataset:
        1. the ``mask_kind`` recorded in ``classes.json`` (written by Pixelwise), if any;
        2. ``"semantic"`` when a class list (``classes.json`` / ``labels.txt``) or a
           ``taxonomy`` is given;
        3. ``"binary"`` when every sampled mask is 8-bit with values within {0, 1, 255};
        4. ``"instance"`` when any sampled mask is 16-bit or wider;
        5. ``"semantic"`` otherwise.
      Up to 16 masks spread over the folder are sampled (:func:`detect_mask_kind`).
      8-bit instance masks therefore need ``mask_kind="instance"``.

Taxonomy: the ``taxonomy`` option, else ``classes.json`` (``Taxonomy.to_dict()`` form, a list
of names, or ``{"id": "name"}``), else ``labels.txt`` (one name per line, line = id, a first
``__ignore__`` line skipped), else: semantic -> the ids found in the masks, named
``class_<id>`` with 0 = ``background`` (stuff); instance -> ``background`` + ``object``;
binary -> ``background`` + ``foreground``.

Problems: an image without a mask is kept as an unlabelled sample (warning); a mask
without an image, an unreadable file, or a mask whose size differs from its image's is
reported (error) and the pair skipped.

Writing (option ``mask_kind="semantic"`` or ``"instance"``, ``mask_format="png"`` or
``"tiff"``): images are copied, masks written under ``masks/<stem>``, and ``classes.json``
(the taxonomy plus ``mask_kind``) at the root. Semantic masks are 8-bit (16-bit when an id
is 256 or more; void stays the ignore index). Instance masks are always 16-bit; the value of
an instance is its ``ids`` entry when those are unique and within 1..65535, else its
position + 1. Lossy: instance masks keep no class (one ``instance_class`` is recorded; other
classes are reported), no crowd flag or score, and where instances overlap the later one
wins.

Example:
    >>> from pixelwise.data.formats import read_dataset
    >>> ds = read_dataset("tests/data/nuclei_dsb2018", "masks", mask_kind="instance",
    ...                   pairs=[("image.tif", "instances.tif")])  # doctest: +SKIP
    >>> len(ds[0].annotation().instances)  # doctest: +SKIP
    125
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from tqdm import tqdm

from pixelwise.core.convert import complete_annotation, instance_id_map
from pixelwise.core.errors import AnnotationError, DataError, FormatError, ShapeError, TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.masks import rle_compress
from pixelwise.core.taxonomy import ClassInfo, Taxonomy, voc_palette
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset, read_manifest_metadata, write_manifest
from pixelwise.data.formats.common import copy_image as _copy_image
from pixelwise.data.formats.common import safe_stem as _safe_stem
from pixelwise.data.formats.common import unique_id as _unique_id
from pixelwise.data.formats.base import MANIFEST_NAME, FormatSpec, register_format
from pixelwise.data.image_io import (
    IMAGE_EXTENSIONS,
    image_size,
    list_images,
    read_image,
    read_label_image,
    write_image,
    write_label_png,
)

__all__ = [
    "CLASSES_JSON",
    "MASK_EXTENSIONS",
    "MASK_KINDS",
    "MASK_SUFFIXES",
    "detect_mask_kind",
    "instances_from_label_image",
    "match_masks",
    "read_class_file",
    "read_mask_folder",
    "write_mask_folder",
]

#: Values of the ``mask_kind`` option of the reader.
MASK_KINDS: tuple[str, ...] = ("semantic", "instance", "binary", "auto")

#: Stem suffixes a mask may carry after its image's stem.
MASK_SUFFIXES: tuple[str, ...] = ("_mask", "_label", "_labels", "_instances")

#: Extensions of mask files.
MASK_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff")

#: Class list written by :func:`write_mask_folder`.
CLASSES_JSON = "classes.json"

_LABELS_TXT = "labels.txt"
_BACKGROUND_NAMES = frozenset({"background", "_background_", "bg"})
_AUTO_SAMPLE = 16
_PROGRESS_MIN = 50


# --------------------------------------------------------------------------- class lists


def read_class_file(path: str | Path) -> tuple[Taxonomy, dict[str, Any]]:
    """Read ``classes.json`` or ``labels.txt``.

    ``classes.json`` may be ``Taxonomy.to_dict()`` (extra keys such as ``mask_kind`` are
    returned), a list of names (position = id) or a mapping ``{"id": "name"}``.
    ``labels.txt`` has one name per line (line index = id; blank lines, ``__unused_<k>__``
    reserve an id; a first ``__ignore__`` line is skipped). Names ``background`` /
    ``_background_`` / ``bg`` are stuff, others things, unless the file says otherwise.

    Args:
        path: the file.

    Returns:
        ``(taxonomy, extras)``; extras are the other top-level keys of a ``classes.json``
        dict (``{}`` otherwise).

    Raises:
        FormatError: unreadable or malformed file.

    Example:
        >>> tax, extras = read_class_file("root/classes.json")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read class file ({exc.__class__.__name__}: {exc})") from exc
    try:
        if path.suffix.lower() == ".json":
            return _classes_from_json(json.loads(text))
        names = [line.strip() for line in text.splitlines()]
        if names and names[0] == "__ignore__":
            names = names[1:]
        while names and not names[-1]:
            names.pop()
        table = {i: n for i, n in enumerate(names) if n and not re.match(r"^__unused_\d+__$", n)}
        return _taxonomy_from_table(table), {}
    except (ValueError, TaxonomyError, TypeError, KeyError) as exc:
        raise FormatError(path, f"malformed class file: {exc}",
                          "use a list of names, {\"id\": \"name\"}, or {\"classes\": [{\"id\", \"name\"}]}") from exc


def _classes_from_json(data: Any) -> tuple[Taxonomy, dict[str, Any]]:
    if isinstance(data, list):
        return _taxonomy_from_table({i: str(n) for i, n in enumerate(data)}), {}
    if isinstance(data, dict) and "classes" in data:
        extras = {k: v for k, v in data.items() if k not in ("classes", "ignore_index")}
        return Taxonomy.from_dict(data), extras
    if isinstance(data, dict):
        return _taxonomy_from_table({int(k): str(v) for k, v in data.items()}), {}
    raise ValueError(f"expected a list or an object, got {type(data).__name__}")


def _taxonomy_from_table(table: Mapping[int, str], ignore_index: int = 255) -> Taxonomy:
    if not table:
        raise ValueError("no class")
    palette = voc_palette(max(256, max(table) + 1))
    return Taxonomy(
        tuple(
            ClassInfo(i, name, tuple(int(c) for c in palette[i]), name.lower() not in _BACKGROUND_NAMES)  # type: ignore[arg-type]
            for i, name in sorted(table.items())
        ),
        ignore_index=ignore_index,
    )


def _two_class_taxonomy(foreground: str, class_id: int) -> Taxonomy:
    palette = voc_palette(max(256, class_id + 1))
    return Taxonomy(
        (
            ClassInfo(0, "background", (0, 0, 0), False),
            ClassInfo(class_id, foreground, tuple(int(c) for c in palette[class_id])),  # type: ignore[arg-type]
        )
    )


# --------------------------------------------------------------------------- pairing


def _strip_suffix(stem: str, suffixes: Sequence[str]) -> str | None:
    lower = stem.lower()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if suffix and lower.endswith(suffix.lower()) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return None


def match_masks(
    images: Sequence[Path], masks: Sequence[Path], suffixes: Sequence[str] = MASK_SUFFIXES
) -> tuple[list[tuple[Path, Path | None]], list[DataIssue]]:
    """Pair images with masks by stem (exact first, then with a suffix removed).

    Args:
        images: image files.
        masks: mask files.
        suffixes: stem suffixes a mask may add to its image's stem.

    Returns:
        ``(pairs, issues)``: one ``(image, mask or None)`` per image, in image order; issues
        for masks without an image (error), extra masks of one image and images sharing a
        stem (warnings; the first in sorted order is kept).

    Example:
        >>> match_masks([Path("a.jpg")], [Path("a_mask.png")])[0]
        [(PosixPath('a.jpg'), PosixPath('a_mask.png'))]
    """
    issues: list[DataIssue] = []
    by_stem: dict[str, Path] = {}
    for image in sorted(images):
        if image.stem in by_stem:
            issues.append(DataIssue(image, f"another image has the stem {image.stem!r} ({by_stem[image.stem].name}); ignored",
                                    "warning", image.stem, "give every image a distinct name"))
            continue
        by_stem[image.stem] = image
    found: dict[str, Path] = {}
    ordered = sorted(masks, key=lambda m: (m.stem not in by_stem, str(m)))  # exact stems first
    for mask in ordered:
        key = mask.stem if mask.stem in by_stem else _strip_suffix(mask.stem, suffixes)
        if key is None or key not in by_stem:
            issues.append(DataIssue(mask, "mask has no image", "error", mask.stem,
                                    f"name it like its image, optionally with one of {list(suffixes)}"))
            continue
        if key in found:
            issues.append(DataIssue(mask, f"image {by_stem[key].name} already has mask {found[key].name}; ignored",
                                    "warning", key))
            continue
        found[key] = mask
    return [(image, found.get(stem)) for stem, image in by_stem.items()], issues


def _mask_files(folder: Path, glob: str | None) -> list[Path]:
    files = folder.glob(glob) if glob else folder.iterdir()
    return sorted(
        p for p in files
        if p.is_file() and not p.name.startswith(".") and (glob is not None or p.suffix.lower() in MASK_EXTENSIONS)
    )


def _image_files(folder: Path, glob: str | None) -> list[Path]:
    if glob is None:
        return list_images(folder, recursive=False)
    return sorted(p for p in folder.glob(glob) if p.is_file() and not p.name.startswith("."))


def _find_pairs(
    root: Path,
    images_dir: str | Path | None,
    masks_dir: str | Path | None,
    image_glob: str | None,
    mask_glob: str | None,
    suffixes: Sequence[str],
) -> tuple[list[tuple[Path, Path | None]], list[DataIssue]]:
    image_folder = root / images_dir if images_dir is not None else (root / "images" if (root / "images").is_dir() else root)
    mask_folder = root / masks_dir if masks_dir is not None else (root / "masks" if (root / "masks").is_dir() else root)
    for folder in (image_folder, mask_folder):
        if not folder.is_dir():
            raise FormatError(folder, "folder missing", "a mask folder holds images/ and masks/ (or pass images_dir, masks_dir)")
    masks = _mask_files(mask_folder, mask_glob)
    images = _image_files(image_folder, image_glob)
    if image_folder.resolve() == mask_folder.resolve():
        # One folder: a mask is a file named <image stem><suffix> (or matched by mask_glob).
        if mask_glob is None:
            masks = [m for m in masks if _strip_suffix(m.stem, suffixes) is not None]
        mask_set = set(masks)
        images = [i for i in images if i not in mask_set]
    return match_masks(images, masks, suffixes)


# --------------------------------------------------------------------------- mask kinds


def detect_mask_kind(masks: Sequence[np.ndarray], has_class_list: bool = False) -> str:
    """Guess the kind of a dataset's masks (rules 2-5 of the module notes).

    Args:
        masks: a sample of label arrays as read by ``read_label_image``: ``(H, W)``
            integer or ``(H, W, 3) uint8``.
        has_class_list: a class list or taxonomy came with the data.

    Returns:
        ``"semantic"``, ``"binary"`` or ``"instance"``.

    Example:
        >>> detect_mask_kind([np.array([[0, 255]], np.uint8)])
        'binary'
        >>> detect_mask_kind([np.array([[0, 7], [300, 2]], np.uint16)])
        'instance'
    """
    if has_class_list:
        return "semantic"
    arrays = [np.asarray(m) for m in masks]
    if arrays and all(a.dtype == np.uint8 and np.isin(a, (0, 1, 255)).all() for a in arrays):
        return "binary"
    if any(a.dtype.itemsize >= 2 for a in arrays):
        return "instance"
    return "semantic"


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` -> ``(H, W) int64`` colour codes ``r << 16 | g << 8 | b``."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _semantic_from_rgb(rgb: np.ndarray, taxonomy: Taxonomy, path: Path) -> np.ndarray:
    codes = _pack_rgb(rgb)
    table = {(r << 16) | (g << 8) | b: c.id for c in taxonomy for r, g, b in [c.color]}
    if len(table) != len(taxonomy):
        raise AnnotationError(path, "RGB mask but the classes do not have distinct colours",
                              "give each class its own colour in classes.json, or store class ids")
    table.setdefault(0xFFFFFF, taxonomy.ignore_index)
    values, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(v) for v in values if int(v) not in table]
    if unknown:
        shown = [f"#{v:06x}" for v in unknown[:5]]
        raise AnnotationError(path, f"RGB mask colours {shown} are not class colours",
                              "list every colour in classes.json or store class ids")
    ids = np.array([table[int(v)] for v in values], dtype=np.int64)
    out = ids[inverse.reshape(codes.shape)]
    return out.astype(np.uint8 if out.max(initial=0) < 256 else np.int32)


def instances_from_label_image(ids: np.ndarray, class_id: int) -> InstanceSet:
    """Instances of an ``(H, W)`` instance-id map, every one of class ``class_id``.

    Works from the sorted pixel positions, so memory stays ``O(H * W)`` however many
    instances there are (no ``(N, H, W)`` array).

    Args:
        ids: ``(H, W)`` integer instance ids; 0 is background.
        class_id: class of every instance.

    Returns:
        Instances sorted by id value, masks as compressed RLE, ``ids`` = the map values.

    Example:
        >>> inst = instances_from_label_image(np.array([[0, 5], [5, 2]], np.uint16), 1)
        >>> inst.ids.tolist(), inst.areas().tolist()
        ([2, 5], [1, 2])
    """
    ids = np.asarray(ids)
    height, width = ids.shape
    flat = ids.reshape(-1, order="F")  # COCO RLE runs are column-major
    positions = np.flatnonzero(flat)
    if positions.size == 0:
        return InstanceSet.empty(height, width)
    values = flat[positions]
    order = np.argsort(values, kind="stable")
    positions, values = positions[order], values[order]
    unique, starts = np.unique(values, return_index=True)
    ends = np.append(starts[1:], len(values))
    total = height * width
    rles = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        pos = positions[start:end]
        breaks = np.flatnonzero(np.diff(pos) != 1)
        run_starts = np.concatenate([pos[:1], pos[breaks + 1]])
        run_ends = np.concatenate([pos[breaks] + 1, pos[-1:] + 1])
        counts = np.empty(2 * len(run_starts) + 1, dtype=np.int64)
        counts[0] = run_starts[0]
        counts[1::2] = run_ends - run_starts
        counts[2:-1:2] = run_starts[1:] - run_ends[:-1]
        counts[-1] = total - run_ends[-1]
        if counts[-1] == 0:  # no trailing zero run: pycocotools' own encoding has none either
            counts = counts[:-1]
        rles.append(rle_compress({"size": [height, width], "counts": counts.tolist()}))
    return InstanceSet(height, width, np.full(len(rles), class_id, dtype=np.int64), rles,
                       ids=unique.astype(np.int64))


def _load_mask(path: Path, kind: str, taxonomy: Taxonomy, instance_class: int) -> Annotation:
    """Annotation of one mask file according to its kind."""
    array = read_label_image(path)
    if kind == "semantic":
        labels = _semantic_from_rgb(array, taxonomy, path) if array.ndim == 3 else array
        return Annotation(semantic=SemanticMap(labels, ignore_index=taxonomy.ignore_index))
    if kind == "binary":
        values = array.max(axis=2) if array.ndim == 3 else array
        labels = (values != 0).astype(np.uint8)
        if (values == 1).any() and (values == 255).any():
            labels[values == 255] = taxonomy.ignore_index
        return Annotation(semantic=SemanticMap(labels, ignore_index=taxonomy.ignore_index))
    ids = _pack_rgb(array) if array.ndim == 3 else array
    instances = instances_from_label_image(ids, instance_class)
    dtype = np.uint8 if instance_class < 256 else np.uint16
    semantic = np.where(ids != 0, instance_class, 0).astype(dtype)
    return Annotation(semantic=SemanticMap(semantic, ignore_index=taxonomy.ignore_index), instances=instances)


# --------------------------------------------------------------------------- reading




def _class_file(root: Path) -> Path | None:
    for name in (CLASSES_JSON, _LABELS_TXT):
        if (root / name).is_file():
            return root / name
    return None


def _sample_arrays(paths: Sequence[Path], count: int = _AUTO_SAMPLE) -> list[np.ndarray]:
    if not paths:
        return []
    picks = sorted({int(round(i)) for i in np.linspace(0, len(paths) - 1, min(count, len(paths)))})
    arrays = []
    for index in picks:
        try:
            arrays.append(read_label_image(paths[index]))
        except DataError:
            continue
    return arrays


def read_mask_folder(
    path: str | Path,
    *,
    mask_kind: str = "auto",
    images_dir: str | Path | None = None,
    masks_dir: str | Path | None = None,
    image_glob: str | None = None,
    mask_glob: str | None = None,
    pairs: Sequence[tuple[str | Path, str | Path]] | None = None,
    suffixes: Sequence[str] = MASK_SUFFIXES,
    instance_class: int | None = None,
    taxonomy: Taxonomy | None = None,
    check_ids: bool = True,
    progress: bool = True,
) -> SegmentationDataset:
    """Read a folder of images and label masks (see the module notes for the rules).

    Args:
        path: the root folder (paths below are relative to it unless absolute).
        mask_kind: ``"semantic"``, ``"instance"``, ``"binary"`` or ``"auto"``.
        images_dir: image folder (default ``images/`` if present, else the root).
        masks_dir: mask folder (default ``masks/`` if present, else the root).
        image_glob: glob selecting the images in ``images_dir`` (e.g. ``"*.jpg"``).
        mask_glob: glob selecting the masks in ``masks_dir`` (e.g. ``"*_mask.png"``).
        pairs: explicit ``(image, mask)`` pairs; replaces the folder search.
        suffixes: stem suffixes a mask may add to its image's stem.
        instance_class: class of every instance with ``mask_kind="instance"`` (default:
            the one recorded in ``classes.json``, else 1).
        taxonomy: use these classes instead of the class file or the ids found.
        check_ids: semantic masks: read each mask now to list the ids (taxonomy) and
            report ids missing from the class list (warnings).
        progress: show a progress bar (only with 50 or more images).

    Returns:
        The dataset (``format="masks"``); annotations load lazily.

    Raises:
        FormatError: unknown mask kind, missing folders, a malformed class file, or an
            instance class the taxonomy lacks.

    Example:
        >>> ds = read_mask_folder("tests/data/nuclei_dsb2018", mask_kind="instance",
        ...                       pairs=[("image.tif", "instances.tif")])  # doctest: +SKIP
    """
    root = Path(path)
    if mask_kind not in MASK_KINDS:
        raise FormatError(root, f"unknown mask_kind {mask_kind!r}", f"choose one of {list(MASK_KINDS)}")
    if not root.is_dir():
        raise FormatError(root, "mask folder root is not a folder", "point to the folder holding images/ and masks/")
    issues: list[DataIssue] = []
    if pairs is not None:
        found: list[tuple[Path, Path | None]] = []
        for image, mask in pairs:
            image_path, mask_path = root / Path(image), root / Path(mask)
            missing = [p for p in (image_path, mask_path) if not p.is_file()]
            if missing:
                issues.extend(DataIssue(p, "file of an explicit pair does not exist", "error", image_path.stem) for p in missing)
                continue
            found.append((image_path, mask_path))
    else:
        found, issues = _find_pairs(root, images_dir, masks_dir, image_glob, mask_glob, suffixes)

    class_file = _class_file(root)
    file_taxonomy: Taxonomy | None = None
    extras: dict[str, Any] = {}
    if class_file is not None:
        try:
            file_taxonomy, extras = read_class_file(class_file)
        except FormatError:
            if taxonomy is None:
                raise
    kind = mask_kind
    if kind == "auto":
        recorded = extras.get("mask_kind")
        if recorded in ("semantic", "instance", "binary"):
            kind = str(recorded)
        else:
            has_list = taxonomy is not None or file_taxonomy is not None
            kind = detect_mask_kind(_sample_arrays([m for _, m in found if m is not None]), has_list)
    dataset_taxonomy = taxonomy or file_taxonomy
    if kind == "instance":
        instance_class = int(instance_class if instance_class is not None else extras.get("instance_class", 1))
        if dataset_taxonomy is None:
            if instance_class <= 0:
                raise FormatError(root, f"instance_class must be > 0 (0 is background), got {instance_class}")
            dataset_taxonomy = _two_class_taxonomy("object", instance_class)
        elif instance_class not in dataset_taxonomy:
            raise FormatError(class_file or root, f"instance_class {instance_class} is not in the taxonomy",
                              f"pass instance_class= one of {dataset_taxonomy.ids}")
    elif kind == "binary" and dataset_taxonomy is None:
        dataset_taxonomy = _two_class_taxonomy("foreground", 1)
    instance_class = int(instance_class or 1)

    try:
        metadata = read_manifest_metadata(root / MANIFEST_NAME)
    except DataError as exc:
        issues.append(DataIssue.from_error(exc, severity="warning"))
        metadata = {}

    samples: list[Sample] = []
    masks_of: dict[str, Path] = {}
    used: set[str] = set()
    show = progress and len(found) >= _PROGRESS_MIN
    for image, mask in tqdm(found, desc="reading masks", unit="image", disable=not show):
        image_id = _unique_id(image.stem, used)
        try:
            height, width = image_size(image)
            if mask is not None:
                mask_hw = image_size(mask)
                if mask_hw != (height, width):
                    issues.append(DataIssue(mask, f"mask is {mask_hw[1]}x{mask_hw[0]} but image is {width}x{height} (WxH)",
                                            "error", image_id, "re-export the mask at the image's size"))
                    used.discard(image_id)
                    continue
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, image_id))
            used.discard(image_id)
            continue
        if mask is None:
            issues.append(DataIssue(image, "image has no mask; kept unlabelled", "warning", image_id,
                                    "add masks/<stem>.png or remove the image"))
        else:
            masks_of[image_id] = mask
        samples.append(Sample(image_id, image, height, width, dict(metadata.get(image_id, {}))))

    if kind == "semantic" and check_ids:
        found_ids = _scan_ids(samples, masks_of, dataset_taxonomy, issues)
        if dataset_taxonomy is None:
            dataset_taxonomy = _taxonomy_from_ids(found_ids)
        else:
            _report_unknown(samples, masks_of, found_ids, dataset_taxonomy, issues)
    if dataset_taxonomy is None:  # semantic masks, no class list, check_ids=False
        dataset_taxonomy = _taxonomy_from_ids({})
    for sample in samples:
        mask = masks_of.get(sample.image_id)
        if mask is not None:
            sample.loader = partial(_load_mask, mask, kind, dataset_taxonomy, instance_class)
    return SegmentationDataset(dataset_taxonomy, samples, issues, root.name or "masks", root, "masks")


def _scan_ids(
    samples: list[Sample], masks_of: dict[str, Path], taxonomy: Taxonomy | None, issues: list[DataIssue]
) -> dict[str, set[int]]:
    """``image_id -> ids`` of every semantic mask; unreadable masks are dropped from ``samples``."""
    found: dict[str, set[int]] = {}
    keep: list[Sample] = []
    for sample in samples:
        mask = masks_of.get(sample.image_id)
        if mask is None:
            keep.append(sample)
            continue
        try:
            array = read_label_image(mask)
            if array.ndim == 3:
                if taxonomy is None:
                    raise AnnotationError(mask, "RGB mask but no class colours are known",
                                          "add classes.json with a colour per class, or store class ids")
                array = _semantic_from_rgb(array, taxonomy, mask)
            found[sample.image_id] = {int(v) for v in np.unique(array)}
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, sample.image_id))
            masks_of.pop(sample.image_id)
            continue
        keep.append(sample)
    samples[:] = keep
    return found


def _taxonomy_from_ids(found: Mapping[str, set[int]]) -> Taxonomy:
    values = set().union(*found.values()) if found else set()
    peak = max(values, default=0)
    ignore = 255 if peak < 256 else 65535
    ids = sorted((values | {0}) - {ignore})
    table = {i: ("background" if i == 0 else f"class_{i}") for i in ids}
    return _taxonomy_from_table(table, ignore_index=ignore)


def _report_unknown(
    samples: list[Sample], masks_of: dict[str, Path], found: Mapping[str, set[int]], taxonomy: Taxonomy,
    issues: list[DataIssue],
) -> None:
    for sample in samples:
        unknown = taxonomy.unknown_ids(found.get(sample.image_id, ()))
        if unknown:
            issues.append(DataIssue(masks_of[sample.image_id], f"class ids {unknown} are not in the taxonomy", "warning",
                                    sample.image_id, "add them to the class list or remap the mask"))


# --------------------------------------------------------------------------- writing






def _write_array(path: Path, labels: np.ndarray, palette: np.ndarray | None) -> None:
    """Write an ``(H, W)`` uint8/uint16 label array as PNG or TIFF (exact values)."""
    if path.suffix == ".tif":
        tifffile.imwrite(path, labels, compression="zlib")
    elif labels.dtype == np.uint16:
        ok, encoded = cv2.imencode(".png", labels)
        if not ok:
            raise DataError(path, "OpenCV failed to encode the 16-bit PNG")
        path.write_bytes(encoded.tobytes())
    else:
        write_label_png(path, labels, palette=palette)


def _semantic_array(semantic: SemanticMap, taxonomy: Taxonomy, where: Path) -> np.ndarray:
    labels = semantic.labels.astype(np.int64)
    if semantic.ignore_index != taxonomy.ignore_index:
        labels[labels == semantic.ignore_index] = taxonomy.ignore_index
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > 65535:
        raise AnnotationError(where, f"label values {low}..{high} do not fit a 16-bit mask", "remap the classes")
    return labels.astype(np.uint8 if high < 256 else np.uint16)


def _instance_array(instances: InstanceSet, where: Path) -> np.ndarray:
    """``(H, W) uint16`` id map; values from ``instances.ids`` when usable, else 1..N."""
    n = len(instances)
    ids = instances.ids
    usable = ids is not None and len(set(ids.tolist())) == n and (n == 0 or (ids.min() >= 1 and ids.max() <= 65535))
    if not usable and n > 65535:
        raise AnnotationError(where, f"{n} instances, more than a 16-bit mask holds", "split the image into tiles")
    values = ids if usable else np.arange(1, n + 1)  # type: ignore[assignment]
    index_map = instance_id_map(instances)  # i + 1, later on top
    table = np.concatenate([[0], np.asarray(values, dtype=np.int64)])
    return table[index_map].astype(np.uint16)


def write_mask_folder(
    dataset: SegmentationDataset,
    out_dir: str | Path,
    *,
    mask_kind: str = "semantic",
    mask_format: str = "png",
    palette: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``images/``, ``masks/`` and ``classes.json`` (see the module notes for what is lossy).

    A missing view is derived (:func:`~pixelwise.core.convert.complete_annotation`): a
    semantic map from instances or a panoptic map, instances from a panoptic map.
    Unlabelled samples get an image and no mask. Samples that cannot be written are
    skipped and reported in ``dataset.issues`` and the manifest.

    Args:
        dataset: what to write.
        out_dir: the root to create.
        mask_kind: ``"semantic"`` (class ids) or ``"instance"`` (16-bit instance ids).
        mask_format: ``"png"`` or ``"tiff"``.
        palette: semantic 8-bit PNGs as palette PNGs coloured by the taxonomy (gray
            otherwise; some readers, e.g. OpenCV, turn palette PNGs into colours).
        progress: show a progress bar (only with 50 or more samples).

    Returns:
        ``out_dir``.

    Raises:
        FormatError: unknown ``mask_kind`` or ``mask_format``.

    Example:
        >>> write_mask_folder(ds, "/tmp/masks_out", mask_kind="instance")  # doctest: +SKIP
        PosixPath('/tmp/masks_out')
    """
    out = Path(out_dir)
    if mask_kind not in ("semantic", "instance"):
        raise FormatError(out, f"cannot write mask_kind {mask_kind!r}", "choose 'semantic' or 'instance'")
    if mask_format not in ("png", "tiff"):
        raise FormatError(out, f"unknown mask_format {mask_format!r}", "choose 'png' or 'tiff'")
    taxonomy = dataset.taxonomy
    image_dir, mask_dir = out / "images", out / "masks"
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    colours = taxonomy.palette(256) if palette else None
    suffix = ".png" if mask_format == "png" else ".tif"
    issues: list[DataIssue] = []
    written: list[Sample] = []
    used: set[str] = set()
    class_counts: Counter[int] = Counter()
    show = progress and len(dataset.samples) >= _PROGRESS_MIN
    for sample in tqdm(dataset.samples, desc="writing masks", unit="image", disable=not show):
        stem = _safe_stem(sample.image_id, used)
        mask_path = mask_dir / f"{stem}{suffix}"
        try:
            annotation = sample.annotation()
            array = None
            if not annotation.is_empty:
                if mask_kind == "semantic":
                    if annotation.semantic is None:
                        annotation = complete_annotation(annotation, taxonomy)
                    array = _semantic_array(annotation.semantic, taxonomy, mask_path)  # type: ignore[arg-type]
                else:
                    if annotation.instances is None and annotation.panoptic is not None:
                        annotation = complete_annotation(annotation, taxonomy)
                    instances = annotation.instances
                    if instances is None:
                        issues.append(DataIssue(sample.image_path, "sample has no instance view (semantic only); "
                                                "written as an empty instance mask", "warning", sample.image_id,
                                                "write mask_kind='semantic' for semantic labels"))
                        instances = InstanceSet.empty(*annotation.shape)  # type: ignore[misc]
                    array = _instance_array(instances, mask_path)
                    class_counts.update(instances.class_ids.tolist())
            image_out = _copy_image(Path(sample.image_path), image_dir / stem)
            if array is not None:
                _write_array(mask_path, array, colours if array.dtype == np.uint8 else None)
        except (DataError, ShapeError, OSError) as exc:
            error = exc if isinstance(exc, DataError) else DataError(sample.image_path, f"cannot write sample: {exc}")
            issues.append(DataIssue.from_error(error, sample.image_id))
            used.discard(stem)
            continue
        written.append(Sample(stem, image_out, sample.height, sample.width, dict(sample.metadata)))
    extras: dict[str, Any] = {"mask_kind": mask_kind}
    if mask_kind == "instance":
        extras["instance_class"] = _instance_class(class_counts, taxonomy, out, issues)
    (out / CLASSES_JSON).write_text(json.dumps({**taxonomy.to_dict(), **extras}, indent=2), encoding="utf-8")
    dataset.issues.extend(issues)
    write_manifest(SegmentationDataset(taxonomy, written, issues, dataset.name, out, "masks"), out / MANIFEST_NAME)
    return out


def _instance_class(counts: Counter[int], taxonomy: Taxonomy, out: Path, issues: list[DataIssue]) -> int:
    """The class recorded for instance masks: the most common one (others are reported)."""
    if counts:
        chosen = counts.most_common(1)[0][0]
    else:
        things = taxonomy.thing_ids
        chosen = things[0] if things else (taxonomy.ids[0] if len(taxonomy) else 1)
    others = sorted(set(counts) - {chosen})
    if others:
        issues.append(DataIssue(out / CLASSES_JSON,
                                f"instance masks hold no class: instances of classes {others} will read back as class {chosen}",
                                "warning", None, "write mask_kind='semantic' too, or use the coco or cityscapes format"))
    return int(chosen)


register_format(
    FormatSpec(
        "masks",
        read_mask_folder,
        write_mask_folder,
        "Plain mask folders: images/ + masks/<stem>[_mask].png|tif (semantic, instance or binary masks)",
        frozenset({"semantic", "instances"}),
    )
)
