"""Confusion matrix metrics against torchmetrics and hand-computed cases."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)

from pixelwise.core.errors import ShapeError
from pixelwise.metrics import (
    ConfusionMatrix,
    LabelRangeError,
    SegmentationMetrics,
    boundary_f1,
    metrics_from_matrix,
)

IGNORE = 255


@pytest.fixture(autouse=True)
def _fixed_rng() -> Iterator[None]:
    state = torch.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(state)


def _random_case(
    seed: int, num_classes: int, used: int, ignore_frac: float, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from the first ``used`` classes (so some classes may be absent)."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, used, shape, generator=gen)
    noise = torch.randint(0, used, shape, generator=gen)
    preds = torch.where(torch.rand(shape, generator=gen) < 0.6, target, noise)
    target[torch.rand(shape, generator=gen) < ignore_frac] = IGNORE
    return preds, target


def _nan_to_zero(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


CASES = [
    # seed, K, classes used, ignore fraction, shape
    (0, 4, 4, 0.0, (2, 16, 16)),
    (1, 5, 5, 0.1, (3, 12, 10)),
    (2, 6, 4, 0.2, (2, 9, 9)),  # classes 4 and 5 absent from both maps
    (3, 3, 3, 0.5, (16, 16)),  # single image (H, W)
    (4, 21, 21, 0.05, (2, 32, 32)),
]

# (torchmetrics class, average, our value as a function of the metrics)
COMPARISONS: list[tuple[type, str | None, Callable[[SegmentationMetrics], object]]] = [
    (MulticlassJaccardIndex, None, lambda m: _nan_to_zero(m.iou)),
    (MulticlassJaccardIndex, "macro", lambda m: m.miou),
    (MulticlassAccuracy, "micro", lambda m: m.pixel_accuracy),
    (MulticlassAccuracy, "macro", lambda m: m.macro_recall),
    (MulticlassF1Score, None, lambda m: _nan_to_zero(m.dice)),
    (MulticlassF1Score, "macro", lambda m: m.macro_f1),
    (MulticlassF1Score, "weighted", lambda m: m.weighted_f1),
    (MulticlassF1Score, "micro", lambda m: m.micro_f1),
    (MulticlassPrecision, None, lambda m: _nan_to_zero(m.precision)),
    (MulticlassPrecision, "macro", lambda m: m.macro_precision),
    (MulticlassPrecision, "weighted", lambda m: m.weighted_precision),
    (MulticlassRecall, None, lambda m: _nan_to_zero(m.recall)),
    (MulticlassRecall, "macro", lambda m: m.macro_recall),
    (MulticlassRecall, "weighted", lambda m: m.weighted_recall),
]


@pytest.mark.parametrize(("seed", "k", "used", "ignore_frac", "shape"), CASES)
def test_matches_torchmetrics(
    seed: int, k: int, used: int, ignore_frac: float, shape: tuple[int, ...]
) -> None:
    preds, target = _random_case(seed, k, used, ignore_frac, shape)
    cm = ConfusionMatrix(k, ignore_index=IGNORE)
    cm.update(preds, target)
    metrics = cm.compute()
    for metric_cls, average, ours in COMPARISONS:
        reference = metric_cls(num_classes=k, ignore_index=IGNORE, average=average)
        reference.update(preds, target)
        expected = reference.compute().double().numpy()
        np.testing.assert_allclose(
            ours(metrics),
            expected,
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"{metric_cls.__name__}/{average}",
        )


def test_absent_classes_are_nan() -> None:
    preds, target = _random_case(2, 6, 4, 0.2, (2, 9, 9))
    cm = ConfusionMatrix(6)
    cm.update(preds, target)
    m = cm.compute()
    for per_class in (m.iou, m.dice, m.precision, m.recall):
        assert np.isnan(per_class[4:]).all() and not np.isnan(per_class[:4]).any()
    assert m.miou == pytest.approx(float(np.mean(m.iou[:4])))


def test_streaming_equals_one_shot() -> None:
    preds, target = _random_case(5, 7, 7, 0.1, (6, 20, 24))
    streaming = ConfusionMatrix(7)
    for i in range(6):
        streaming.update(preds[i], target[i])  # (H, W) images
    one_shot = ConfusionMatrix(7)
    one_shot.update(preds, target)
    np.testing.assert_array_equal(streaming.matrix, one_shot.matrix)
    assert streaming.compute().to_dict() == one_shot.compute().to_dict()


def test_hand_computed_4x4() -> None:
    target = np.array(
        [
            [0, 0, 1, 1],
            [0, 0, 1, 1],
            [2, 2, 255, 255],
            [2, 2, 2, 2],
        ]
    )
    preds = np.array(
        [
            [0, 1, 1, 1],
            [0, 0, 1, 2],
            [2, 2, 0, 0],
            [2, 0, 2, 2],
        ]
    )
    cm = ConfusionMatrix(num_classes=3)
    cm.update(preds, target)
    m = cm.compute()
    expected = np.array(
        [
            [3, 1, 0],  # target 0: three right, one predicted as 1
            [0, 3, 1],  # target 1: one predicted as 2
            [1, 0, 5],  # target 2: one predicted as 0
        ]
    )
    np.testing.assert_array_equal(m.matrix, expected)
    assert m.matrix.dtype == np.int64
    assert m.pixel_accuracy == pytest.approx(11 / 14)
    np.testing.assert_allclose(m.iou, [3 / 5, 3 / 5, 5 / 7])
    np.testing.assert_allclose(m.dice, [6 / 8, 6 / 8, 10 / 12])
    np.testing.assert_allclose(m.precision, [3 / 4, 3 / 4, 5 / 6])
    np.testing.assert_allclose(m.recall, [3 / 4, 3 / 4, 5 / 6])
    np.testing.assert_array_equal(m.support, [4, 4, 6])
    assert m.miou == pytest.approx((3 / 5 + 3 / 5 + 5 / 7) / 3)
    assert m.frequency_weighted_iou == pytest.approx((4 * 3 / 5 + 4 * 3 / 5 + 6 * 5 / 7) / 14)
    assert m.micro_f1 == m.pixel_accuracy


@pytest.mark.parametrize(
    ("convert", "dtype"),
    [
        (lambda a: a, np.int64),
        (lambda a: a, np.uint8),
        (lambda a: a, np.int32),
        (torch.from_numpy, np.int64),
        (torch.from_numpy, np.uint8),
    ],
)
def test_input_types_give_same_counts(
    convert: Callable[[np.ndarray], object], dtype: type[np.generic]
) -> None:
    preds, target = (x.numpy() for x in _random_case(6, 5, 5, 0.2, (2, 8, 8)))
    reference = ConfusionMatrix(5)
    reference.update(preds, target)
    cm = ConfusionMatrix(5)
    cm.update(convert(preds.astype(dtype)), convert(target.astype(dtype)))  # type: ignore[arg-type]
    np.testing.assert_array_equal(cm.matrix, reference.matrix)


def test_negative_ignore_index() -> None:
    target = np.array([[0, -1], [1, 1]])
    preds = np.array([[0, 1], [1, 0]])
    cm = ConfusionMatrix(2, ignore_index=-1)
    cm.update(preds, target)
    np.testing.assert_array_equal(cm.matrix, [[1, 0], [1, 1]])


@pytest.mark.parametrize(
    ("preds", "target", "error", "match"),
    [
        (np.array([[0, 3]]), np.array([[0, 1]]), LabelRangeError, r"predictions .* \[0, 3\)"),
        (np.array([[0, -1]]), np.array([[0, 1]]), LabelRangeError, "predictions"),
        (np.array([[0, 1]]), np.array([[0, 7]]), LabelRangeError, r"found \[7\]"),
        (np.array([[0, 1]]), np.array([[0, -2]]), LabelRangeError, r"found \[-2\]"),
        (np.array([[0, 1]], np.uint8), np.array([[0, 9]], np.uint8), LabelRangeError, r"\[9\]"),
        (np.array([[0, 1]]), np.array([[0, 1, 1]]), ShapeError, "equal shapes"),
        (np.array([0, 1]), np.array([0, 1]), ShapeError, r"\(H, W\)"),
        (np.array([[0.0, 1.0]]), np.array([[0, 1]]), ShapeError, "argmax"),
        (torch.rand(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), ShapeError, "argmax"),
    ],
)
def test_bad_updates(preds: object, target: object, error: type[Exception], match: str) -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(error, match=match):
        cm.update(preds, target)  # type: ignore[arg-type]
    assert cm.matrix.sum() == 0  # nothing half-counted
    assert issubclass(LabelRangeError, ValueError)


def test_ignore_index_inside_class_range_rejected() -> None:
    with pytest.raises(ValueError, match="valid class"):
        ConfusionMatrix(3, ignore_index=2)


def test_reset_and_merge() -> None:
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(np.array([[0, 1]]), np.array([[0, 0]]))
    b.update(np.array([[1, 1]]), np.array([[1, 1]]))
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, [[1, 1], [0, 2]])
    a.reset()
    assert a.matrix.sum() == 0
    assert math.isnan(a.compute().pixel_accuracy)
    with pytest.raises(ValueError, match="merge"):
        a.merge(ConfusionMatrix(3))


def test_to_dict_is_json_friendly() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([[0, 1]]), np.array([[0, 1]]))
    out = cm.compute().to_dict(class_names=["bg", "cat", "dog"])
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text)["iou"] == [1.0, 1.0, None]
    assert out["per_class"]["dog"] == {
        "iou": None,
        "dice": None,
        "precision": None,
        "recall": None,
        "support": 0,
    }
    assert out["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    with pytest.raises(ShapeError, match="class_names"):
        cm.compute().to_dict(class_names=["bg"])


def test_metrics_validate_on_construction() -> None:
    good = metrics_from_matrix(np.eye(2, dtype=np.int64))
    with pytest.raises(ShapeError, match=r"iou must be a \(2,\) array"):
        SegmentationMetrics(**{**good.__dict__, "iou": np.zeros(3)})
    with pytest.raises(ShapeError, match=r"\(K, K\)"):
        metrics_from_matrix(np.zeros((2, 3)))


def _split(width: int, column: int) -> np.ndarray:
    labels = np.zeros((10, width), dtype=np.int64)
    labels[:, column:] = 1
    return labels


@pytest.mark.parametrize(
    ("pred", "target", "tolerance", "expected"),
    [
        (_split(12, 6), _split(12, 6), 0, 1.0),
        (_split(12, 7), _split(12, 6), 1, 1.0),  # shifted by one column, within tolerance
        (_split(12, 8), _split(12, 6), 2, 1.0),
        (_split(12, 9), _split(12, 6), 1, 0.0),  # three columns away
        (np.zeros((10, 12), np.int64), _split(12, 6), 2, 0.0),  # no predicted boundary
    ],
)
def test_boundary_f1_table(
    pred: np.ndarray, target: np.ndarray, tolerance: float, expected: float
) -> None:
    assert boundary_f1(pred, target, tolerance_px=tolerance) == pytest.approx(expected)


def test_boundary_f1_partial_match_and_per_class() -> None:
    target = _split(12, 6)
    pred = _split(12, 7)
    # At tolerance 0 no boundary pixel coincides: the edges sit in columns 5/6 vs 6/7,
    # class 0 edges (col 5 vs col 6) miss, class 1 edges (col 6 vs col 7) miss.
    per_class = boundary_f1(pred, target, tolerance_px=0, num_classes=3, average="none")
    assert isinstance(per_class, np.ndarray) and per_class.shape == (3,)
    np.testing.assert_allclose(per_class[:2], [0.0, 0.0])
    assert np.isnan(per_class[2])
    # Shifting by one column matches at tolerance 1.
    assert boundary_f1(pred, target, tolerance_px=1) == pytest.approx(1.0)


def test_boundary_f1_ignores_predictions_on_ignored_pixels() -> None:
    target = _split(12, 6)
    pred = target.copy()
    pred[2:5, 1:3] = 1  # spurious blob
    assert boundary_f1(pred, target, tolerance_px=1) < 1.0
    target_ignored = target.copy()
    target_ignored[1:6, 0:4] = IGNORE  # ...inside an ignored region: no effect
    without_blob = boundary_f1(target, target_ignored, tolerance_px=1)
    assert boundary_f1(pred, target_ignored, tolerance_px=1) == pytest.approx(without_blob)
    # The rim of the ignored region is a target boundary the prediction does not have.
    assert without_blob < 1.0


def test_boundary_f1_errors() -> None:
    with pytest.raises(ShapeError):
        boundary_f1(np.zeros((4, 4), np.int64), np.zeros((4, 5), np.int64))
    with pytest.raises(ValueError, match="average"):
        boundary_f1(np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64), average="micro")


def test_boundary_f1_label_range() -> None:
    with pytest.raises(LabelRangeError, match="predictions"):
        boundary_f1(_split(12, 6) * 3, _split(12, 6), num_classes=2)
    with pytest.raises(LabelRangeError, match="target"):
        boundary_f1(_split(12, 6), _split(12, 6) * 3, num_classes=2)


def test_boundary_f1_matches_full_image_reference() -> None:
    """The cropped distance transforms equal a brute-force computation."""
    gen = np.random.default_rng(3)
    target = np.kron(gen.integers(0, 4, (6, 6)), np.ones((4, 4), np.int64))
    pred = np.kron(gen.integers(0, 4, (6, 6)), np.ones((4, 4), np.int64))
    pred[gen.random(pred.shape) < 0.05] = 1
    got = boundary_f1(pred, target, tolerance_px=1.5, num_classes=5, average="none")
    ys, xs = np.mgrid[0:24, 0:24]

    def edges(labels: np.ndarray) -> np.ndarray:
        out = np.zeros(labels.shape, bool)
        out[1:] |= labels[1:] != labels[:-1]
        out[:-1] |= labels[1:] != labels[:-1]
        out[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        out[:, :-1] |= labels[:, 1:] != labels[:, :-1]
        return out

    def matched(src: np.ndarray, dst: np.ndarray) -> float:
        dy = ys[src][:, None] - ys[dst][None, :]
        dx = xs[src][:, None] - xs[dst][None, :]
        return float((np.sqrt(dy**2 + dx**2).min(axis=1) <= 1.5).mean())

    for cls in range(5):
        pb, tb = edges(pred) & (pred == cls), edges(target) & (target == cls)
        if not pb.any() and not tb.any():
            assert np.isnan(got[cls])
        elif not pb.any() or not tb.any():
            assert got[cls] == 0.0
        else:
            prec, rec = matched(pb, tb), matched(tb, pb)
            expected = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
            assert got[cls] == pytest.approx(expected)
