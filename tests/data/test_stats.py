"""dataset_statistics counts sizes, pixels, instances, images, channel mean/std and metadata exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.errors import AnnotationError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.image_io import write_image
from pixelwise.data.stats import DatasetStats, dataset_statistics

TAX = Taxonomy.from_names(["background", "cat", "dog"], stuff=["background"])


def _image(folder: Path, name: str, height: int, width: int, rgb=(100, 100, 100)) -> Path:
    path = folder / f"{name}.png"
    write_image(path, np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy())
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> SegmentationDataset:
    """Three 4x4 images (semantic, semantic with void, instances) and one 6x8 panoptic image."""
    a = np.zeros((4, 4), np.uint8)
    a[:1] = 1  # 4 cat, 12 background
    b = np.full((4, 4), 2, np.uint8)
    b[:1] = 255  # 4 void
    b[1:2] = 0  # 4 background, 8 dog
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True  # cat, 4 px, partly covered by the dog
    masks[1, 1:3, 1:3] = True  # dog, 4 px on top
    instances = InstanceSet(4, 4, np.array([1, 2]), masks)
    segments = np.zeros((6, 8), np.int32)
    segments[:3] = 1  # background stuff, 24 px
    segments[3:, :2] = 2  # a cat, 6 px; the rest (18 px) is void
    panoptic = PanopticMap(segments, (SegmentInfo(1, 0, is_thing=False), SegmentInfo(2, 1, is_thing=True)))
    samples = [
        Sample.with_annotation("a", _image(tmp_path, "a", 4, 4), Annotation(semantic=SemanticMap(a)), {"camera": "x"}),
        Sample.with_annotation("b", _image(tmp_path, "b", 4, 4), Annotation(semantic=SemanticMap(b)), {"camera": "y"}),
        Sample.with_annotation("c", _image(tmp_path, "c", 4, 4), Annotation(instances=instances), {"camera": "x"}),
        Sample.with_annotation("d", _image(tmp_path, "d", 6, 8), Annotation(panoptic=panoptic), {"tags": ["day", "wet"]}),
    ]
    return SegmentationDataset(TAX, samples, name="mixed")


def test_counts(mixed: SegmentationDataset):
    stats = dataset_statistics(mixed, progress=False)
    assert (stats.n_images, stats.n_labelled, stats.n_failed) == (4, 4, 0)
    # instances image: cat keeps 3 px (1 under the dog), dog 4 px, 9 px uncovered = void
    assert stats.pixel_counts == {0: 12 + 4 + 24, 1: 4 + 3 + 6, 2: 8 + 4}
    assert stats.ignore_pixels == 4 + 9 + 18
    assert stats.instance_counts == {0: 0, 1: 2, 2: 1}
    assert stats.image_counts == {0: 3, 1: 3, 2: 2}
    assert stats.instance_areas == [4, 4, 6]
    assert stats.labelled_pixels == 65
    assert sum(stats.pixel_fractions.values()) == pytest.approx(1.0)
    assert stats.pixel_fractions[2] == pytest.approx(12 / 65)
    assert stats.imbalance_ratio == pytest.approx(40 / 12)
    assert stats.unknown_ids == []


def test_sizes_and_metadata(mixed: SegmentationDataset):
    stats = dataset_statistics(mixed, progress=False, compute_mean=False)
    assert stats.size_counts == {(4, 4): 3, (6, 8): 1}
    assert stats.size_summary() == {
        "min_height": 4, "max_height": 6, "mean_height": 4.5, "min_width": 4, "max_width": 8, "mean_width": 5.0,
    }
    assert stats.metadata_counts == {"camera": {"x": 2, "y": 1}, "tags": {"day": 1, "wet": 1}}
    assert stats.channel_mean is None and stats.n_images_for_mean == 0


@pytest.mark.parametrize(
    "colors, limit, mean, std",
    [
        ([(255, 0, 0), (0, 0, 255)], 200, (0.5, 0.0, 0.5), (0.5, 0.0, 0.5)),
        ([(51, 102, 204), (51, 102, 204)], 200, (0.2, 0.4, 0.8), (0.0, 0.0, 0.0)),
        ([(255, 0, 0), (0, 0, 255), (0, 255, 0)], 2, (0.5, 0.5, 0.0), (0.5, 0.5, 0.0)),  # first and last only
    ],
)
def test_channel_mean_std(tmp_path: Path, colors, limit: int, mean, std):
    samples = [
        Sample.with_annotation(f"s{i}", _image(tmp_path, f"s{i}", 4, 6, rgb), Annotation(semantic=SemanticMap(np.zeros((4, 6), np.uint8))))
        for i, rgb in enumerate(colors)
    ]
    stats = dataset_statistics(SegmentationDataset(TAX, samples), progress=False, max_images_for_mean=limit)
    assert stats.n_images_for_mean == min(limit, len(colors))
    assert stats.channel_mean == pytest.approx(mean, abs=1e-9)
    assert stats.channel_std == pytest.approx(std, abs=1e-6)


def test_failures_are_recorded_not_raised(tmp_path: Path):
    def broken() -> Annotation:
        raise AnnotationError(tmp_path / "mask.png", "mask is a JPEG")

    good = Sample.with_annotation("g", _image(tmp_path, "g", 4, 4), Annotation(semantic=SemanticMap(np.ones((4, 4), np.uint8))))
    bad_labels = Sample("b", _image(tmp_path, "b", 4, 4), 4, 4, loader=broken)
    missing = Sample.with_annotation("m", tmp_path / "missing.png", Annotation(semantic=SemanticMap(np.ones((4, 4), np.uint8))))
    stats = dataset_statistics(SegmentationDataset(TAX, [good, bad_labels, missing]), progress=False)
    assert (stats.n_images, stats.n_labelled, stats.n_failed) == (3, 2, 1)
    assert stats.pixel_counts[1] == 32
    assert stats.n_images_for_mean == 2
    reasons = {issue.image_id: issue.reason for issue in stats.issues}
    assert reasons["b"] == "mask is a JPEG"
    assert "m" in reasons


def test_unknown_ids_and_empty(tmp_path: Path):
    labels = np.array([[0, 7], [7, 255]], np.uint8)
    sample = Sample.with_annotation("u", _image(tmp_path, "u", 2, 2), Annotation(semantic=SemanticMap(labels)))
    unlabelled = Sample("e", _image(tmp_path, "e", 2, 2), 2, 2)
    stats = dataset_statistics(SegmentationDataset(TAX, [sample, unlabelled]), progress=False)
    assert stats.class_ids == [0, 1, 2, 7]
    assert stats.unknown_ids == [7] and stats.class_names[7] == "unknown 7"
    assert stats.pixel_counts[7] == 2 and stats.ignore_pixels == 1
    assert stats.n_labelled == 1
    assert stats.imbalance_ratio == 1.0  # unknown ids do not count
    assert "Unknown class ids in labels: [7]" in stats.format_table()


def test_empty_dataset():
    stats = dataset_statistics(SegmentationDataset(TAX, []), progress=False)
    assert stats.imbalance_ratio is None and stats.channel_mean is None
    assert stats.size_summary()["mean_height"] is None
    assert "0 images" in stats.format_table()
    json.dumps(stats.to_dict())


def test_outputs(mixed: SegmentationDataset):
    stats = dataset_statistics(mixed, progress=False)
    payload = json.loads(json.dumps(stats.to_dict()))
    assert payload["n_images"] == 4
    assert [c["name"] for c in payload["classes"]] == ["background", "cat", "dog"]
    assert payload["classes"][2]["pixels"] == 12
    assert payload["sizes"][0] == {"height": 4, "width": 4, "count": 3}
    assert payload["metadata"]["camera"] == {"distinct": 2, "values": {"x": 2, "y": 1}}
    assert len(payload["channel_mean"]) == 3
    table = stats.format_table()
    for text in ("background", "dog", "4x4 (3)", "RGB mean", "camera: x (2), y (1)"):
        assert text in table
    assert isinstance(stats, DatasetStats)


def test_progress_bar_path(tmp_path: Path):
    path = _image(tmp_path, "one", 4, 4)
    samples = [Sample.with_annotation(f"s{i}", path, Annotation(semantic=SemanticMap(np.ones((4, 4), np.uint8)))) for i in range(60)]
    stats = dataset_statistics(SegmentationDataset(TAX, samples), progress=True, max_images_for_mean=5)
    assert stats.pixel_counts[1] == 60 * 16 and stats.n_images_for_mean == 5
