"""COCO instance-segmentation format (``coco``): read, write, detection-results JSON.

Layout read (:func:`read_coco`)::

    <root>/annotations.json                 or  <root>/annotations/instances*.json
    <root>/images/<file_name>               (or next to the JSON, or <root>/<split>/)
    <root>/pixelwise_manifest.json          (optional; extra metadata is merged)

``path`` may also be the JSON file itself. Layout written (:func:`write_coco`)::

    <out_dir>/annotations.json  <out_dir>/images/<image_id><ext>  <out_dir>/pixelwise_manifest.json

Conventions:

- Masks are held as COCO RLE dicts in :class:`~pixelwise.core.labels.InstanceSet`
  (polygons are rasterised by pycocotools when the annotation is loaded); boxes are
  recomputed from the masks (``xyxy``, pixel-edge coordinates).
- ``Sample.image_id`` is the image ``file_name`` without its extension (sub-folders kept,
  POSIX separators); COCO's numeric image id is kept in ``metadata["coco_id"]`` and
  reused by the writer, so ids survive COCO -> other format -> COCO.
- Image records: every key other than COCO's own (``id``, ``file_name``, ``width``,
  ``height``, ``license``, ``coco_url``, ``flickr_url``, ``date_captured``) is metadata;
  ``date_captured`` becomes ``metadata["timestamp"]`` and is written back from it.
- Categories give the taxonomy: ``id``, ``name``, ``supercategory`` (``""`` -> None),
  ``color`` when present (else :func:`~pixelwise.core.taxonomy.distinct_colors`),
  ``isthing`` when present (else True).

Lossy on write: ``license``, ``coco_url``, ``flickr_url`` and the top-level ``info`` /
``licenses`` are not carried; scores are not written to ground truth; holes are filled in
``mask_encoding="polygon"`` mode (COCO polygons have no holes; ``"auto"`` switches such
instances to RLE instead).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import cv2
import numpy as np
from tqdm import tqdm

from pixelwise.core.convert import instances_from_semantic, views_from_panoptic
from pixelwise.core.errors import AnnotationError, DataError, FormatError, ImageReadError, ShapeError, TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.masks import (
    RLE,
    Polygon,
    mask_to_box,
    mask_to_polygons,
    polygons_have_holes,
    polygons_to_mask,
    rle_compress,
    rle_decode,
    rle_encode,
)
from pixelwise.core.taxonomy import DEFAULT_IGNORE_INDEX, ClassInfo, Taxonomy, distinct_colors
from pixelwise.data.dataset import (
    AnnotationLoader,
    DataIssue,
    Sample,
    SegmentationDataset,
    read_manifest_metadata,
    write_manifest,
)
from pixelwise.data.formats.base import MANIFEST_NAME, FormatSpec, register_format
from pixelwise.data.image_io import image_size, read_image, write_image

__all__ = [
    "COCO_IMAGE_KEYS",
    "coco_dict_from_dataset",
    "coco_results",
    "instances_from_semantic",
    "load_coco_json",
    "read_coco",
    "taxonomy_from_coco_categories",
    "write_coco",
]

#: Keys of a COCO image record that are COCO's own (everything else is metadata).
COCO_IMAGE_KEYS = ("id", "file_name", "width", "height", "license", "coco_url", "flickr_url", "date_captured")
#: Metadata key holding the numeric COCO image id of a sample.
COCO_ID_KEY = "coco_id"

MaskEncoding = Literal["auto", "polygon", "rle"]
_MASK_ENCODINGS = ("auto", "polygon", "rle")
_COPY_EXTENSIONS = (".jpg", ".jpeg", ".png")
_PROGRESS_MIN = 50


# =========================================================================== shared helpers
# (also used by pixelwise.data.formats.coco_panoptic)


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """Parse a COCO-style JSON file into a dict.

    Args:
        path: the ``.json`` file.

    Returns:
        The top-level JSON object.

    Raises:
        FormatError: missing file, not UTF-8, invalid JSON (with line and column), or a
            top level that is not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "COCO JSON file does not exist", "check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"file is not UTF-8 text ({exc.reason} at byte {exc.start})", "save the JSON as UTF-8") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(
            path,
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            "fix the syntax there (a truncated download or a trailing comma is typical)",
        ) from exc
    if not isinstance(data, dict):
        raise FormatError(path, f"COCO JSON must be an object at the top level, got {type(data).__name__}")
    return data


