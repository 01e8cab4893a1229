"""Reproducible train / val / test splits, stratified by the classes each image contains.

Stratification (a simple, deterministic take on iterative stratification, Sechidis et
al. 2011): images are shuffled with the seed, then taken rarest class first (an image's
key is the image count of the rarest class it contains), and each goes to the split that
is furthest below its target for that class; ties go to the split furthest below its
overall target. A split that has not yet received the class is served first when the
class has at least one image per split, so a class with >= (number of splits) images
appears in every split with a positive fraction. Images without labels fill the splits
furthest below their overall target. Finally an empty split (positive fraction) takes one
image from the fullest split, so every split is non-empty when there are enough images.

Split files are plain text, one image id per line, named ``<split>.txt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixelwise.core.errors import DataError
from pixelwise.core.labels import Annotation
from pixelwise.data.dataset import SegmentationDataset

__all__ = ["normalize_fractions", "read_splits", "split_dataset", "split_subsets", "write_splits"]

_PROGRESS_MIN_SAMPLES = 50
_DEFAULT_NAMES = {1: ("train",), 2: ("train", "val"), 3: ("train", "val", "test")}


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise ValueError(f"split name {name!r} cannot be used as a file name")


def normalize_fractions(fractions: Sequence[float] | Mapping[str, float]) -> dict[str, float]:
    """``name -> fraction`` summing to 1.

    A sequence of 1 to 3 values is named ``train``, ``val``, ``test``; longer ones
    ``split0``, ``split1``... Values are rescaled to sum to 1, so ``(8, 1, 1)`` works.

    Raises:
        ValueError: no splits, a negative or non-finite value, or all zeros.
    """
    if isinstance(fractions, Mapping):
        named = {str(k): float(v) for k, v in fractions.items()}
    else:
        values = [float(v) for v in fractions]
        names = _DEFAULT_NAMES.get(len(values), tuple(f"split{i}" for i in range(len(values))))
        named = dict(zip(names, values))
    if not named:
        raise ValueError("give at least one split fraction")
    bad = {k: v for k, v in named.items() if not np.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"split fractions must be finite and >= 0, got {bad}")
    total = sum(named.values())
    if total <= 0:
        raise ValueError(f"split fractions sum to {total}; at least one must be positive")
    for name in named:
        _check_name(name)
    return {k: v / total for k, v in named.items()}


def _classes_of(annotation: Annotation) -> set[int]:
    present: set[int] = set()
    if annotation.semantic is not None:
        present |= set(annotation.semantic.class_ids())
    if annotation.instances is not None and len(annotation.instances):
        present |= {int(c) for c in annotation.instances.class_ids}
    if annotation.panoptic is not None:
        areas = annotation.panoptic.areas()
        present |= {s.category_id for s in annotation.panoptic.segments if areas.get(s.id, 0) > 0}
    return present


def _image_classes(dataset: SegmentationDataset, ids: list[str], progress: bool) -> dict[str, set[int]]:
    """``image id -> class ids present`` (an annotation that fails to load counts as unlabelled)."""
    by_id = {}
    for sample in dataset.samples:
        by_id.setdefault(sample.image_id, sample)
    ignore = dataset.taxonomy.ignore_index
    out: dict[str, set[int]] = {}
    show = progress and len(ids) > _PROGRESS_MIN_SAMPLES
    for image_id in tqdm(ids, desc="split", unit="img", disable=not show):
        try:
            annotation = by_id[image_id].annotation(cache=False)
        except (DataError, ValueError, OSError):
            out[image_id] = set()
            continue
        out[image_id] = _classes_of(annotation) - {ignore}
    return out


def _assign(
    ids: list[str], classes: dict[str, set[int]], fractions: dict[str, float], stratify: bool
) -> dict[str, list[str]]:
    names = list(fractions)
    share = np.array([fractions[n] for n in names], dtype=np.float64)
    k = len(names)
    n = len(ids)
    if not stratify:
        bounds = np.round(np.cumsum(share) * n).astype(int)
        bounds[-1] = n
        starts = np.concatenate([[0], bounds[:-1]])
        return {name: ids[s:e] for name, s, e in zip(names, starts, bounds)}

    class_images: dict[int, int] = {}
    for image_id in ids:
        for c in classes[image_id]:
            class_images[c] = class_images.get(c, 0) + 1
    positive = int((share > 0).sum())
    assigned = np.zeros(k, dtype=np.float64)
    per_class: dict[int, np.ndarray] = {c: np.zeros(k, dtype=np.float64) for c in class_images}

    def rarity(position: int) -> tuple[int, int]:
        present = classes[ids[position]]
        rarest = min((class_images[c] for c in present), default=n + 1)
        return (rarest, position)

    order = sorted(range(n), key=rarity)
    result: list[list[str]] = [[] for _ in names]
    for position in order:
        image_id = ids[position]
        present = classes[image_id]
        overall = share * n - assigned
        if present:
            rarest = min(present, key=lambda c: (class_images[c], c))
            want = share * class_images[rarest] - per_class[rarest]
            unserved = (per_class[rarest] == 0) & (share > 0) if class_images[rarest] >= positive else np.zeros(k, bool)
            # highest priority first: unserved split, then class deficit, then overall deficit
            keys = [(bool(unserved[s]), want[s], overall[s], -s) for s in range(k) if share[s] > 0]
            candidates = [s for s in range(k) if share[s] > 0]
            chosen = candidates[max(range(len(keys)), key=lambda i: keys[i])]
            for c in present:
                per_class[c][chosen] += 1
        else:
            candidates = [s for s in range(k) if share[s] > 0]
            chosen = max(candidates, key=lambda s: (overall[s], -s))
        assigned[chosen] += 1
        result[chosen].append(image_id)

    # every split with a positive fraction gets at least one image (when possible)
    for s in range(k):
        if share[s] > 0 and not result[s]:
            donor = max(range(k), key=lambda d: (len(result[d]) - share[d] * n, len(result[d])))
            if len(result[donor]) > 1:
                result[s].append(result[donor].pop())
    return dict(zip(names, result))


def split_dataset(
    dataset: SegmentationDataset,
    fractions: Sequence[float] | Mapping[str, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify: bool = True,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Split image ids into named parts, reproducibly and (optionally) class-stratified.

    The same dataset, fractions and seed always give the same split. Duplicate image ids
    are kept once. Without stratification the shuffled ids are cut at the rounded
    cumulative fractions; with it, see the module docstring (annotations are loaded
    once, lazily, to find the classes of each image).

    Args:
        dataset: the images to split.
        fractions: ``(train, val, test)`` style sequence or ``{"train": 0.7, ...}``;
            rescaled to sum to 1. A zero fraction gives an empty split.
        seed: shuffling seed.
        stratify: balance class presence across splits.
        progress: show a tqdm bar while reading annotations (only for > 50 samples).

    Returns:
        ``split name -> image ids`` (in assignment order), in the order of ``fractions``;
        every id is in exactly one split.

    Raises:
        ValueError: invalid fractions.

    Example:
        >>> splits = split_dataset(dataset, {"train": 0.8, "val": 0.2}, seed=1)  # doctest: +SKIP
        >>> sorted(splits)  # doctest: +SKIP
        ['train', 'val']
    """
    named = normalize_fractions(fractions)
    ids = list(dict.fromkeys(s.image_id for s in dataset.samples))
    rng = np.random.default_rng(seed)
    ids = [ids[i] for i in rng.permutation(len(ids))]
    classes = _image_classes(dataset, ids, progress) if stratify else {}
    return _assign(ids, classes, named, stratify)


