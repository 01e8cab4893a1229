"""YOLO segmentation datasets (the Ultralytics "YOLO-seg" layout), format name ``yolo-seg``.

Layout::

    root/
      data.yaml                  # path, train, val, test, names, nc
      pixelwise_taxonomy.json    # written by Pixelwise: the original taxonomy (optional)
      images/train/a.jpg         # or flat: images/a.jpg
      labels/train/a.txt         # or flat: labels/a.txt

One label line per instance: ``class x1 y1 x2 y2 ...`` with ``x`` divided by the image
width and ``y`` by its height, in the pixel-edge coordinates of :mod:`pixelwise.core.masks`
(pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``). An image without a label file has no
instances. The label file of an image is found as Ultralytics does: the last ``images``
folder of its path becomes ``labels`` and the suffix ``.txt``.

Reading:
    * ``train`` / ``val`` / ``test`` entries of ``data.yaml`` may be folders, ``.txt`` lists
      of image paths, or lists of either; paths are relative to ``path`` (itself relative
      to the YAML file's folder), or to the YAML file's folder when ``path`` is absent.
      Without a YAML file, ``images/<split>/`` sub-folders are the splits, or ``images/`` is
      read as one flat folder.
    * ``metadata["split"]`` is the split whose entry lists the image. When several entries
      list the same image (``val: images`` next to ``train: images``), a Pixelwise manifest
      decides; without one, the first of train, val, test wins.
    * Class index ``k`` is ``names[k]``. Taxonomy ids are ``0..K-1`` unless a taxonomy is
      given (option ``taxonomy=``) or ``pixelwise_taxonomy.json`` sits beside the YAML file;
      then names are mapped back to that taxonomy's ids, so non-contiguous ids and stuff
      classes (e.g. a semantic background) survive a round trip.
    * Bad lines become :class:`~pixelwise.data.dataset.DataIssue` records naming the file
      and the line, and are dropped (severity "error"); the rest of the file loads. Bad
      lines are: fewer than 3 points, an odd number of coordinates, a non-numeric or
      non-finite token, an unknown class index. Coordinates outside ``[0, 1]`` by more than
      ``1e-6`` are clipped (severity "warning").
    * Polygons are rasterised with pycocotools (:func:`~pixelwise.core.masks.polygons_to_mask`)
      after multiplying by the image size, with no rounding; masks are held as RLE.

Writing (lossy points):
    * YOLO has one polygon per line and no holes. Each instance is written as ONE ring:
      its outline (pixel edges, :func:`~pixelwise.core.masks.mask_to_polygons`) with every
      hole and every further part joined by zero-width bridges (go along a segment, trace the
      other ring, come back along the same segment). Holes run against the exterior's
      orientation, so both the even-odd rule (pycocotools) and the non-zero rule cut them.
      The writer re-rasterises each written line and checks the mask comes back pixel for
      pixel; if not, the instance is written as one line per part (the instance is split,
      reported as a warning), and if even that is not exact a warning says so.
    * Only thing classes are written, mapped to ``0..K-1`` in taxonomy order; instances of
      other classes are dropped with a warning. The full taxonomy goes to
      ``pixelwise_taxonomy.json``.
    * YOLO has no crowd flag, scores or instance ids: crowd regions are written as ordinary
      instances; scores and ids are lost. Empty masks are dropped.
    * Semantic-only samples have no instances to write (warning); unlabelled samples get
      an image and no label file.
    * Coordinates are written with at least 6 decimals (more for images wider or taller
      than 2000 px) so that de-normalised corners lie within 1e-3 px of their integers,
      which pycocotools rasterises exactly.
    * ``data.yaml`` has no ``path`` key: Ultralytics then uses the YAML file's folder, so
      the dataset can be moved. ``val`` points at the train images when there is no
      validation split (Ultralytics requires the key).

Example:
    >>> from pixelwise.data.formats import read_dataset, write_dataset
    >>> ds = read_dataset("datasets/coco8-seg", "yolo-seg", split="train")  # doctest: +SKIP
    >>> write_dataset(ds, "/tmp/yolo_copy", "yolo-seg")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from pixelwise.core.convert import complete_annotation
from pixelwise.core.errors import AnnotationError, DataError, FormatError, ShapeError, TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet
from pixelwise.core.masks import Polygon, mask_to_polygons, polygons_to_mask, rle_decode, rle_encode
from pixelwise.core.taxonomy import ClassInfo, Taxonomy, voc_palette
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset, read_manifest_metadata, write_manifest
from pixelwise.data.formats.common import copy_image as _copy_image
from pixelwise.data.formats.common import safe_stem as _safe_stem
from pixelwise.data.formats.common import unique_id as _unique_id
from pixelwise.data.formats.base import MANIFEST_NAME, FormatSpec, register_format
from pixelwise.data.image_io import IMAGE_EXTENSIONS, image_size, list_images, read_image, write_image

__all__ = [
    "TAXONOMY_FILE",
    "YOLO_SPLITS",
    "YoloLine",
    "bridge_polygons",
    "mask_to_yolo_rings",
    "parse_yolo_label_file",
    "read_data_yaml",
    "read_yolo_seg",
    "write_yolo_seg",
]

#: Split keys of ``data.yaml``, in the order that decides an image listed twice.
YOLO_SPLITS: tuple[str, ...] = ("train", "val", "test")

#: File beside ``data.yaml`` holding the original taxonomy (``Taxonomy.to_dict()``).
TAXONOMY_FILE = "pixelwise_taxonomy.json"

_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
_COORD_TOLERANCE = 1e-6
_PROGRESS_MIN = 50
from pixelwise.data.formats.common import UNSAFE_CHARS as _UNSAFE_CHARS  # noqa: E402
_RESERVED_KEYS = frozenset({"path", "names", "nc", "extra_splits", "download", "yaml_file", "channels"})


# --------------------------------------------------------------------------- label lines


@dataclass(frozen=True)
class YoloLine:
    """One parsed label line.

    Attributes:
        line_number: 1-based line number in its file.
        class_index: the YOLO class index (0-based).
        points: ``(K, 2) float64`` normalised ``(x, y)`` vertices, clipped to ``[0, 1]``.
    """

    line_number: int
    class_index: int
    points: np.ndarray


def _parse_line(text: str) -> tuple[int, np.ndarray, bool]:
    """``(class_index, (K, 2) points, clipped)`` of one line; AnnotationError (no path) if bad."""
    tokens = text.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise AnnotationError(None, f"non-numeric token {bad!r}") from None
    head = values[0]
    if not math.isfinite(head) or head != int(head) or head < 0:
        raise AnnotationError(None, f"class index {tokens[0]!r} is not a non-negative integer")
    coords = np.asarray(values[1:], dtype=np.float64)
    if not np.isfinite(coords).all():
        raise AnnotationError(None, "non-finite coordinate (nan or inf)")
    if coords.size % 2:
        raise AnnotationError(None, f"odd number of coordinates ({coords.size}); expected x y pairs")
    points = coords.reshape(-1, 2)
    distinct = len(points)
    if distinct >= 2 and np.array_equal(points[0], points[-1]):
        distinct -= 1  # a closing vertex repeating the first is not a point
    if distinct < 3:
        hint = " (5 values look like a detection box 'class cx cy w h'; YOLO-seg needs polygons)" if coords.size == 4 else ""
        raise AnnotationError(None, f"polygon with {distinct} points; at least 3 are needed{hint}")
    low, high = float(points.min()), float(points.max())
    clipped = low < -_COORD_TOLERANCE or high > 1.0 + _COORD_TOLERANCE
    return int(head), np.clip(points, 0.0, 1.0), clipped


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_yolo_label_file(
    path: str | Path, class_indices: Sequence[int] | set[int] | None = None, image_id: str | None = None
) -> tuple[list[YoloLine], list[DataIssue]]:
    """Parse a YOLO-seg label file, keeping the good lines and reporting the bad ones.

    Args:
        path: the ``.txt`` file.
        class_indices: valid class indices; None accepts any.
        image_id: sample id put on the issues.

    Returns:
        ``(lines, issues)``: the usable lines in file order, and one issue per bad line
        (reason starts with ``"line <n>: "``). Dropped lines have severity "error";
        clipped coordinates "warning".

    Raises:
        AnnotationError: the file cannot be read or is not UTF-8 text.

    Example:
        >>> lines, issues = parse_yolo_label_file("labels/train/a.txt", {0, 1})  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, f"cannot read label file ({exc.__class__.__name__}: {exc})",
                              "label files are UTF-8 text, one polygon per line") from exc
    valid = None if class_indices is None else set(class_indices)
    lines: list[YoloLine] = []
    issues: list[DataIssue] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            class_index, points, clipped = _parse_line(raw)
        except AnnotationError as exc:
            issues.append(DataIssue(path, f"line {number}: {exc.reason}; line dropped", "error", image_id))
            continue
        if valid is not None and class_index not in valid:
            issues.append(DataIssue(path, f"line {number}: unknown class index {class_index}; line dropped", "error",
                                    image_id, f"data.yaml names hold indices {sorted(valid)}"))
            continue
        if clipped:
            issues.append(DataIssue(path, f"line {number}: coordinates outside [0, 1] were clipped", "warning",
                                    image_id, "YOLO coordinates are divided by the image width and height"))
        lines.append(YoloLine(number, class_index, points))
    return lines, issues