def _require_list(data: Mapping[str, Any], key: str, path: Path, what: str = "COCO JSON") -> list[Any]:
    if key not in data:
        raise FormatError(path, f"{what} has no '{key}' list", f"a {what} needs top-level 'images', 'annotations' and 'categories' lists")
    value = data[key]
    if not isinstance(value, list):
        raise FormatError(path, f"{what} '{key}' must be a list, got {type(value).__name__}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _valid_color(value: Any) -> tuple[int, int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in value):
        return (int(value[0]), int(value[1]), int(value[2]))
    return None


def taxonomy_from_coco_categories(
    categories: Sequence[Any], path: Path | None = None, issues: list[DataIssue] | None = None
) -> Taxonomy:
    """Build a :class:`Taxonomy` from a COCO ``categories`` list.

    Colour from ``color`` when it is ``[r, g, b]``, else a distinct colour; ``is_thing``
    from ``isthing`` when present, else True; ``supercategory`` ``""`` becomes None. The
    ignore index is 255 unless a category uses 255 (then ``max id + 1``, with a warning).

    Args:
        categories: the list of category dicts.
        path: the JSON, for error messages.
        issues: where to record the ignore-index warning.

    Raises:
        FormatError: a category is not a dict with an integer ``id`` >= 0 and a ``name``,
            or ids / names repeat.
    """
    palette = distinct_colors(len(categories))
    classes: list[ClassInfo] = []
    for index, cat in enumerate(categories):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str) or not cat["name"]:
            raise FormatError(
                path,
                f"category {index} must be an object with an integer 'id' and a non-empty 'name', got {cat!r}"[:300],
            )
        color = _valid_color(cat.get("color")) or palette[index]
        is_thing = bool(cat["isthing"]) if "isthing" in cat else True
        supercategory = cat.get("supercategory")
        supercategory = str(supercategory) if supercategory not in (None, "") else None
        try:
            classes.append(ClassInfo(int(cat["id"]), cat["name"], color, is_thing, supercategory))
        except TaxonomyError as exc:
            raise FormatError(path, f"category {index}: {exc}") from exc
    ids = [c.id for c in classes]
    ignore_index = DEFAULT_IGNORE_INDEX
    if ignore_index in ids:
        ignore_index = max(ids) + 1
        if issues is not None:
            issues.append(
                DataIssue(path, f"a category uses id 255; the ignore index is {ignore_index} instead", "warning")
            )
    try:
        return Taxonomy(tuple(classes), ignore_index=ignore_index)
    except TaxonomyError as exc:
        raise FormatError(path, f"categories are inconsistent: {exc}", "category ids and names must be unique") from exc


def _locate_json(path: Path, default_name: str, pattern: str, what: str) -> tuple[Path, Path]:
    """``(json_path, root)`` for a JSON file or a dataset folder.

    A folder is searched for ``<root>/<default_name>``, then ``<root>/annotations/<pattern>``.
    The root is the JSON's folder, or its parent when that folder is named ``annotations``.
    """
    if path.is_file():
        parent = path.parent
        return path, (parent.parent if parent.name == "annotations" else parent)
    if not path.is_dir():
        raise FormatError(path, f"{what} path does not exist", "give the JSON file or the dataset folder")
    direct = path / default_name
    if direct.is_file():
        return direct, path
    found = sorted((path / "annotations").glob(pattern)) if (path / "annotations").is_dir() else []
    found = [p for p in found if p.is_file()]
    if len(found) == 1:
        return found[0], path
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise FormatError(path, f"several {what} files found in annotations/: {names}", "pass the JSON file itself as the path")
    raise FormatError(
        path,
        f"no {what} found: expected {default_name} or annotations/{pattern}",
        "pass the JSON file itself, or check the folder",
    )


def _split_name(json_path: Path) -> str | None:
    """``val2017`` for ``instances_val2017.json`` / ``panoptic_val2017.json``."""
    match = re.match(r"^(?:instances|panoptic|image_info)_(.+)$", json_path.stem)
    return match.group(1) if match else None