def split_subsets(dataset: SegmentationDataset, splits: Mapping[str, Sequence[str]]) -> dict[str, SegmentationDataset]:
    """One dataset per split (``dataset.subset``), named ``<dataset>-<split>``.

    Raises:
        KeyError: a split lists ids that are not in the dataset.
    """
    return {name: dataset.subset(list(ids), name=f"{dataset.name}-{name}") for name, ids in splits.items()}


def write_splits(splits: Mapping[str, Sequence[str]], out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<name>.txt`` per split, one image id per line.

    Args:
        splits: ``name -> image ids``.
        out_dir: folder (created).

    Returns:
        ``out_dir``.

    Raises:
        ValueError: a split name unusable as a file name, an id containing a line break
            or surrounding spaces, or an id listed in two splits.
    """
    out_dir = Path(out_dir)
    owner: dict[str, str] = {}
    for name, ids in splits.items():
        _check_name(str(name))
        for image_id in ids:
            text = str(image_id)
            if "\n" in text or "\r" in text or text != text.strip() or not text:
                raise ValueError(f"image id {text!r} cannot be written one per line")
            if owner.setdefault(text, name) != name:
                raise ValueError(f"image id {text!r} is in both {owner[text]!r} and {name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, ids in splits.items():
        (out_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return out_dir


def read_splits(folder: str | Path) -> dict[str, list[str]]:
    """Read every ``*.txt`` split file of a folder (name = file stem, sorted by name).

    Blank lines are skipped and surrounding spaces stripped.

    Raises:
        DataError: the folder is missing or holds no ``.txt`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "split folder does not exist", "write splits with write_splits or `pixelwise split`")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DataError(folder, "no split files (*.txt) in the folder", "expected train.txt, val.txt, ...")
    splits: dict[str, list[str]] = {}
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(file, f"split file cannot be read: {exc}") from exc
        splits[file.stem] = [line.strip() for line in text.splitlines() if line.strip()]
    return splits
