"""evaluate() and metadata slices, with a backend double that reads the prediction from the image.

The backend double predicts class ``round(red / 100)`` per pixel, so a test writes the
prediction into the image and the ground truth into the annotation; evaluation itself
(reading, target derivation, confusion matrices, ranking, slices) runs for real.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixelwise.core.errors import TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset
from pixelwise.data.image_io import write_image
from pixelwise.evaluation import SliceAccumulator, choose_slice_keys, evaluate, slice_values
from pixelwise.runtime import Segmenter
from pixelwise.transforms.preprocess import PreprocessConfig

TAX = Taxonomy.from_names(["background", "cell", "debris"])
IDENTITY = PreprocessConfig(input_size=None, resize_policy="none", mean=(0, 0, 0), std=(1, 1, 1))


class RedChannelBackend:
    """One-hot scores of ``round(red / 100)`` (identity normalisation: red / 255 in the batch)."""

    name = "red-channel"
    num_classes = 3

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        ids = np.clip(np.rint(batch[:, 0] * 255 / 100), 0, 2).astype(np.int64)
        return (np.eye(3, dtype=np.float32)[ids].transpose(0, 3, 1, 2) * 10).astype(np.float32)


def _sample(folder: Path, image_id: str, truth: np.ndarray, pred: np.ndarray, metadata: dict[str, Any] | None = None) -> Sample:
    image = np.zeros((*pred.shape, 3), np.uint8)
    image[..., 0] = np.asarray(pred, np.int64) * 100
    path = folder / f"{image_id}.png"
    write_image(path, image)
    return Sample.with_annotation(image_id, path, Annotation(semantic=SemanticMap(np.asarray(truth, np.uint8))), metadata)


def _segmenter(batch_size: int = 2) -> Segmenter:
    return Segmenter(RedChannelBackend(), TAX, IDENTITY, batch_size=batch_size)


def _blobs(seed: int, shape: tuple[int, int] = (16, 20)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int64)
    for _ in range(3):
        r, c = rng.integers(0, shape[0] - 5), rng.integers(0, shape[1] - 5)
        labels[r : r + 5, c : c + 5] = rng.integers(1, 3)
    return labels


# ----------------------------------------------------------------- correctness
def test_perfect_predictions_score_one(tmp_path):
    samples = [_sample(tmp_path, f"im{i}", _blobs(i), _blobs(i)) for i in range(5)]
    result = evaluate(_segmenter(), SegmentationDataset(TAX, samples), progress=False)
    assert result.num_images == 5 and not result.issues
    assert result.metrics.miou == pytest.approx(1.0)
    assert result.metrics.pixel_accuracy == pytest.approx(1.0)
    assert result.boundary_f1 == pytest.approx(1.0)
    assert all(s.iou == pytest.approx(1.0) for s in result.per_image)
    assert int(result.metrics.matrix.sum()) == 5 * 16 * 20


LEFT_RIGHT = np.repeat(np.array([[0] * 4 + [1] * 4]), 8, axis=0)  # 8x8: left class 0, right class 1


def _shift_column(labels: np.ndarray) -> np.ndarray:
    pred = labels.copy()
    pred[:, 4] = 0  # one column of class 1 predicted as background
    return pred


def _void_top_row(labels: np.ndarray) -> np.ndarray:
    truth = labels.copy()
    truth[0] = 255
    return truth


@pytest.mark.parametrize(
    "truth, pred, iou, accuracy",
    [
        # class 1: tp 24, fn 8 -> 0.75; class 0: tp 32, fp 8 -> 0.8
        (LEFT_RIGHT, _shift_column(LEFT_RIGHT), [0.8, 0.75, math.nan], 56 / 64),
        # same with the top row void: class 1: tp 21, fn 7 -> 0.75; class 0: tp 28, fp 7 -> 0.8
        (_void_top_row(LEFT_RIGHT), _shift_column(LEFT_RIGHT), [0.8, 0.75, math.nan], 49 / 56),
        # everything predicted as class 2
        (LEFT_RIGHT, np.full((8, 8), 2), [0.0, 0.0, 0.0], 0.0),
    ],
    ids=["column-off", "column-off-void-row", "all-wrong"],
)
def test_known_errors_give_hand_computed_iou(tmp_path, truth, pred, iou, accuracy):
    result = evaluate(_segmenter(), SegmentationDataset(TAX, [_sample(tmp_path, "a", truth, pred)]), progress=False)
    np.testing.assert_allclose(result.metrics.iou, iou, equal_nan=True)
    assert result.metrics.pixel_accuracy == pytest.approx(accuracy)
    assert result.per_image[0].iou == pytest.approx(np.nanmean(iou))


def test_instances_only_ground_truth_is_converted(tmp_path):
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 1:4, 1:4] = True
    masks[1, 6:9, 5:9] = True
    instances = InstanceSet(10, 10, np.array([1, 2]), masks)
    truth = np.zeros((10, 10), np.int64)
    truth[1:4, 1:4] = 1
    truth[6:9, 5:9] = 2
    image = np.zeros((10, 10, 3), np.uint8)
    image[..., 0] = truth * 100
    write_image(tmp_path / "inst.png", image)
    sample = Sample.with_annotation("inst", tmp_path / "inst.png", Annotation(instances=instances))
    result = evaluate(_segmenter(), SegmentationDataset(TAX, [sample]), progress=False)
    assert result.num_images == 1 and result.metrics.miou == pytest.approx(1.0)
    assert result.metrics.support.tolist() == [100 - 9 - 12, 9, 12]


def test_broken_images_unlabelled_and_mismatched_samples_are_skipped(tmp_path):
    good = _sample(tmp_path, "good", _blobs(1), _blobs(1))
    broken_path = tmp_path / "broken.png"
    broken_path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 3)
    broken = Sample.with_annotation("broken", broken_path, Annotation(semantic=SemanticMap(np.zeros((16, 20), np.uint8))))
    unlabelled = Sample("unlabelled", good.image_path, 16, 20)
    wrong_size = Sample.with_annotation("small", good.image_path, Annotation(semantic=SemanticMap(np.zeros((5, 5), np.uint8))))
    read_issue = DataIssue(tmp_path / "gone.png", "file missing")
    dataset = SegmentationDataset(TAX, [broken, good, unlabelled, wrong_size], issues=[read_issue])
    result = evaluate(_segmenter(), dataset, progress=False)
    assert [s.image_id for s in result.per_image] == ["good"]
    reasons = {(i.image_id, i.severity) for i in result.issues}
    assert {("broken", "error"), ("unlabelled", "warning"), ("small", "error")} <= reasons
    assert result.issues[0] is read_issue and len(result.issues) == 4


def test_labels_outside_the_model_classes_are_an_issue(tmp_path):
    truth = np.full((6, 6), 7)
    result = evaluate(_segmenter(), SegmentationDataset(TAX, [_sample(tmp_path, "x", truth, np.zeros((6, 6)))]),
                      progress=False, check_taxonomy=False)
    assert result.num_images == 0 and "ground truth" in result.issues[0].reason


def test_worst_images_are_ranked_and_bounded(tmp_path):
    samples = []
    for i in (2, 0, 4, 1, 3):
        pred = LEFT_RIGHT.copy()
        pred[:, 4 : 4 + i] = 0  # image i has i of the 4 class-1 columns wrong: IoU falls with i
        samples.append(_sample(tmp_path, f"im{i}", LEFT_RIGHT, pred))
    result = evaluate(_segmenter(), SegmentationDataset(TAX, samples), progress=False, keep_worst=3)
    assert [w.score.image_id for w in result.worst] == ["im4", "im3", "im2"]
    assert [round(w.score.iou, 3) for w in result.worst] == [0.25, round((0.25 + 4 / 7) / 2, 3), round((0.5 + 4 / 6) / 2, 3)]
    result_all = evaluate(_segmenter(), SegmentationDataset(TAX, samples), progress=False, keep_worst=10)
    assert [w.score.image_id for w in result_all.worst] == ["im4", "im3", "im2", "im1", "im0"]
    worst = result_all.worst[0]
    assert worst.image.shape == (8, 8, 3) and worst.target.shape == worst.prediction.shape == (8, 8)


def test_taxonomy_mismatch_is_refused(tmp_path):
    other = Taxonomy.from_names(["background", "nucleus", "debris"])
    dataset = SegmentationDataset(other, [_sample(tmp_path, "a", _blobs(0), _blobs(0))])
    with pytest.raises(TaxonomyError, match="nucleus"):
        evaluate(_segmenter(), dataset, progress=False)
    assert evaluate(_segmenter(), dataset, progress=False, check_taxonomy=False).num_images == 1


# ----------------------------------------------------------------------- slices
def test_slices_separate_a_good_group_from_a_bad_group(tmp_path):
    samples = []
    for i in range(6):
        truth = _blobs(i)
        bad = i % 2 == 1
        pred = np.where(truth > 0, 0, truth) if bad else truth  # camera B misses every object
        metadata = {"camera": "B" if bad else "A", "lighting": "day", "tags": ["x", "y"] if i == 0 else ["y"],
                    "timestamp": f"2024-01-0{i + 1}"}
        samples.append(_sample(tmp_path, f"im{i}", truth, pred, metadata))
    result = evaluate(_segmenter(), SegmentationDataset(TAX, samples), progress=False)
    assert result.slice_keys == ["camera", "tags"]  # lighting has one value, timestamp is never chosen
    rows = {(s.key, s.value): s for s in result.slices}
    assert rows[("camera", "A")].images == 3 and rows[("camera", "A")].miou == pytest.approx(1.0)
    assert rows[("camera", "B")].images == 3 and rows[("camera", "B")].miou < 0.5
    assert rows[("tags", "x")].images == 1 and rows[("tags", "y")].images == 6
    assert result.slice_rows()[1]["miou_gap"] < 0 < result.slice_rows()[0]["miou_gap"]
    chosen = evaluate(_segmenter(), SegmentationDataset(TAX, samples), slice_keys=["lighting"], progress=False)
    assert [(s.key, s.value, s.images) for s in chosen.slices] == [("lighting", "day", 6)]


@pytest.mark.parametrize(
    "metadata, key, expected",
    [
        ({"camera": "A"}, "camera", ["A"]),
        ({"camera": 3}, "camera", ["3"]),
        ({"tags": ["rain", "night", "rain"]}, "tags", ["rain", "night"]),
        ({"tags": []}, "tags", []),
        ({"camera": None}, "camera", []),
        ({}, "camera", []),
        ({"camera": {"make": "x"}}, "camera", []),
    ],
)
def test_slice_values(metadata, key, expected):
    assert slice_values(metadata, key) == expected


def test_choose_slice_keys_and_accumulator():
    records = [{"camera": c, "id_like": str(i), "location": "lab", "tags": ["t1"] if i else ["t2"]}
               for i, c in enumerate("ABAB")]
    assert choose_slice_keys(records, max_values=3) == ["camera", "tags"]
    acc = SliceAccumulator(["camera"], num_classes=2)
    acc.update({"camera": "A"}, np.array([[3, 1], [0, 4]]))
    acc.update({"camera": "A"}, np.array([[1, 0], [0, 0]]))
    acc.update({}, np.array([[9, 9], [9, 9]]))  # no camera: in no slice
    (only,) = acc.compute()
    assert (only.key, only.value, only.images, only.pixels) == ("camera", "A", 2, 9)
    assert only.pixel_accuracy == pytest.approx(8 / 9)