def _image_dirs(json_path: Path, root: Path, images_dir: str | Path | None) -> list[Path]:
    if images_dir is not None:
        return [Path(images_dir)]
    dirs = [json_path.parent, root, root / "images"]
    split = _split_name(json_path)
    if split:
        dirs.append(root / split)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _safe_relpath(name: str) -> str:
    """A relative POSIX path without ``..``/absolute parts (for ids used as file names)."""
    parts = [p for p in PurePosixPath(str(name).replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    return "/".join(parts) or "image"


def _sample_id_from_file_name(file_name: str) -> str:
    rel = PurePosixPath(_safe_relpath(file_name))
    return str(rel.with_suffix("")) if rel.suffix else str(rel)


@dataclass
class _ImageRecord:
    """A validated COCO image record."""

    coco_id: Any
    file_name: str
    sample_id: str
    height: int
    width: int
    image_path: Path
    metadata: dict[str, Any] = field(default_factory=dict)


def _image_metadata(record: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in record.items() if k not in COCO_IMAGE_KEYS}
    captured = record.get("date_captured")
    if captured not in (None, ""):
        metadata.setdefault("timestamp", captured)
    metadata[COCO_ID_KEY] = record.get("id")
    return metadata


def _parse_images(
    images: list[Any],
    json_path: Path,
    image_dirs: list[Path],
    issues: list[DataIssue],
    check_images: bool,
    progress: bool,
) -> tuple[dict[Any, _ImageRecord], set[Any]]:
    """Validate image records; returns (kept records by COCO id, every id seen)."""
    kept: dict[Any, _ImageRecord] = {}
    seen: set[Any] = set()
    used_sample_ids: set[str] = set()
    where = ", ".join(str(d) for d in image_dirs)
    for index, record in enumerate(_progress(images, progress, "checking images")):
        if not isinstance(record, dict):
            issues.append(DataIssue(json_path, f"image record {index} is not an object", "error"))
            continue
        coco_id = record.get("id")
        if not (_is_int(coco_id) or isinstance(coco_id, str)):
            issues.append(DataIssue(json_path, f"image record {index} has no integer 'id' (got {coco_id!r})", "error"))
            continue
        if coco_id in seen:
            issues.append(
                DataIssue(json_path, f"duplicate image id {coco_id}: record {index} skipped, the first one is kept", "error",
                          hint="image ids must be unique")
            )
            continue
        seen.add(coco_id)
        file_name = record.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            issues.append(DataIssue(json_path, f"image {coco_id} has no 'file_name'", "error"))
            continue
        height, width = record.get("height"), record.get("width")
        size_given = _is_int(height) and _is_int(width) and height > 0 and width > 0
        if not size_given and (height is not None or width is not None):
            issues.append(DataIssue(json_path, f"image {coco_id} has invalid size height={height!r} width={width!r}", "error"))
            continue
        sample_id = _sample_id_from_file_name(file_name)
        candidates = [Path(file_name)] if Path(file_name).is_absolute() else [d / file_name for d in image_dirs]
        image_path = next((p for p in candidates if p.is_file()), None)
        if check_images or not size_given:
            if image_path is None:
                issues.append(
                    DataIssue(candidates[0], f"image file {file_name!r} (image id {coco_id}) not found in {where}", "error",
                              sample_id, "pass images_dir= pointing to the folder that holds the images")
                )
                continue
            try:
                actual = image_size(image_path)
            except ImageReadError as exc:
                issues.append(DataIssue.from_error(exc, sample_id))
                continue
            if size_given and actual != (height, width):
                hint = "the JSON size must be the image's size"
                if actual == (width, height):
                    hint = "sides are swapped: the image probably has an EXIF rotation the annotations ignore"
                issues.append(
                    DataIssue(image_path, f"COCO JSON says {width}x{height} (WxH) but the image is {actual[1]}x{actual[0]}",
                              "error", sample_id, hint)
                )
                continue
            height, width = actual
        if sample_id in used_sample_ids:
            new_id = f"{sample_id}_{coco_id}"
            issues.append(
                DataIssue(json_path, f"two images map to sample id {sample_id!r}; image {coco_id} is {new_id!r}", "warning", new_id)
            )
            sample_id = new_id
        used_sample_ids.add(sample_id)
        kept[coco_id] = _ImageRecord(
            coco_id, file_name, sample_id, int(height), int(width),
            image_path if image_path is not None else candidates[0], _image_metadata(record),
        )
    return kept, seen


def _merge_manifest(records: Iterable[_ImageRecord], roots: Sequence[Path], issues: list[DataIssue]) -> None:
    """Fill metadata from a Pixelwise manifest (JSON values win over manifest values)."""
    for root in roots:
        manifest = root / MANIFEST_NAME
        if not manifest.is_file():
            continue
        try:
            table = read_manifest_metadata(manifest)
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, severity="warning"))
            return
        for record in records:
            extra = table.get(record.sample_id)
            if extra:
                record.metadata = {**extra, **record.metadata}
        return


