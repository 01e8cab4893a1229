"""Scores to labels, cleanup and region measurements on tiny literal maps."""

from __future__ import annotations

import numpy as np
import pytest

from pixelwise.core.errors import ShapeError
from pixelwise.core.labels import InstanceSet
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.postprocess import (
    fill_holes,
    instance_regions,
    measure_classes,
    remove_small_regions,
    scores_to_labels,
    semantic_regions,
    smooth_labels,
    softmax,
)

TAX = Taxonomy.from_names(["background", "cell", "debris"], stuff=["background"])


def test_softmax_and_argmax():
    logits = np.zeros((3, 2, 2), np.float32)
    logits[2, 0, 0] = 5
    logits[1, 1, 1] = 5
    probs = softmax(logits)
    np.testing.assert_allclose(probs.sum(0), 1, rtol=1e-6)
    np.testing.assert_array_equal(scores_to_labels(logits), [[2, 0], [0, 1]])


@pytest.mark.parametrize("threshold, expected", [(0.5, [[1, 0]]), (0.2, [[1, 1]]), (0.95, [[0, 0]])])
def test_binary_threshold(threshold, expected):
    fg = np.array([[0.9, 0.3]], np.float32)
    probs = np.stack([1 - fg, fg])
    np.testing.assert_array_equal(scores_to_labels(probs, threshold=threshold), expected)
    np.testing.assert_array_equal(scores_to_labels(fg, threshold=threshold), expected)


def test_scores_errors():
    with pytest.raises(ShapeError, match="threshold"):
        scores_to_labels(np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scores_to_labels(np.zeros((2, 2, 2)), threshold=2)


def test_remove_small_regions_absorbs_specks():
    labels = np.zeros((8, 8), np.uint8)
    labels[1:6, 1:6] = 1
    labels[3, 3] = 2  # speck inside a cell
    labels[7, 7] = 1  # speck on background
    labels[0, 7] = 255
    out = remove_small_regions(labels, min_size=2)
    assert out[3, 3] == 1 and out[7, 7] == 0 and out[0, 7] == 255
    assert (remove_small_regions(labels, 2, keep_ids=[2])[3, 3]) == 2


def test_fill_holes_respects_border_and_size():
    labels = np.zeros((9, 9), np.uint8)
    labels[1:8, 1:8] = 1
    labels[3:6, 3:6] = 0  # 9-pixel hole
    labels[0:2, 0] = 0
    assert (fill_holes(labels, [1])[3:6, 3:6] == 1).all()
    assert (fill_holes(labels, [1], max_hole_size=4)[3:6, 3:6] == 0).all()


def test_smooth_labels_removes_jagged_pixel():
    labels = np.zeros((7, 7), np.uint8)
    labels[:, 4:] = 1
    labels[3, 3] = 1
    out = smooth_labels(labels, radius=1)
    assert out[3, 3] == 0 and (out[:, 5:] == 1).all()


def test_semantic_regions_measure_components():
    labels = np.zeros((10, 10), np.uint8)
    labels[1:3, 1:4] = 1
    labels[6:9, 6:9] = 1
    labels[5, 0] = 2
    regions = semantic_regions(labels, TAX)
    cells = [r for r in regions if r.class_name == "cell"]
    assert sorted(r.area for r in cells) == [6, 9]
    small = next(r for r in cells if r.area == 6)
    assert small.box == (1.0, 1.0, 4.0, 3.0) and small.perimeter == 10 and small.centroid == (2.5, 2.0)
    assert small.polygons == [[[1.0, 1.0], [1.0, 3.0], [4.0, 3.0], [4.0, 1.0]]]
    measures = {m.class_name: m for m in measure_classes(labels, regions, TAX)}
    assert measures["cell"].region_count == 2 and measures["cell"].area == 15
    assert measures["debris"].area_fraction == pytest.approx(0.01)
    assert semantic_regions(labels, TAX, min_area=7)[0].area == 9


def test_instance_regions_keep_scores():
    masks = np.zeros((2, 6, 6), bool)
    masks[0, :2, :2] = True
    masks[1, 3:, 3:] = True
    inst = InstanceSet(6, 6, np.array([1, 2]), masks, scores=np.array([0.8, 0.6]))
    regions = instance_regions(inst, TAX)
    assert [r.class_name for r in regions] == ["cell", "debris"]
    assert regions[1].score == pytest.approx(0.6) and regions[1].area == 9 and regions[1].instance_id == 1
