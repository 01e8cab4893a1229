"""COCO panoptic format (``coco-panoptic``): one RGB-encoded PNG per image plus a JSON.

Layout read (:func:`read_coco_panoptic`)::

    <root>/panoptic.json      (or <root>/annotations/panoptic*.json, or the JSON path itself)
    <root>/panoptic/<name>.png   (or a folder named like the JSON: annotations/panoptic_val2017/)
    <root>/images/<file_name>    (or next to the JSON, or <root>/<split>/)

Layout written (:func:`write_coco_panoptic`)::

    <out_dir>/panoptic.json  <out_dir>/panoptic/<image_id>.png  <out_dir>/images/...
    <out_dir>/pixelwise_manifest.json

A PNG pixel ``(R, G, B)`` holds segment id ``R + 256 * G + 256**2 * B``; 0 is void.
The JSON's ``annotations`` hold one record per image, ``{"image_id", "file_name",
"segments_info": [{"id", "category_id", "area", "bbox", "iscrowd"}]}``; ``categories``
carry ``isthing``, which becomes ``SegmentInfo.is_thing`` and ``ClassInfo.is_thing``.
Image records and metadata follow :mod:`pixelwise.data.formats.coco`.

Lossy on write: segments of zero area are not listed (COCO lists only present segments);
a segment's ``is_thing`` is written as its category's ``isthing``; a sample without any
label view is written as an all-void PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.convert import complete_annotation
from pixelwise.core.errors import AnnotationError, DataError, ImageReadError, ShapeError
from pixelwise.core.labels import Annotation, PanopticMap, SegmentInfo
from pixelwise.core.masks import mask_to_box
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import AnnotationLoader, DataIssue, Sample, SegmentationDataset, write_manifest
from pixelwise.data.formats.base import MANIFEST_NAME, FormatSpec, register_format
from pixelwise.data.formats.coco import (
    COCO_ID_KEY,
    _categories_json,
    _dump_json,
    _export_image,
    _IdAllocator,
    _image_dirs,
    _image_record,
    _ImageRecord,
    _is_int,
    _locate_json,
    _merge_manifest,
    _parse_images,
    _progress,
    _require_list,
    _safe_relpath,
    _written_dataset,
    load_coco_json,
    taxonomy_from_coco_categories,
)
from pixelwise.data.image_io import image_size, read_label_image, write_image

__all__ = ["decode_panoptic_png", "encode_panoptic_png", "read_coco_panoptic", "write_coco_panoptic"]

_MAX_SEGMENT_ID = 256**3 - 1
_WHAT = "COCO panoptic JSON"


def encode_panoptic_png(segment_ids: np.ndarray) -> np.ndarray:
    """RGB encoding of a segment-id map: ``R + 256 * G + 256**2 * B = id``.

    Args:
        segment_ids: ``(H, W)`` integer ids in ``0 .. 256**3 - 1``.

    Returns:
        ``(H, W, 3) uint8`` RGB.

    Raises:
        ShapeError: wrong shape, or ids outside the encodable range.

    Example:
        >>> import numpy as np
        >>> encode_panoptic_png(np.array([[0, 300]]))[0, 1].tolist()
        [44, 1, 0]
    """
    ids = np.asarray(segment_ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ShapeError(f"segment ids must be an (H, W) integer array, got shape {ids.shape} dtype {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > _MAX_SEGMENT_ID):
        raise ShapeError(f"segment ids must lie in 0..{_MAX_SEGMENT_ID} to fit an RGB PNG, got {ids.min()}..{ids.max()}")
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


def decode_panoptic_png(rgb: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_panoptic_png`: ``(H, W, 3) uint8`` -> ``(H, W) int32`` ids.

    A single-channel ``(H, W)`` array is taken as the ids themselves (R only).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.int32)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ShapeError(f"panoptic PNG must be (H, W, 3) RGB, got shape {rgb.shape}")
    rgb = rgb[:, :, :3].astype(np.int32)
    return rgb[:, :, 0] + 256 * rgb[:, :, 1] + 65536 * rgb[:, :, 2]


# =========================================================================== reader


@dataclass
class _PanopticRecord:
    png_path: Path
    segments: tuple[SegmentInfo, ...]


def _png_dirs(json_path: Path, root: Path, png_dir: str | Path | None) -> list[Path]:
    if png_dir is not None:
        return [Path(png_dir)]
    dirs = [root / "panoptic", json_path.with_suffix(""), json_path.parent / "panoptic"]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    existing = [d for d in unique if d.is_dir()]
    return existing or unique[:1]


def _parse_segments(record: dict[str, Any], taxonomy: Taxonomy) -> tuple[SegmentInfo, ...]:
    """Validate ``segments_info``; raises AnnotationError(None, reason)."""
    infos = record.get("segments_info")
    if not isinstance(infos, list):
        raise AnnotationError(None, "'segments_info' must be a list")
    segments: list[SegmentInfo] = []
    seen: set[int] = set()
    for k, info in enumerate(infos):
        if not isinstance(info, dict) or not _is_int(info.get("id")):
            raise AnnotationError(None, f"segments_info[{k}] must be an object with an integer 'id'")
        seg_id = int(info["id"])
        if not 0 < seg_id <= _MAX_SEGMENT_ID:
            raise AnnotationError(None, f"segment id {seg_id} is outside 1..{_MAX_SEGMENT_ID}")
        if seg_id in seen:
            raise AnnotationError(None, f"segment id {seg_id} is listed twice in segments_info")
        seen.add(seg_id)
        category_id = info.get("category_id")
        if category_id not in taxonomy:
            raise AnnotationError(None, f"segment {seg_id} has unknown category id {category_id!r}; categories are {taxonomy.ids[:20]}")
        is_thing = taxonomy.get(int(category_id)).is_thing
        segments.append(SegmentInfo(seg_id, int(category_id), is_thing, bool(info.get("iscrowd", 0))))
    return tuple(segments)


def _load_segment_ids(png_path: Path, segments: tuple[SegmentInfo, ...], shape: tuple[int, int]) -> np.ndarray:
    """Decode a panoptic PNG and check it against its segments.

    Raises:
        ImageReadError: unreadable PNG.
        AnnotationError: wrong size, or ids in the PNG absent from ``segments_info``.
    """
    ids = decode_panoptic_png(read_label_image(png_path))
    if ids.shape != shape:
        raise AnnotationError(
            png_path,
            f"panoptic PNG is {ids.shape[1]}x{ids.shape[0]} (WxH) but the image is {shape[1]}x{shape[0]}",
            "re-export the PNG at the image's size",
        )
    present = set(np.unique(ids).tolist()) - {0}
    missing = sorted(present - {s.id for s in segments})
    if missing:
        raise AnnotationError(
            png_path,
            f"segment ids {missing[:10]} appear in the PNG but not in its segments_info",
            "every non-zero id (R + 256*G + 256^2*B) needs a segments_info entry",
        )
    return ids


def _make_loader(png_path: Path, segments: tuple[SegmentInfo, ...], shape: tuple[int, int]) -> AnnotationLoader:
    def load() -> Annotation:
        ids = _load_segment_ids(png_path, segments, shape)
        return Annotation(panoptic=PanopticMap(ids, segments))

    return load


def read_coco_panoptic(
    path: str | Path,
    images_dir: str | Path | None = None,
    png_dir: str | Path | None = None,
    *,
    check_images: bool = True,
    check_segments: bool = True,
    progress: bool = True,
) -> SegmentationDataset:
    """Read a COCO panoptic dataset.

    Per-image problems are recorded in ``dataset.issues`` and skip the sample: missing or
    unreadable image or PNG, PNG size different from the image, segment ids in the PNG
    absent from ``segments_info`` (checked when ``check_segments``), malformed or
    duplicate ``segments_info``, unknown category; an image without an annotation record
    is skipped too.

    Args:
        path: the JSON file, or a folder holding ``panoptic.json`` or
            ``annotations/panoptic*.json``.
        images_dir: folder the image ``file_name`` is relative to (default: see
            :func:`~pixelwise.data.formats.coco.read_coco`).
        png_dir: folder of the PNGs. Default: ``<root>/panoptic``, or the folder named
            like the JSON (``annotations/panoptic_val2017/``).
        check_images: read image headers (existence and size).
        check_segments: decode every PNG now to check its ids against ``segments_info``
            (otherwise a bad PNG raises :class:`AnnotationError` when its sample loads).
        progress: show progress bars (only with 50 or more images).

    Returns:
        A dataset whose samples load ``Annotation(panoptic=PanopticMap)``; the taxonomy's
        ``is_thing`` comes from the categories' ``isthing``.

    Raises:
        FormatError: no JSON, invalid JSON, missing ``images`` / ``annotations`` /
            ``categories`` list, malformed categories.

    Example:
        >>> ds = read_coco_panoptic("coco/annotations/panoptic_val2017.json", images_dir="coco/val2017")  # doctest: +SKIP
    """
    json_path, root = _locate_json(Path(path), "panoptic.json", "panoptic*.json", _WHAT)
    data = load_coco_json(json_path)
    issues: list[DataIssue] = []
    images = _require_list(data, "images", json_path, _WHAT)
    annotations = _require_list(data, "annotations", json_path, _WHAT)
    categories = _require_list(data, "categories", json_path, _WHAT)
    taxonomy = taxonomy_from_coco_categories(categories, json_path, issues)
    records, seen = _parse_images(images, json_path, _image_dirs(json_path, root, images_dir), issues, check_images, progress)
    _merge_manifest(records.values(), [root, json_path.parent], issues)
    png_dirs = _png_dirs(json_path, root, png_dir)

    panoptic: dict[Any, _PanopticRecord] = {}
    rejected: set[Any] = set()  # images whose annotation record was reported as bad
    for index, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            issues.append(DataIssue(json_path, f"annotation record {index} is not an object", "error"))
            continue
        image_id = ann.get("image_id")
        if image_id not in seen:
            issues.append(DataIssue(json_path, f"panoptic annotation {index} refers to unknown image id {image_id!r}", "error"))
            continue
        image = records.get(image_id)
        if image is None:  # the image was skipped and reported already
            continue
        if image_id in panoptic:
            issues.append(DataIssue(json_path, f"second panoptic annotation for image {image_id}; skipped", "error", image.sample_id))
            continue
        file_name = ann.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            issues.append(DataIssue(json_path, f"panoptic annotation of image {image_id} has no PNG 'file_name'", "error", image.sample_id))
            rejected.add(image_id)
            continue
        try:
            segments = _parse_segments(ann, taxonomy)
        except (AnnotationError, ShapeError) as exc:
            reason = exc.reason if isinstance(exc, AnnotationError) else str(exc)
            issues.append(DataIssue(json_path, f"image {image_id}: {reason}; sample skipped", "error", image.sample_id))
            rejected.add(image_id)
            continue
        candidates = [d / file_name for d in png_dirs]
        png_path = next((p for p in candidates if p.is_file()), candidates[0])
        panoptic[image_id] = _PanopticRecord(png_path, segments)

    samples: list[Sample] = []
    kept: list[tuple[_ImageRecord, _PanopticRecord]] = []
    for key, image in records.items():
        record = panoptic.get(key)
        if record is None:
            if key in rejected:
                continue
            issues.append(DataIssue(json_path, f"image {key} ({image.file_name}) has no panoptic annotation; skipped", "error",
                                    image.sample_id))
            continue
        kept.append((image, record))
    for image, record in _progress(kept, progress, "checking panoptic PNGs"):
        shape = (image.height, image.width)
        try:
            if not record.png_path.is_file():
                where = ", ".join(str(d) for d in png_dirs)
                raise AnnotationError(record.png_path, f"panoptic PNG not found in {where}", "pass png_dir= pointing to the PNG folder")
            if check_segments:
                _load_segment_ids(record.png_path, record.segments, shape)
            else:
                png_shape = image_size(record.png_path)
                if png_shape != shape:
                    raise AnnotationError(
                        record.png_path,
                        f"panoptic PNG is {png_shape[1]}x{png_shape[0]} (WxH) but the image is {shape[1]}x{shape[0]}",
                        "re-export the PNG at the image's size",
                    )
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, image.sample_id))
            continue
        samples.append(
            Sample(image.sample_id, image.image_path, image.height, image.width, image.metadata,
                   _make_loader(record.png_path, record.segments, shape))
        )
    return SegmentationDataset(taxonomy, samples, issues, name=json_path.stem, root=root, format="coco-panoptic")


# =========================================================================== writer


def _panoptic_for_export(sample: Sample, annotation: Annotation, taxonomy: Taxonomy) -> PanopticMap:
    if annotation.panoptic is not None:
        return annotation.panoptic
    if annotation.is_empty:
        return PanopticMap(np.zeros((sample.height, sample.width), dtype=np.int32), ())
    completed = complete_annotation(annotation, taxonomy).panoptic
    if completed is None:  # pragma: no cover - complete_annotation always builds one from a view
        return PanopticMap(np.zeros((sample.height, sample.width), dtype=np.int32), ())
    return completed


def _segments_info(panoptic: PanopticMap) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Segment ids to write (renumbered only if they do not fit RGB) and their JSON records."""
    ids = panoptic.segment_ids
    areas = panoptic.areas()
    present = [s for s in panoptic.segments if areas[s.id] > 0]
    if any(s.id > _MAX_SEGMENT_ID for s in present):
        remapped = np.zeros_like(ids)
        mapping = {s.id: i + 1 for i, s in enumerate(present)}
        for old, new in mapping.items():
            remapped[ids == old] = new
        ids = remapped
    else:
        mapping = {s.id: s.id for s in present}
    infos: list[dict[str, Any]] = []
    for segment in present:
        new_id = mapping[segment.id]
        x0, y0, x1, y1 = (int(v) for v in mask_to_box(ids == new_id))
        infos.append(
            {
                "id": new_id,
                "category_id": segment.category_id,
                "area": int(areas[segment.id]),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": int(segment.iscrowd),
            }
        )
    return ids, infos