def _progress(items: Sequence[Any], progress: bool, desc: str) -> Iterator[Any]:
    return iter(tqdm(items, desc=desc, unit="image", disable=(not progress) or len(items) < _PROGRESS_MIN))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _dump_json(payload: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, default=_json_default))


class _IdAllocator:
    """Unique positive integer ids, reusing a wished-for id when it is still free."""

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.next = 1

    def take(self, wish: Any = None) -> int:
        if _is_int(wish) and int(wish) >= 0 and int(wish) not in self.used:
            self.used.add(int(wish))
            return int(wish)
        while self.next in self.used:
            self.next += 1
        self.used.add(self.next)
        return self.next


def _image_record(sample: Sample, coco_id: int, file_name: str) -> dict[str, Any]:
    """COCO image record with the sample's metadata as extra keys (COCO's own keys win)."""
    record: dict[str, Any] = {"id": coco_id, "file_name": file_name, "width": int(sample.width), "height": int(sample.height)}
    metadata = dict(sample.metadata)
    metadata.pop(COCO_ID_KEY, None)
    timestamp = metadata.pop("timestamp", None)
    if timestamp not in (None, ""):
        record["date_captured"] = timestamp
    for key, value in metadata.items():
        if key not in COCO_IMAGE_KEYS:
            record[key] = value
    return record


def _categories_json(taxonomy: Taxonomy, include_stuff: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "name": c.name,
            "supercategory": c.supercategory or "",
            "isthing": int(c.is_thing),
            "color": list(c.color),
        }
        for c in taxonomy.classes
        if include_stuff or c.is_thing
    ]


def _export_image(sample: Sample, images_root: Path, rel_stem: str) -> str:
    """Copy (or re-encode to PNG) the sample's image; returns its name relative to ``images_root``.

    Raises:
        ImageReadError: the source image is missing or unreadable.
    """
    src = Path(sample.image_path)
    if not src.is_file():
        raise ImageReadError(src, "image file does not exist", "the dataset's image paths must point at real files")
    suffix = src.suffix.lower()
    rel = rel_stem + (src.suffix if suffix in _COPY_EXTENSIONS else ".png")
    dest = images_root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if suffix in _COPY_EXTENSIONS:
        if not (dest.exists() and dest.resolve() == src.resolve()):
            shutil.copy2(src, dest)
    else:
        write_image(dest, read_image(src))
    return rel


def _written_dataset(dataset: SegmentationDataset, written: list[Sample], format_name: str) -> SegmentationDataset:
    return SegmentationDataset(dataset.taxonomy, written, dataset.issues, dataset.name, None, format_name)


# =========================================================================== reader


@dataclass
class _Ann:
    """A validated annotation: polygons (flat rings) or a compressed RLE."""

    ann_id: int
    category_id: int
    iscrowd: bool
    polygons: list[np.ndarray] | None = None
    rle: RLE | None = None


def _check_bbox(bbox: Any, height: int, width: int, tolerance: float) -> str | None:
    """Reason why a COCO ``[x, y, w, h]`` box is invalid, or None."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox
    ):
        return f"bbox must be [x, y, width, height], got {bbox!r}"
    x, y, w, h = (float(v) for v in bbox)
    if not all(np.isfinite([x, y, w, h])) or w < 0 or h < 0:
        return f"bbox {list(bbox)} has a negative or non-finite value"
    if x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance:
        return f"bbox {list(bbox)} lies outside the {width}x{height} (WxH) image"
    return None


def _check_polygons(segmentation: list[Any], height: int, width: int, tolerance: float) -> list[np.ndarray]:
    """Validate COCO polygons; returns flat float64 rings. Raises AnnotationError(None, ...)."""
    if not segmentation:
        raise AnnotationError(None, "segmentation is an empty list (a box-only annotation has no mask)")
    rings: list[np.ndarray] = []
    for k, poly in enumerate(segmentation):
        if not isinstance(poly, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly
        ):
            raise AnnotationError(None, f"polygon {k} must be a flat list of numbers [x0, y0, x1, y1, ...]")
        ring = np.asarray(poly, dtype=np.float64)
        if ring.size % 2:
            raise AnnotationError(None, f"polygon {k} has an odd number of coordinates ({ring.size})")
        if ring.size < 6:
            raise AnnotationError(
                None,
                f"polygon {k} has {ring.size // 2} points ({ring.size} numbers); a polygon needs at least 3 points (6 numbers)",
            )
        if not np.isfinite(ring).all():
            raise AnnotationError(None, f"polygon {k} has non-finite coordinates")
        Polygon(ring.reshape(-1, 2))  # at least 3 distinct points
        xs, ys = ring[0::2], ring[1::2]
        if xs.min() < -tolerance or ys.min() < -tolerance or xs.max() > width + tolerance or ys.max() > height + tolerance:
            raise AnnotationError(
                None,
                f"polygon {k} spans x {xs.min():g}..{xs.max():g}, y {ys.min():g}..{ys.max():g}, "
                f"outside the {width}x{height} (WxH) image",
            )
        rings.append(ring)
    return rings


def _check_rle(segmentation: dict[str, Any], height: int, width: int) -> RLE:
    """Validate an RLE of the image's size; returns it compressed. Raises AnnotationError(None, ...)."""
    size = segmentation.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and [int(v) if _is_int(v) else v for v in size] == [height, width]):
        raise AnnotationError(None, f"RLE size {size!r} differs from the image size [{height}, {width}] (HxW)")
    counts = segmentation.get("counts")
    if isinstance(counts, list):
        return rle_compress(segmentation)
    if isinstance(counts, str):
        rle = {"size": [height, width], "counts": counts}
        rle_decode(rle)  # validates the compressed string
        return rle
    raise AnnotationError(None, f"RLE counts must be a list of ints or a string, got {type(counts).__name__}")


