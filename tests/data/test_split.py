"""split_dataset is reproducible, complete, disjoint, close to the fractions and spreads rare classes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.errors import AnnotationError, DataError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.split import normalize_fractions, read_splits, split_dataset, split_subsets, write_splits

TAX = Taxonomy.from_names(["background", "road", "car", "bike"], stuff=["background", "road"])


def _sample(image_id: str, classes: Iterable[int]) -> Sample:
    labels = np.zeros((8, 8), np.uint8)
    for k, c in enumerate(classes):
        labels[k, :] = c
    return Sample.with_annotation(image_id, Path(f"/nowhere/{image_id}.png"), Annotation(semantic=SemanticMap(labels)))


def _dataset(n: int = 100, rare: int = 3, cars: int = 30) -> SegmentationDataset:
    """``n`` images; road in all, car in ``cars``, bike (rare) in ``rare``."""
    samples = []
    for i in range(n):
        classes = [1] + ([2] if i % (n // cars) == 0 and i // (n // cars) < cars else []) + ([3] if i in range(7, 7 + rare) else [])
        samples.append(_sample(f"img{i:03d}", classes))
    return SegmentationDataset(TAX, samples, name="roads")


def _check_partition(splits: dict[str, list[str]], dataset: SegmentationDataset) -> None:
    all_ids = [i for ids in splits.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)), "an id is in two splits"
    assert set(all_ids) == {s.image_id for s in dataset}


def _with_class(dataset: SegmentationDataset, class_id: int) -> set[str]:
    return {s.image_id for s in dataset if class_id in s.annotation().semantic.class_ids()}


def test_reproducible_and_seed_dependent():
    dataset = _dataset()
    first = split_dataset(dataset, seed=3, progress=False)
    assert first == split_dataset(dataset, seed=3, progress=False)
    assert first != split_dataset(dataset, seed=4, progress=False)
    assert list(first) == ["train", "val", "test"]


@pytest.mark.parametrize("stratify", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "fractions, expected",
    [
        ((0.8, 0.1, 0.1), {"train": 80, "val": 10, "test": 10}),
        ((8, 1, 1), {"train": 80, "val": 10, "test": 10}),
        ({"train": 0.7, "val": 0.3}, {"train": 70, "val": 30}),
        ((0.5, 0.25, 0.25), {"train": 50, "val": 25, "test": 25}),
    ],
)
def test_partition_and_sizes(fractions, expected: dict[str, int], seed: int, stratify: bool):
    dataset = _dataset()
    splits = split_dataset(dataset, fractions, seed=seed, stratify=stratify, progress=False)
    _check_partition(splits, dataset)
    sizes = {k: len(v) for k, v in splits.items()}
    tolerance = 2 if stratify else 0
    for name, size in expected.items():
        assert abs(sizes[name] - size) <= tolerance, sizes


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rare", [3, 4, 7])
def test_rare_class_in_every_split(seed: int, rare: int):
    dataset = _dataset(rare=rare)
    splits = split_dataset(dataset, seed=seed, progress=False)
    bikes = _with_class(dataset, 3)
    assert len(bikes) == rare
    for name, ids in splits.items():
        assert bikes & set(ids), f"no bike image in {name}"


def test_common_class_is_proportional():
    dataset = _dataset(n=200, cars=40)
    splits = split_dataset(dataset, seed=0, progress=False)
    cars = _with_class(dataset, 2)
    counts = {name: len(cars & set(ids)) for name, ids in splits.items()}
    assert counts == {"train": 32, "val": 4, "test": 4}


@pytest.mark.parametrize("n", [3, 4, 5])
def test_small_datasets_fill_every_split(n: int):
    dataset = SegmentationDataset(TAX, [_sample(f"s{i}", [1]) for i in range(n)])
    splits = split_dataset(dataset, seed=0, progress=False)
    _check_partition(splits, dataset)
    assert all(splits.values()), splits


def test_fewer_images_than_splits():
    dataset = SegmentationDataset(TAX, [_sample("only", [1]), _sample("two", [])])
    splits = split_dataset(dataset, progress=False)
    _check_partition(splits, dataset)


def test_zero_fraction_and_unlabelled_and_broken(tmp_path: Path):
    def broken() -> Annotation:
        raise AnnotationError(tmp_path / "x.png", "unreadable")

    samples = [_sample(f"s{i}", [1, 2] if i % 2 else []) for i in range(20)]
    samples.append(Sample("broken", tmp_path / "broken.png", 8, 8, loader=broken))
    instances = InstanceSet(8, 8, np.array([3]), np.ones((1, 8, 8), bool))
    samples.append(Sample.with_annotation("inst", tmp_path / "inst.png", Annotation(instances=instances)))
    dataset = SegmentationDataset(TAX, samples)
    splits = split_dataset(dataset, {"train": 0.5, "val": 0.5, "test": 0.0}, progress=True)
    _check_partition(splits, dataset)
    assert splits["test"] == []
    assert abs(len(splits["train"]) - 11) <= 1


def test_duplicate_ids_kept_once():
    dataset = SegmentationDataset(TAX, [_sample("a", [1]), _sample("a", [1]), _sample("b", [1]), _sample("c", [1])])
    splits = split_dataset(dataset, (0.5, 0.5), stratify=False, progress=False)
    assert sorted(i for ids in splits.values() for i in ids) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "fractions, message",
    [((), "at least one"), ((0.5, -0.1), ">= 0"), ((0, 0), "sum to 0"), ({"a/b": 1.0}, "file name"), ((float("nan"),), "finite")],
)
def test_bad_fractions(fractions, message: str):
    with pytest.raises(ValueError, match=message):
        split_dataset(_dataset(n=10, cars=5, rare=1), fractions, progress=False)


def test_normalize_fractions_names():
    assert normalize_fractions([1, 1]) == {"train": 0.5, "val": 0.5}
    assert list(normalize_fractions([1, 1, 1, 1])) == ["split0", "split1", "split2", "split3"]


def test_write_read_round_trip(tmp_path: Path):
    dataset = _dataset(n=20, cars=5, rare=3)
    splits = split_dataset(dataset, seed=1, progress=False)
    out = write_splits(splits, tmp_path / "splits")
    assert sorted(p.name for p in out.iterdir()) == ["test.txt", "train.txt", "val.txt"]
    assert read_splits(out) == splits
    subsets = split_subsets(dataset, splits)
    assert [s.image_id for s in subsets["val"]] == splits["val"]
    assert subsets["val"].name == "roads-val"


def test_read_splits_errors(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_splits(tmp_path / "missing")
    with pytest.raises(DataError, match="no split files"):
        read_splits(tmp_path)
    (tmp_path / "train.txt").write_text("a\n\n  b  \n")
    assert read_splits(tmp_path) == {"train": ["a", "b"]}


@pytest.mark.parametrize(
    "splits, message",
    [({"train": ["a"], "val": ["a"]}, "both"), ({"train": ["a\nb"]}, "one per line"), ({"../x": ["a"]}, "file name")],
)
def test_write_splits_rejects(tmp_path: Path, splits, message: str):
    with pytest.raises(ValueError, match=message):
        write_splits(splits, tmp_path)