def _load_instances(label_path: Path | None, class_map: Mapping[int, int], height: int, width: int) -> Annotation:
    """Annotation of one sample: instances rasterised from its label file (RLE masks)."""
    if label_path is None:
        return Annotation(instances=InstanceSet.empty(height, width))
    lines, _issues = parse_yolo_label_file(label_path, set(class_map))
    scale = np.array([width, height], dtype=np.float64)
    rles = [rle_encode(polygons_to_mask([line.points * scale], height, width)) for line in lines]
    class_ids = np.array([class_map[line.class_index] for line in lines], dtype=np.int64)
    return Annotation(instances=InstanceSet(height, width, class_ids, rles))


# --------------------------------------------------------------------------- rings


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0


def _oriented(ring: np.ndarray, positive: bool) -> np.ndarray:
    return ring if (_signed_area(ring) >= 0) == positive else ring[::-1].copy()


def _nearest_pair(candidates: np.ndarray, ring: np.ndarray) -> tuple[int, int]:
    """Indices ``(i, j)`` minimising ``|candidates[i] - ring[j]|`` (chunked to bound memory)."""
    best = (math.inf, 0, 0)
    step = max(1, 2_000_000 // max(1, len(candidates)))
    for start in range(0, len(ring), step):
        part = ring[start:start + step]
        dx = candidates[:, 0, None] - part[None, :, 0]
        dy = candidates[:, 1, None] - part[None, :, 1]
        dist = dx * dx + dy * dy
        flat = int(np.argmin(dist))
        i, j = divmod(flat, dist.shape[1])
        if dist[i, j] < best[0]:
            best = (float(dist[i, j]), i, start + j)
    return best[1], best[2]


def bridge_polygons(polygons: Sequence[Polygon]) -> np.ndarray:
    """Join the parts and holes of one instance into a single closed ring.

    Exteriors get a positive signed area, holes a negative one. Each hole is joined to the
    nearest vertex of its exterior, each further part to the nearest vertex of the parts
    before it, by a zero-width bridge walked there and back, so the bridge encloses no area
    under the even-odd or the non-zero fill rule.

    Args:
        polygons: the parts, e.g. from :func:`~pixelwise.core.masks.mask_to_polygons`.

    Returns:
        ``(K, 2) float64`` ``(x, y)`` vertices, not closed (last != first), no repeated
        consecutive vertex.

    Raises:
        ValueError: no polygon given.

    Example:
        >>> square = Polygon(np.array([[0, 0], [4, 0], [4, 4], [0, 4]]), (np.array([[1, 1], [1, 2], [2, 2], [2, 1]]),))
        >>> bridge_polygons([square]).shape
        (10, 2)
    """
    if not polygons:
        raise ValueError("bridge_polygons needs at least one polygon")
    rings: list[np.ndarray] = []
    attached: dict[tuple[int, int], list[tuple[int, int]]] = {}
    # Vertices of the exteriors placed so far, with their ring and vertex index.
    placed = np.zeros((0, 2), dtype=np.float64)
    owners = np.zeros(0, dtype=np.int64)
    vertex = np.zeros(0, dtype=np.int64)
    for polygon in polygons:
        exterior = _oriented(np.asarray(polygon.exterior, dtype=np.float64), positive=True)
        ext_index = len(rings)
        rings.append(exterior)
        if len(placed):
            i, j = _nearest_pair(placed, exterior)
            attached.setdefault((int(owners[i]), int(vertex[i])), []).append((ext_index, j))
        placed = np.concatenate([placed, exterior])
        owners = np.concatenate([owners, np.full(len(exterior), ext_index)])
        vertex = np.concatenate([vertex, np.arange(len(exterior))])
        for hole in polygon.holes:
            ring = _oriented(np.asarray(hole, dtype=np.float64), positive=False)
            i, j = _nearest_pair(exterior, ring)
            attached.setdefault((ext_index, i), []).append((len(rings), j))
            rings.append(ring)
    return _emit_ring(rings, attached)


def _emit_ring(rings: list[np.ndarray], attached: dict[tuple[int, int], list[tuple[int, int]]]) -> np.ndarray:
    """Walk ring 0, detouring into attached rings (depth-first, no recursion)."""
    out: list[np.ndarray] = []
    stack: list[tuple[Any, ...]] = [("ring", 0, 0, False)]
    while stack:
        item = stack.pop()
        if item[0] == "pt":
            out.append(item[1])
            continue
        _, index, start, closing = item
        ring = rings[index]
        todo: list[tuple[Any, ...]] = []
        for step in range(len(ring)):
            vertex = (start + step) % len(ring)
            todo.append(("pt", ring[vertex]))
            for child, child_start in attached.get((index, vertex), ()):
                todo.append(("ring", child, child_start, True))
                todo.append(("pt", ring[vertex]))
        if closing:
            todo.append(("pt", ring[start]))
        stack.extend(reversed(todo))
    points = np.asarray(out, dtype=np.float64)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    points = points[keep]
    if len(points) > 1 and np.array_equal(points[0], points[-1]):
        points = points[:-1]
    return points


def mask_to_yolo_rings(mask: np.ndarray, bridge: bool = True) -> list[np.ndarray]:
    """Outline a mask as YOLO rings in pixel-edge coordinates.

    Args:
        mask: ``(H, W)`` bool.
        bridge: True gives one ring for the whole mask (parts and holes bridged); False one
            ring per 8-connected part (its holes bridged in).

    Returns:
        ``(K, 2) float64`` rings of ``(x, y)`` pixel-edge coordinates; empty list for an
        empty mask.

    Example:
        >>> m = np.zeros((4, 4), bool); m[1:3, 1:3] = True
        >>> mask_to_yolo_rings(m)[0].tolist()
        [[3.0, 1.0], [3.0, 3.0], [1.0, 3.0], [1.0, 1.0]]
    """
    polygons = mask_to_polygons(mask)
    if not polygons:
        return []
    if bridge:
        return [bridge_polygons(polygons)]
    return [bridge_polygons([p]) for p in polygons]


def _decimals(height: int, width: int) -> int:
    """Decimals keeping de-normalised coordinates within 1e-3 px."""
    return max(6, math.ceil(math.log10(max(height, width, 1) * 500)))


def _format_ring(ring: np.ndarray, height: int, width: int, decimals: int) -> tuple[str, np.ndarray]:
    """Text ``x1 y1 x2 y2 ...`` of a pixel ring and the normalised values it stores."""
    normalised = ring / np.array([width, height], dtype=np.float64)
    texts = [f"{v:.{decimals}f}".rstrip("0").rstrip(".") for v in normalised.reshape(-1)]
    stored = np.array([float(t) for t in texts], dtype=np.float64).reshape(-1, 2)
    return " ".join(texts), stored


def _instance_lines(mask: np.ndarray, decimals: int, verify: bool) -> tuple[list[str], str | None]:
    """YOLO coordinate strings for one instance mask, and a note when the result is lossy."""
    height, width = mask.shape
    scale = np.array([width, height], dtype=np.float64)
    first_try: list[str] | None = None
    for bridge in (True, False):
        rings = mask_to_yolo_rings(mask, bridge=bridge)
        formatted = [_format_ring(r, height, width, decimals) for r in rings]
        texts = [t for t, _ in formatted]
        if not verify:
            return texts, None
        first_try = first_try or texts
        back = polygons_to_mask([stored * scale for _, stored in formatted], height, width)
        if np.array_equal(back, mask):
            note = None if len(texts) == 1 else f"instance split into {len(texts)} lines (one per part)"
            return texts, note
    return first_try or [], "written polygon does not rasterise back to the exact mask"


# --------------------------------------------------------------------------- data.yaml


def read_data_yaml(path: str | Path) -> dict[str, Any]:
    """Read and check a YOLO ``data.yaml``.

    Args:
        path: the YAML file.

    Returns:
        The mapping, with ``names`` normalised to ``{index: name}`` (``int`` keys) when present.

    Raises:
        FormatError: unreadable YAML, not a mapping, or ``names`` neither a list nor a dict
            of index -> name.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FormatError(path, f"cannot read YAML ({exc.__class__.__name__}: {exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FormatError(path, f"YAML holds a {type(data).__name__}, expected a mapping with train/val/names")
    names = data.get("names")
    if names is not None:
        data["names"] = _names_table(names, path)
    return data


def _names_table(names: Any, path: Path) -> dict[int, str]:
    hint = "names is a list ['cat', 'dog'] or a mapping {0: cat, 1: dog}"
    if isinstance(names, (list, tuple)):
        table = {i: str(n) for i, n in enumerate(names)}
    elif isinstance(names, dict):
        table = {}
        for key, name in names.items():
            try:
                table[int(key)] = str(name)
            except (TypeError, ValueError):
                raise FormatError(path, f"names key {key!r} is not a class index", hint) from None
    else:
        raise FormatError(path, f"names is a {type(names).__name__}", hint)
    if any(k < 0 for k in table):
        raise FormatError(path, "names has a negative class index", hint)
    if len(set(table.values())) != len(table):
        raise FormatError(path, "names has duplicate class names", "class names must be unique")
    return dict(sorted(table.items()))


def _find_yaml(root: Path) -> Path | None:
    for name in _YAML_NAMES:
        if (root / name).is_file():
            return root / name
    found = sorted(p for p in root.glob("*.y*ml") if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))
    return found[0] if len(found) == 1 else None


def _dataset_root(yaml_path: Path, data: Mapping[str, Any], issues: list[DataIssue]) -> Path:
    """``path`` of the YAML (absolute, or relative to the YAML's folder), else the YAML's folder."""
    base = yaml_path.parent
    value = data.get("path")
    if not value:
        return base
    candidate = Path(str(value)).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    if candidate.is_dir():
        return candidate
    issues.append(DataIssue(yaml_path, f"dataset path {value!r} not found; using the YAML file's folder", "warning",
                            None, "fix 'path' in data.yaml or remove it"))
    return base


# --------------------------------------------------------------------------- image lists


def _label_path(image: Path) -> Path:
    """Ultralytics rule: the last ``images`` folder becomes ``labels``, suffix ``.txt``."""
    parts = list(image.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _mirrored_labels(folder: Path) -> Path | None:
    """The ``labels`` folder mirroring an ``images`` folder (None without an ``images`` part)."""
    parts = list(folder.parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            return Path(*parts)
    return None


@dataclass
class _Source:
    """One split entry: its name, its images and the label folder mirroring it (if any)."""

    split: str | None
    images: list[Path]
    label_dirs: list[Path]


def _list_entry(root: Path, entry: str, issues: list[DataIssue]) -> tuple[list[Path], Path | None]:
    """Images of one split entry (a folder, read recursively, or a ``.txt`` list) and its label folder."""
    path = Path(entry).expanduser()
    if not path.is_absolute():
        path = root / path
    if path.is_dir():
        return list_images(path, recursive=True), _mirrored_labels(path)
    if path.is_file() and path.suffix.lower() == ".txt":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(DataIssue(path, f"cannot read image list ({exc.__class__.__name__}: {exc})", "error"))
            return [], None
        images = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            item = Path(line)
            if not item.is_absolute():
                item = (path.parent / item) if (path.parent / item).exists() else root / item
            images.append(item)
        return images, None
    issues.append(DataIssue(path, "split entry of data.yaml does not exist", "error", None,
                            "entries are image folders or .txt lists, relative to the dataset path"))
    return [], None


def _split_keys(data: Mapping[str, Any]) -> list[str]:
    """train, val, test, then the names listed under ``extra_splits`` (written by Pixelwise)."""
    extra = data.get("extra_splits") or []
    keys = list(YOLO_SPLITS)
    if isinstance(extra, (list, tuple)):
        keys += [str(k) for k in extra if str(k) not in keys]
    return keys


def _split_sources(root: Path, data: Mapping[str, Any] | None, issues: list[DataIssue]) -> list[_Source]:
    """One :class:`_Source` per split entry, in train, val, test order."""
    if data is not None and any(data.get(k) for k in _split_keys(data)):
        sources = []
        for key in _split_keys(data):
            value = data.get(key)
            if not value:
                continue
            entries = value if isinstance(value, (list, tuple)) else [value]
            source = _Source(key, [], [])
            for entry in entries:
                images, label_dir = _list_entry(root, str(entry), issues)
                source.images.extend(images)
                if label_dir is not None:
                    source.label_dirs.append(label_dir)
            sources.append(source)
        return sources
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise FormatError(image_dir, "folder missing", "a YOLO-seg root holds images/ (and labels/) or a data.yaml")
    subdirs = sorted(p for p in image_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs and not list_images(image_dir, recursive=False):
        return [_Source(d.name, list_images(d, recursive=True), [root / "labels" / d.name]) for d in subdirs]
    return [_Source(None, list_images(image_dir, recursive=True), [root / "labels"])]


def _orphan_labels(sources: list[_Source], used: set[Path], issues: list[DataIssue]) -> None:
    """Warn about label files (under the label folders of ``sources``) whose image is absent."""
    seen: set[Path] = set()
    for folder in sorted({d for s in sources for d in s.label_dirs}):
        if not folder.is_dir():
            continue
        for label in sorted(folder.rglob("*.txt")):
            if label in seen or label in used or label.name == "classes.txt" or label.name.startswith("."):
                continue
            seen.add(label)
            issues.append(DataIssue(label, "label file has no image", "warning", label.stem,
                                    "put the image in the matching images/ folder or delete the label"))


# --------------------------------------------------------------------------- taxonomy


def _read_taxonomy_file(path: Path, issues: list[DataIssue]) -> Taxonomy | None:
    if not path.is_file():
        return None
    try:
        return Taxonomy.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TaxonomyError) as exc:
        issues.append(DataIssue(path, f"taxonomy file ignored: {exc}", "warning"))
        return None


def _map_names(names: Mapping[int, str], taxonomy: Taxonomy, where: Path) -> dict[int, int]:
    missing = [n for n in names.values() if n not in taxonomy.names]
    if missing:
        raise FormatError(where, f"class names {missing} are not in the given taxonomy",
                          f"the taxonomy names are {taxonomy.names}")
    return {index: taxonomy.id_of(name) for index, name in names.items()}


def _indices_in_labels(sources: list[_Source]) -> list[int]:
    """Class indices used in the label files (for a dataset without names)."""
    found: set[int] = set()
    for source in sources:
        for image in source.images:
            label = _label_path(image)
            if label.is_file():
                try:
                    lines, _ = parse_yolo_label_file(label)
                except AnnotationError:
                    continue
                found.update(line.class_index for line in lines)
    return sorted(found)


def _resolve_taxonomy(
    names: Mapping[int, str] | None,
    given: Taxonomy | None,
    stored: Taxonomy | None,
    where: Path,
    sources: list[_Source],
    issues: list[DataIssue],
) -> tuple[Taxonomy, dict[int, int]]:
    """The dataset taxonomy and the YOLO index -> class id table."""
    if names is None:
        if given is not None or stored is not None:
            base = given or stored
            things = [c for c in base if c.is_thing]  # type: ignore[union-attr]
            names = {i: c.name for i, c in enumerate(things)}
        else:
            names = {i: f"class_{i}" for i in _indices_in_labels(sources)}
            issues.append(DataIssue(where, "no class names (data.yaml names); classes named class_<index>", "warning"))
    if given is not None:
        return given, _map_names(names, given, where)
    if stored is not None:
        if set(names.values()) <= set(stored.names):
            return stored, _map_names(names, stored, where)
        issues.append(DataIssue(where, f"{TAXONOMY_FILE} does not hold every class of data.yaml; ignored", "warning"))
    palette = voc_palette(max(256, max(names, default=0) + 2))
    taxonomy = Taxonomy(tuple(ClassInfo(i, name, tuple(int(c) for c in palette[i + 1])) for i, name in names.items()))  # type: ignore[arg-type]
    return taxonomy, {i: i for i in names}


# --------------------------------------------------------------------------- reading


def read_yolo_seg(
    path: str | Path,
    *,
    split: str | None = None,
    taxonomy: Taxonomy | None = None,
    validate: bool = True,
    progress: bool = True,
) -> SegmentationDataset:
    """Read a YOLO-seg dataset (see the module notes for the rules).

    Args:
        path: the dataset root (holding ``data.yaml`` or ``images/``) or the YAML file.
        split: read only this split (``"train"``, ``"val"``, ``"test"``, or an
            ``images/<name>`` sub-folder without YAML); None reads every split.
        taxonomy: map ``names`` to this taxonomy's ids by name (for round trips through
            other formats); every name must be in it.
        validate: parse every label file now to report bad lines; False defers parsing to
            annotation loading (faster to open, issues not reported).
        progress: show a progress bar (only with 50 or more images).

    Returns:
        The dataset; samples are instance-only (``Annotation.instances``, RLE masks).

    Raises:
        FormatError: no images folder, unreadable YAML, unknown split, or names missing
            from ``taxonomy``.

    Example:
        >>> ds = read_yolo_seg("datasets/coco8-seg", split="val")  # doctest: +SKIP
        >>> ds[0].metadata["split"]  # doctest: +SKIP
        'val'
    """
    given_path = Path(path)
    issues: list[DataIssue] = []
    if given_path.is_file():
        yaml_path: Path | None = given_path
        base = given_path.parent
    elif given_path.is_dir():
        base = given_path
        yaml_path = _find_yaml(base)
    else:
        raise FormatError(given_path, "path does not exist", "give the dataset root or its data.yaml")
    data = read_data_yaml(yaml_path) if yaml_path is not None else None
    root = _dataset_root(yaml_path, data, issues) if yaml_path is not None and data is not None else base
    sources = _split_sources(root, data, issues)
    if split is not None:
        names_found = [source.split for source in sources]
        if split not in names_found:
            raise FormatError(yaml_path or root, f"split {split!r} not found", f"available splits: {names_found}")
    if data is not None and data.get("nc") is not None and data.get("names") is not None:
        if str(data["nc"]) != str(len(data["names"])):
            issues.append(DataIssue(yaml_path, f"nc is {data['nc']} but names lists {len(data['names'])} classes; names used",
                                    "warning"))
    stored = _read_taxonomy_file(base / TAXONOMY_FILE, issues)
    dataset_taxonomy, class_map = _resolve_taxonomy(
        data.get("names") if data is not None else None, taxonomy, stored, yaml_path or root, sources, issues
    )
    try:
        metadata = read_manifest_metadata(base / MANIFEST_NAME)
    except DataError as exc:
        issues.append(DataIssue.from_error(exc, severity="warning"))
        metadata = {}

    # image -> splits listing it, in order of first appearance
    listed: dict[Path, list[str | None]] = {}
    for source in sources:
        for image in source.images:
            splits = listed.setdefault(image, [])
            if source.split not in splits:
                splits.append(source.split)
    used_labels: set[Path] = set()
    used_ids: set[str] = set()
    samples: list[Sample] = []
    items = [(img, s) for img, s in listed.items() if split is None or split in s]
    show = progress and len(items) >= _PROGRESS_MIN
    for image, splits in tqdm(items, desc="reading yolo-seg", unit="image", disable=not show):
        image_id = _unique_id(image.stem, used_ids)
        label = _label_path(image)
        label_path = label if label.is_file() else None
        if label_path is not None:
            used_labels.add(label_path)
        try:
            height, width = image_size(image)
            if validate and label_path is not None:
                _lines, line_issues = parse_yolo_label_file(label_path, set(class_map), image_id)
                issues.extend(line_issues)
        except DataError as exc:
            issues.append(DataIssue.from_error(exc, image_id))
            used_ids.discard(image_id)
            continue
        sample_meta = dict(metadata.get(image_id, {}))
        split_name = _split_of(splits, image_id in metadata, sample_meta)
        if split_name is not None:
            sample_meta["split"] = split_name
        samples.append(Sample(image_id, image, height, width, sample_meta,
                              partial(_load_instances, label_path, class_map, height, width)))
    _orphan_labels([s for s in sources if split is None or s.split == split], used_labels, issues)
    return SegmentationDataset(dataset_taxonomy, samples, issues, root.name or "yolo-seg", root, "yolo-seg")


def _split_of(splits: list[str | None], in_manifest: bool, manifest_meta: Mapping[str, Any]) -> str | None:
    """Split name of an image listed under ``splits`` (see the module notes)."""
    named = [s for s in splits if s is not None]
    if len(named) == 1 and len(splits) == 1:
        return named[0]
    if not named:
        return None
    if in_manifest:
        value = manifest_meta.get("split")
        return str(value) if value is not None else None
    return named[0]




# --------------------------------------------------------------------------- writing






def _instances_of(annotation: Annotation, taxonomy: Taxonomy) -> InstanceSet | None:
    if annotation.instances is not None:
        return annotation.instances
    if annotation.panoptic is not None:
        return complete_annotation(annotation, taxonomy).instances
    return None


def _yaml_text(splits: Sequence[str], flat: bool, names: Sequence[str]) -> str:
    """``data.yaml`` text; ``train`` and ``val`` always present (Ultralytics needs both)."""
    lines = ["# YOLO-seg dataset written by Pixelwise; no 'path' key: paths are relative to this file.", ""]
    if flat:
        lines += ["train: images", "val: images"]
    else:
        fallback = "train" if "train" in splits else splits[0]
        for key in YOLO_SPLITS:
            if key in splits or key in ("train", "val"):
                lines.append(f"{key}: images/{key if key in splits else fallback}")
        extra = [s for s in splits if s not in YOLO_SPLITS]
        for key in extra:
            lines.append(f"{key}: images/{key}")
        if extra:
            lines.append(f"extra_splits: {json.dumps(extra)}  # read by Pixelwise, ignored by Ultralytics")
    lines += ["", f"nc: {len(names)}", "names:" if names else "names: {}"]
    lines += [f"  {i}: {json.dumps(name)}" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"


def write_yolo_seg(
    dataset: SegmentationDataset,
    out_dir: str | Path,
    *,
    default_split: str = "train",
    verify: bool = True,
    progress: bool = True,
) -> Path:
    """Write a dataset as YOLO-seg (see the module notes for what is lossy).

    Samples carrying ``metadata["split"]`` go to ``images/<split>/`` and
    ``labels/<split>/``, the others to ``default_split``; when no sample has a split the
    flat layout ``images/`` + ``labels/`` is written. Samples whose annotation or image
    cannot be read are skipped and reported in ``dataset.issues`` and the manifest.

    Args:
        dataset: what to write; instances come from the instance view or the panoptic map.
        out_dir: the dataset root to create.
        default_split: split of samples without ``metadata["split"]`` (split layout only).
        verify: re-rasterise every written line and fall back to one line per part when
            the single bridged ring is not pixel-exact.
        progress: show a progress bar (only with 50 or more samples).

    Returns:
        ``out_dir``.

    Example:
        >>> write_yolo_seg(read_yolo_seg("datasets/coco8-seg"), "/tmp/yolo_out")  # doctest: +SKIP
        PosixPath('/tmp/yolo_out')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = dataset.taxonomy
    things = [c for c in taxonomy if c.is_thing]
    index_of = {c.id: i for i, c in enumerate(things)}
    flat = not any("split" in s.metadata for s in dataset.samples)
    issues: list[DataIssue] = []
    written: list[Sample] = []
    splits_used: list[str] = []
    used: set[str] = set()
    show = progress and len(dataset.samples) >= _PROGRESS_MIN
    for sample in tqdm(dataset.samples, desc="writing yolo-seg", unit="image", disable=not show):
        split_name = None if flat else _safe_split(sample.metadata.get("split", default_split))
        image_dir = out / "images" if split_name is None else out / "images" / split_name
        label_dir = out / "labels" if split_name is None else out / "labels" / split_name
        stem = _safe_stem(sample.image_id, used)
        try:
            annotation = sample.annotation()
            instances = None if annotation.is_empty else _instances_of(annotation, taxonomy)
            if not annotation.is_empty and instances is None:
                issues.append(DataIssue(sample.image_path, "sample has no instance view (semantic only); written without labels",
                                        "warning", sample.image_id))
            lines: list[str] = []
            if instances is not None:
                lines = _lines_of(instances, index_of, taxonomy, sample, issues, verify)
            image_dir.mkdir(parents=True, exist_ok=True)
            image_out = _copy_image(Path(sample.image_path), image_dir / stem)
            if instances is not None:
                label_dir.mkdir(parents=True, exist_ok=True)
                (label_dir / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        except (DataError, ShapeError, OSError) as exc:
            error = exc if isinstance(exc, DataError) else DataError(sample.image_path, f"cannot write sample: {exc}")
            issues.append(DataIssue.from_error(error, sample.image_id))
            used.discard(stem)
            continue
        if split_name is not None and split_name not in splits_used:
            splits_used.append(split_name)
        written.append(Sample(stem, image_out, sample.height, sample.width, dict(sample.metadata)))
    if flat:
        (out / "images").mkdir(exist_ok=True)
    elif not splits_used:
        splits_used = [_safe_split(default_split)]
    (out / "data.yaml").write_text(_yaml_text(splits_used, flat, [c.name for c in things]), encoding="utf-8")
    (out / TAXONOMY_FILE).write_text(json.dumps(taxonomy.to_dict(), indent=2), encoding="utf-8")
    dataset.issues.extend(issues)
    write_manifest(SegmentationDataset(taxonomy, written, issues, dataset.name, out, "yolo-seg"), out / MANIFEST_NAME)
    return out


def _safe_split(name: Any) -> str:
    """A file-safe split name that is not another ``data.yaml`` key."""
    safe = _UNSAFE_CHARS.sub("_", str(name)).strip("._") or "train"
    return f"split_{safe}" if safe in _RESERVED_KEYS else safe


def _lines_of(
    instances: InstanceSet,
    index_of: Mapping[int, int],
    taxonomy: Taxonomy,
    sample: Sample,
    issues: list[DataIssue],
    verify: bool,
) -> list[str]:
    """Label lines of one sample's instances; lossy steps are reported in ``issues``."""
    height, width = instances.shape
    decimals = _decimals(height, width)
    lines: list[str] = []
    for number, class_id in enumerate(instances.class_ids.tolist()):
        if class_id not in index_of:
            what = "a stuff class" if class_id in taxonomy else "not in the taxonomy"
            issues.append(DataIssue(sample.image_path, f"instance {number}: class {class_id} is {what}; not written",
                                    "warning", sample.image_id, "YOLO-seg holds thing classes only"))
            continue
        mask = rle_decode(instances.masks[number]) if isinstance(instances.masks, list) else instances.masks[number]
        if not mask.any():
            issues.append(DataIssue(sample.image_path, f"instance {number}: empty mask; not written", "warning",
                                    sample.image_id))
            continue
        texts, note = _instance_lines(mask, decimals, verify)
        if note is not None:
            issues.append(DataIssue(sample.image_path, f"instance {number}: {note}", "warning", sample.image_id))
        lines.extend(f"{index_of[class_id]} {text}" for text in texts)
    return lines


register_format(
    FormatSpec(
        "yolo-seg",
        read_yolo_seg,
        write_yolo_seg,
        "Ultralytics YOLO segmentation: data.yaml + images/<split>/ + labels/<split>/*.txt polygons",
        frozenset({"instances"}),
    )
)