def _validate_annotation(
    ann: Mapping[str, Any], image: _ImageRecord, category_ids: set[int], tolerance: float
) -> _Ann:
    """Check one annotation against its image.

    Raises:
        AnnotationError: (without path) every problem found, joined by ``"; "``.
    """
    reasons: list[str] = []
    hints: list[str] = []
    category_id = ann.get("category_id")
    if category_id not in category_ids:
        reasons.append(f"unknown category id {category_id!r}; categories are {sorted(category_ids)[:20]}")
    ann_id = ann.get("id")
    parsed = _Ann(int(ann_id) if _is_int(ann_id) else -1, -1, bool(ann.get("iscrowd", 0)))
    segmentation = ann.get("segmentation")
    try:
        if isinstance(segmentation, list):
            parsed.polygons = _check_polygons(segmentation, image.height, image.width, tolerance)
        elif isinstance(segmentation, dict):
            parsed.rle = _check_rle(segmentation, image.height, image.width)
        else:
            reasons.append(f"segmentation must be a polygon list or an RLE dict, got {type(segmentation).__name__}")
    except AnnotationError as exc:
        reasons.append(exc.reason)
        if exc.hint:
            hints.append(exc.hint)
    except ShapeError as exc:
        reasons.append(str(exc))
    bbox = ann.get("bbox")
    if bbox is not None:
        reason = _check_bbox(bbox, image.height, image.width, tolerance)
        if reason:
            reasons.append(reason)
    if reasons:
        raise AnnotationError(None, "; ".join(reasons), "; ".join(hints) or None)
    parsed.category_id = int(category_id)  # type: ignore[arg-type]
    return parsed


def _parse_annotations(
    annotations: list[Any],
    images: dict[Any, _ImageRecord],
    seen_image_ids: set[Any],
    category_ids: set[int],
    json_path: Path,
    issues: list[DataIssue],
    tolerance: float,
) -> dict[Any, list[_Ann]]:
    per_image: dict[Any, list[_Ann]] = {key: [] for key in images}
    for index, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            issues.append(DataIssue(json_path, f"annotation record {index} is not an object", "error"))
            continue
        ann_id = ann.get("id", f"#{index}")
        image_id = ann.get("image_id")
        if image_id not in seen_image_ids:
            issues.append(
                DataIssue(json_path, f"annotation {ann_id} refers to unknown image id {image_id!r}; skipped", "error",
                          hint="every annotation's image_id must be the id of an image record")
            )
            continue
        image = images.get(image_id)
        if image is None:  # the image itself was skipped and reported
            continue
        try:
            per_image[image_id].append(_validate_annotation(ann, image, category_ids, tolerance))
        except AnnotationError as exc:
            error = AnnotationError(
                json_path,
                f"annotation {ann_id} (image {image_id}): {exc.reason}; annotation skipped",
                exc.hint or "fix or remove this annotation; the rest of the image still loads",
            )
            issues.append(DataIssue.from_error(error, image.sample_id))
    return per_image


