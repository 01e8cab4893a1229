"""Every format through every other: labels survive pixel for pixel.

A dataset with stuff (background) and two thing classes, touching objects, a hole and a
thin line is written in format A, read back, written in format B and read back again.
Instance masks (as a multiset of (class name, mask)) must be identical for every pair of
instance-capable formats; semantic maps must be identical for every pair of
semantic-capable formats.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.convert import complete_annotation, semantic_from_instances
from pixelwise.core.labels import Annotation, InstanceSet
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import SegmentationDataset, Sample
from pixelwise.data.formats import read_dataset, write_dataset
from pixelwise.data.image_io import write_image

TAXONOMY = Taxonomy.from_names(["background", "cell", "scratch"], stuff=["background"])
INSTANCE_FORMATS = ["coco", "coco-panoptic", "voc", "yolo-seg", "cityscapes"]
SEMANTIC_FORMATS = ["coco-panoptic", "voc", "cityscapes", "masks"]


def _instances(seed: int, height: int = 24, width: int = 32) -> InstanceSet:
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, height, width), bool)
    masks[0, 2:10, 2:12] = True
    masks[0, 5:7, 5:8] = False  # a hole
    masks[1, 2:10, 12:18] = True  # touches instance 0
    masks[2, 15, 3:30] = True  # a one-pixel line
    y, x = (int(v) for v in rng.integers(12, 20, 2))
    masks[3, y : y + 4, x : x + 6] = True
    masks[3, 15] = False  # keep the line visible where they meet
    return InstanceSet(height, width, np.array([1, 1, 2, 1]), masks)


def _dataset(root: Path, n: int = 3) -> SegmentationDataset:
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for index in range(n):
        instances = _instances(index)
        image = np.full((24, 32, 3), 40 + 30 * index, np.uint8)
        path = root / f"img_{index}.png"
        write_image(path, image)
        annotation = complete_annotation(
            Annotation(semantic_from_instances(instances), instances), TAXONOMY
        )
        samples.append(Sample.with_annotation(f"img_{index}", path, annotation, {"camera": f"cam{index % 2}"}))
    return SegmentationDataset(TAXONOMY, samples, name="matrix")


def _instance_signature(dataset: SegmentationDataset) -> dict[str, list[tuple[str, bytes]]]:
    out = {}
    for sample in dataset:
        annotation = complete_annotation(sample.annotation(), dataset.taxonomy)
        instances = annotation.instances
        pairs = [
            (dataset.taxonomy.name_of(int(c)), np.packbits(m).tobytes())
            for c, m in zip(instances.class_ids, instances.dense_masks())
            if m.any()
        ]
        out[sample.image_id] = sorted(pairs)
    return out


def _semantic_signature(dataset: SegmentationDataset) -> dict[str, np.ndarray]:
    out = {}
    for sample in dataset:
        annotation = complete_annotation(sample.annotation(), dataset.taxonomy)
        names = np.array([dataset.taxonomy.name_of(i) if i in dataset.taxonomy else "void" for i in range(256)])
        out[sample.image_id] = names[annotation.semantic.labels.astype(np.int64)]
    return out


def _through(dataset: SegmentationDataset, formats: list[str], tmp: Path, write_options: dict) -> SegmentationDataset:
    current = dataset
    for step, fmt in enumerate(formats):
        out = tmp / f"{step}_{fmt}"
        write_dataset(current, out, fmt, progress=False, **write_options.get(fmt, {}))
        current = read_dataset(out, fmt, **({"mask_kind": "semantic"} if fmt == "masks" else {}))
        errors = [i for i in current.issues if i.severity == "error"]
        assert not errors, f"{' -> '.join(formats[: step + 1])}: {errors}"
    return current


@pytest.mark.parametrize("first, second", list(product(INSTANCE_FORMATS, INSTANCE_FORMATS)))
def test_instances_survive_every_pair(tmp_path, first, second):
    original = _dataset(tmp_path / "src")
    result = _through(original, [first, second], tmp_path, {})
    assert len(result) == len(original)
    assert _instance_signature(result) == _instance_signature(original)


@pytest.mark.parametrize("first, second", list(product(SEMANTIC_FORMATS, SEMANTIC_FORMATS)))
def test_semantic_maps_survive_every_pair(tmp_path, first, second):
    original = _dataset(tmp_path / "src")
    result = _through(original, [first, second], tmp_path, {})
    expected = _semantic_signature(original)
    got = _semantic_signature(result)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{first}->{second} {key}")


@pytest.mark.parametrize("fmt", INSTANCE_FORMATS + ["masks"])
def test_metadata_survives(tmp_path, fmt):
    original = _dataset(tmp_path / "src")
    result = _through(original, [fmt], tmp_path, {})
    for sample in result:
        assert sample.metadata.get("camera") == original.by_id(sample.image_id).metadata["camera"]