def write_coco_panoptic(
    dataset: SegmentationDataset,
    out_dir: str | Path,
    images_subdir: str = "images",
    png_subdir: str = "panoptic",
    json_name: str = "panoptic.json",
    *,
    progress: bool = True,
) -> Path:
    """Write a dataset as COCO panoptic PNGs + JSON, with images and the manifest.

    The panoptic map of a sample is its own, or else built by
    :func:`~pixelwise.core.convert.complete_annotation` with the dataset taxonomy (things
    from instances, stuff from the semantic map; crowd instances are left out). Segment
    ids are kept (renumbered 1..N only if one exceeds ``256**3 - 1``). Samples whose
    annotation fails to load, or whose segments use a class missing from the taxonomy,
    are skipped and reported in ``dataset.issues``.

    Args:
        dataset: what to write.
        out_dir: output folder (created).
        images_subdir: folder under ``out_dir`` for image copies.
        png_subdir: folder under ``out_dir`` for the PNGs (named ``<image_id>.png``).
        json_name: JSON path under ``out_dir``.
        progress: show a progress bar (only with 50 or more samples).

    Returns:
        ``out_dir``.

    Example:
        >>> write_coco_panoptic(dataset, "out/panoptic")  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images_root = out_dir / images_subdir if images_subdir else out_dir
    png_root = out_dir / png_subdir if png_subdir else out_dir
    taxonomy = dataset.taxonomy
    image_ids = _IdAllocator()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    written: list[Sample] = []
    for sample in _progress(dataset.samples, progress, "writing COCO panoptic"):
        try:
            annotation = sample.annotation()
            panoptic = _panoptic_for_export(sample, annotation, taxonomy)
        except DataError as exc:
            dataset.issues.append(DataIssue.from_error(exc, sample.image_id))
            continue
        except (ShapeError, ValueError) as exc:
            dataset.issues.append(DataIssue(Path(sample.image_path), f"annotation cannot be loaded: {exc}", "error", sample.image_id))
            continue
        unknown = sorted({s.category_id for s in panoptic.segments} - set(taxonomy.ids))
        if unknown:
            dataset.issues.append(
                DataIssue(Path(sample.image_path), f"segments use class ids {unknown} absent from the taxonomy; sample skipped",
                          "error", sample.image_id, "add those classes to the taxonomy")
            )
            continue
        rel = _safe_relpath(sample.image_id)
        try:
            file_name = _export_image(sample, images_root, rel)
        except (DataError, OSError) as exc:
            error = exc if isinstance(exc, DataError) else ImageReadError(sample.image_path, f"cannot copy image: {exc}")
            dataset.issues.append(DataIssue.from_error(error, sample.image_id))
            continue
        ids, infos = _segments_info(panoptic)
        png_name = rel + ".png"
        png_path = png_root / png_name
        png_path.parent.mkdir(parents=True, exist_ok=True)
        write_image(png_path, encode_panoptic_png(ids))
        coco_id = image_ids.take(sample.metadata.get(COCO_ID_KEY))
        images.append(_image_record(sample, coco_id, file_name))
        annotations.append({"image_id": coco_id, "file_name": png_name, "segments_info": infos})
        written.append(Sample(sample.image_id, images_root / file_name, sample.height, sample.width, dict(sample.metadata)))
    payload = {
        "info": {"description": dataset.name, "contributor": "pixelwise"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": _categories_json(taxonomy),
    }
    _dump_json(payload, out_dir / json_name)
    write_manifest(_written_dataset(dataset, written, "coco-panoptic"), out_dir / MANIFEST_NAME)
    return out_dir


register_format(
    FormatSpec(
        "coco-panoptic",
        read_coco_panoptic,
        write_coco_panoptic,
        "COCO panoptic: RGB-encoded segment PNGs plus a segments_info JSON",
        frozenset({"panoptic"}),
    )
)