def _make_loader(image: _ImageRecord, anns: list[_Ann]) -> AnnotationLoader:
    def load() -> Annotation:
        masks: list[RLE] = []
        for ann in anns:
            if ann.rle is not None:
                masks.append(ann.rle)
            else:
                masks.append(rle_encode(polygons_to_mask(ann.polygons or [], image.height, image.width)))
        instances = InstanceSet(
            image.height,
            image.width,
            np.array([a.category_id for a in anns], dtype=np.int64),
            masks,
            iscrowd=np.array([a.iscrowd for a in anns], dtype=bool),
            ids=np.array([a.ann_id for a in anns], dtype=np.int64),
        )
        return Annotation(instances=instances)

    return load


def read_coco(
    path: str | Path,
    images_dir: str | Path | None = None,
    *,
    check_images: bool = True,
    bounds_tolerance: float = 1.0,
    progress: bool = True,
) -> SegmentationDataset:
    """Read a COCO instance-segmentation dataset.

    Whole-file problems raise; per-record problems become :class:`DataIssue` entries in
    ``dataset.issues``: a bad annotation (polygon with fewer than 3 points, RLE counts
    not matching its size, box or polygon outside the image, unknown category or image
    id) is skipped alone; a duplicate image id skips the second record; a missing or
    unreadable image (or one whose size disagrees with the JSON) skips the sample.

    Args:
        path: the JSON file, or a folder holding ``annotations.json`` or
            ``annotations/instances*.json``.
        images_dir: folder that ``file_name`` is relative to. Default: the JSON's folder,
            the root, ``<root>/images`` or ``<root>/<split>`` (``instances_<split>.json``),
            the first that holds the file.
        check_images: read each image header to check it exists and matches the JSON's
            size (False trusts the JSON; faster on huge sets).
        bounds_tolerance: pixels a box or polygon may reach past the image border.
        progress: show a progress bar (only with 50 or more images).

    Returns:
        A dataset whose samples load ``Annotation(instances=InstanceSet)`` with RLE masks,
        ``ids`` = annotation ids (-1 when absent) and ``iscrowd`` flags.

    Raises:
        FormatError: no JSON found, invalid JSON (line and column given), no ``images``
            or ``categories`` list, malformed categories.

    Example:
        >>> ds = read_coco("coco/annotations/instances_val2017.json")  # doctest: +SKIP
        >>> ds[0].annotation().instances.class_ids  # doctest: +SKIP
    """
    json_path, root = _locate_json(Path(path), "annotations.json", "instances*.json", "COCO instances JSON")
    data = load_coco_json(json_path)
    issues: list[DataIssue] = []
    images = _require_list(data, "images", json_path)
    categories = _require_list(data, "categories", json_path)
    if "annotations" in data:
        annotations = _require_list(data, "annotations", json_path)
    else:
        annotations = []
        issues.append(DataIssue(json_path, "COCO JSON has no 'annotations' list; every image is read as unlabelled", "warning"))
    taxonomy = taxonomy_from_coco_categories(categories, json_path, issues)
    dirs = _image_dirs(json_path, root, images_dir)
    records, seen = _parse_images(images, json_path, dirs, issues, check_images, progress)
    _merge_manifest(records.values(), [root, json_path.parent], issues)
    per_image = _parse_annotations(annotations, records, seen, set(taxonomy.ids), json_path, issues, bounds_tolerance)
    samples = [
        Sample(rec.sample_id, rec.image_path, rec.height, rec.width, rec.metadata, _make_loader(rec, per_image[key]))
        for key, rec in records.items()
    ]
    return SegmentationDataset(taxonomy, samples, issues, name=json_path.stem, root=root, format="coco")


# =========================================================================== writer


def _instances_for_export(annotation: Annotation, taxonomy: Taxonomy) -> InstanceSet | None:
    if annotation.instances is not None:
        return annotation.instances
    if annotation.panoptic is not None:
        return views_from_panoptic(annotation.panoptic, taxonomy.ignore_index)[1]
    if annotation.semantic is not None:
        return instances_from_semantic(annotation.semantic, taxonomy)
    return None


def _flat_numbers(ring: list[float]) -> list[float | int]:
    return [int(v) if float(v).is_integer() else float(v) for v in ring]


class _CocoBuilder:
    """Accumulates COCO image and annotation records with unique ids."""

    def __init__(self, dataset: SegmentationDataset, mask_encoding: str, include_stuff: bool, polygon_tolerance: float) -> None:
        if mask_encoding not in _MASK_ENCODINGS:
            raise ValueError(f"mask_encoding must be one of {_MASK_ENCODINGS}, got {mask_encoding!r}")
        self.dataset = dataset
        self.mask_encoding = mask_encoding
        self.include_stuff = include_stuff
        self.polygon_tolerance = polygon_tolerance
        self.categories = {c["id"] for c in _categories_json(dataset.taxonomy, include_stuff)}
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.image_ids = _IdAllocator()
        self.ann_ids = _IdAllocator()
        self.holes_filled = 0

    def annotation_of(self, sample: Sample) -> Annotation | None:
        """The sample's annotation, or None (reported) when it cannot be loaded."""
        try:
            return sample.annotation()
        except DataError as exc:
            self.dataset.issues.append(DataIssue.from_error(exc, sample.image_id))
        except (ShapeError, ValueError) as exc:
            self.dataset.issues.append(DataIssue(Path(sample.image_path), f"annotation cannot be loaded: {exc}", "error", sample.image_id))
        return None

    def add(self, sample: Sample, annotation: Annotation | None, file_name: str) -> None:
        coco_id = self.image_ids.take(sample.metadata.get(COCO_ID_KEY))
        self.images.append(_image_record(sample, coco_id, file_name))
        instances = _instances_for_export(annotation, self.dataset.taxonomy) if annotation is not None else None
        if instances is None:
            return
        ids = instances.ids
        for index in range(len(instances)):
            class_id = int(instances.class_ids[index])
            if class_id not in self.categories:
                self.dataset.issues.append(
                    DataIssue(Path(sample.image_path), f"instance {index} has class {class_id}, not a written category; skipped",
                              "error", sample.image_id, "add the class to the taxonomy (or include_stuff=True)")
                )
                continue
            mask = rle_decode(instances.masks[index]) if isinstance(instances.masks, list) else instances.masks[index]
            crowd = bool(instances.iscrowd[index]) if instances.iscrowd is not None else False
            x0, y0, x1, y1 = (int(v) for v in mask_to_box(mask))
            self.annotations.append(
                {
                    "id": self.ann_ids.take(None if ids is None else int(ids[index])),
                    "image_id": coco_id,
                    "category_id": class_id,
                    "segmentation": self._segmentation(mask, (x0, y0, x1, y1), crowd),
                    "area": int(mask.sum()),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": int(crowd),
                }
            )

    def _segmentation(self, mask: np.ndarray, box: tuple[int, int, int, int], crowd: bool) -> RLE | list[list[float | int]]:
        if crowd or self.mask_encoding == "rle" or not mask.any():
            return rle_encode(mask)
        x0, y0, x1, y1 = box
        polygons = mask_to_polygons(mask[y0:y1, x0:x1], tolerance=self.polygon_tolerance)  # traced on the crop: fast
        if not polygons:
            return rle_encode(mask)
        if polygons_have_holes(polygons):
            if self.mask_encoding == "auto":
                return rle_encode(mask)
            self.holes_filled += 1
        offset = np.array([x0, y0], dtype=np.float64)
        return [_flat_numbers((p.exterior + offset).reshape(-1).tolist()) for p in polygons]

    def result(self) -> dict[str, Any]:
        if self.holes_filled:
            self.dataset.issues.append(
                DataIssue(None, f"{self.holes_filled} instance(s) had holes that COCO polygons cannot hold; the holes were filled",
                          "warning", hint="use mask_encoding='auto' or 'rle' to keep holes")
            )
            self.holes_filled = 0
        return {
            "info": {"description": self.dataset.name, "contributor": "pixelwise"},
            "licenses": [],
            "images": self.images,
            "annotations": self.annotations,
            "categories": _categories_json(self.dataset.taxonomy, self.include_stuff),
        }


def coco_dict_from_dataset(
    dataset: SegmentationDataset,
    mask_encoding: MaskEncoding = "auto",
    *,
    include_stuff: bool = True,
    polygon_tolerance: float = 0.0,
    progress: bool = False,
) -> dict[str, Any]:
    """The COCO instances JSON of a dataset, in memory (images are not copied).

    ``file_name`` is ``<image_id><image suffix>``, as :func:`write_coco` names copies.
    Samples whose annotation fails to load are skipped and reported in ``dataset.issues``.
    See :func:`write_coco` for the options and how instances are derived.

    Returns:
        ``{"info", "licenses", "images", "annotations", "categories"}``.
    """
    builder = _CocoBuilder(dataset, mask_encoding, include_stuff, polygon_tolerance)
    for sample in _progress(dataset.samples, progress, "building COCO"):
        annotation = builder.annotation_of(sample)
        if annotation is None:
            continue
        builder.add(sample, annotation, _safe_relpath(sample.image_id) + Path(sample.image_path).suffix)
    return builder.result()


def write_coco(
    dataset: SegmentationDataset,
    out_dir: str | Path,
    mask_encoding: MaskEncoding = "auto",
    images_subdir: str = "images",
    json_name: str = "annotations.json",
    *,
    include_stuff: bool = True,
    polygon_tolerance: float = 0.0,
    progress: bool = True,
) -> Path:
    """Write a dataset as COCO instances JSON plus images and the Pixelwise manifest.

    Instances per sample: the annotation's instances; else the thing segments of its
    panoptic map; else one instance per 8-connected region of each thing class of its
    semantic map (stuff classes give none). A sample with no label view is written as an
    image without annotations.

    Masks (``mask_encoding``): ``"polygon"`` writes pixel-edge outlines (exact for
    hole-free masks; holes are filled and a warning is recorded); ``"rle"`` writes
    compressed RLE; ``"auto"`` writes polygons unless an instance has a hole, then RLE.
    Crowd instances are always RLE (COCO rule). ``area`` is the pixel count and ``bbox``
    the mask's ``[x, y, w, h]``. Annotation ids are the instances' ``ids`` when unique,
    image ids ``metadata["coco_id"]`` when free; others are allocated. Categories carry
    ``isthing`` and ``color`` so the taxonomy reads back unchanged.

    Args:
        dataset: what to write; issues met while writing are appended to ``dataset.issues``.
        out_dir: output folder (created).
        mask_encoding: ``"auto"``, ``"polygon"`` or ``"rle"``.
        images_subdir: folder under ``out_dir`` for image copies (``file_name`` is relative
            to it; read back with ``images_dir=`` unless it is ``"images"`` or ``""``).
        json_name: JSON path under ``out_dir``.
        include_stuff: also list stuff classes as categories (they have no annotations).
        polygon_tolerance: Douglas-Peucker simplification in pixels (0 = exact outline).
        progress: show a progress bar (only with 50 or more samples).

    Returns:
        ``out_dir``.

    Example:
        >>> write_coco(dataset, "out/coco", mask_encoding="rle")  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images_root = out_dir / images_subdir if images_subdir else out_dir
    builder = _CocoBuilder(dataset, mask_encoding, include_stuff, polygon_tolerance)
    written: list[Sample] = []
    for sample in _progress(dataset.samples, progress, "writing COCO"):
        annotation = builder.annotation_of(sample)
        if annotation is None:
            continue
        try:
            file_name = _export_image(sample, images_root, _safe_relpath(sample.image_id))
        except (DataError, OSError) as exc:
            error = exc if isinstance(exc, DataError) else ImageReadError(sample.image_path, f"cannot copy image: {exc}")
            dataset.issues.append(DataIssue.from_error(error, sample.image_id))
            continue
        builder.add(sample, annotation, file_name)
        written.append(Sample(sample.image_id, images_root / file_name, sample.height, sample.width, dict(sample.metadata)))
    _dump_json(builder.result(), out_dir / json_name)
    write_manifest(_written_dataset(dataset, written, "coco"), out_dir / MANIFEST_NAME)
    return out_dir


def coco_results(
    instances: InstanceSet, image_id: int, category_map: Mapping[int, int] | None = None
) -> list[dict[str, Any]]:
    """COCO detection-results entries (``segm`` and ``bbox`` evaluation) for one image.

    Args:
        instances: predictions with ``scores``.
        image_id: the COCO image id they belong to.
        category_map: optional class id -> COCO category id table (identity by default).

    Returns:
        One dict per instance: ``image_id``, ``category_id``, ``segmentation``
        (compressed RLE), ``bbox`` ``[x, y, w, h]``, ``area`` and ``score``.

    Raises:
        ValueError: the instances have no scores.

    Example:
        >>> json.dumps(coco_results(pred, 397133))  # doctest: +SKIP
    """
    if instances.scores is None:
        raise ValueError("instances have no scores; detection results need a confidence per instance")
    rles = instances.rles()
    areas = instances.areas()
    boxes = instances.boxes if instances.boxes is not None else np.zeros((len(instances), 4))
    out: list[dict[str, Any]] = []
    for index in range(len(instances)):
        class_id = int(instances.class_ids[index])
        x0, y0, x1, y1 = (float(v) for v in boxes[index])
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_map.get(class_id, class_id)) if category_map else class_id,
                "segmentation": rles[index],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": int(areas[index]),
                "score": float(instances.scores[index]),
            }
        )
    return out


register_format(
    FormatSpec(
        "coco",
        read_coco,
        write_coco,
        "COCO instance segmentation JSON (polygons or RLE) with an images folder",
        frozenset({"instances"}),
    )
)
