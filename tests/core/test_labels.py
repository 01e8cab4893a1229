"""Label types validate on construction and the views convert consistently."""

from __future__ import annotations

import numpy as np
import pytest

from pixelwise.core.convert import (
    complete_annotation,
    instance_id_map,
    instances_from_id_map,
    panoptic_from_views,
    semantic_from_instances,
    views_from_panoptic,
)
from pixelwise.core.errors import ShapeError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import Taxonomy

TAX = Taxonomy.from_names(["background", "cat", "dog"], stuff=["background"])


def _two_instances() -> InstanceSet:
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 1:3, 1:3] = True
    masks[1, 4:7, 4:7] = True
    return InstanceSet(8, 8, np.array([1, 2]), masks, scores=np.array([0.9, 0.5]))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SemanticMap(np.zeros((2, 2, 2), np.uint8)), r"\(H, W\)"),
        (lambda: SemanticMap(np.zeros((2, 2), np.float32)), "integer dtype"),
        (lambda: InstanceSet(4, 4, np.array([1]), np.zeros((1, 4, 5), bool)), r"\(1, 4, 4\)"),
        (lambda: InstanceSet(4, 4, np.array([1, 2]), np.zeros((1, 4, 4), bool)), r"\(2, 4, 4\)"),
        (lambda: InstanceSet(4, 4, np.array([1]), np.zeros((1, 4, 4), bool), scores=np.ones(2)), r"scores must be \(1,\)"),
        (lambda: InstanceSet(4, 4, np.array([1]), [{"size": [4, 5], "counts": "0"}]), "RLE mask 0 has size"),
        (lambda: InstanceSet(4, 4, np.array([0.5]), np.zeros((1, 4, 4), bool)), "integers"),
        (lambda: PanopticMap(np.array([[0, 1], [2, 2]]), (SegmentInfo(1, 1),)), r"\[2\].*no SegmentInfo"),
        (lambda: PanopticMap(np.zeros((2, 2), np.int32), (SegmentInfo(1, 1), SegmentInfo(1, 2))), "unique"),
        (lambda: SegmentInfo(0, 1), "> 0"),
        (
            lambda: Annotation(SemanticMap(np.zeros((2, 2), np.uint8)), InstanceSet.empty(3, 3)),
            "disagree",
        ),
    ],
)
def test_construction_errors_state_expected_and_actual(build, message):
    with pytest.raises(ShapeError, match=message):
        build()


def test_instance_set_dense_and_rle_agree():
    inst = _two_instances()
    rle = inst.with_rle()
    np.testing.assert_array_equal(rle.dense_masks(), inst.masks)
    np.testing.assert_array_equal(rle.areas(), [4, 9])
    np.testing.assert_array_equal(rle.boxes, inst.boxes)
    np.testing.assert_array_equal(inst.boxes, [[1, 1, 3, 3], [4, 4, 7, 7]])
    sub = rle.select(np.array([False, True]))
    assert len(sub) == 1 and sub.class_ids.tolist() == [2] and sub.scores.tolist() == [0.5]
    assert len(InstanceSet.empty(3, 4)) == 0


def test_semantic_and_panoptic_round_trip():
    inst = _two_instances()
    sem = semantic_from_instances(inst)
    assert sem.class_ids() == [0, 1, 2]
    pan = panoptic_from_views(sem, inst, TAX)
    assert [(s.category_id, s.is_thing) for s in pan.segments] == [(1, True), (2, True), (0, False)]
    assert (pan.segment_ids > 0).all()
    sem2, inst2 = views_from_panoptic(pan)
    np.testing.assert_array_equal(sem2.labels, sem.labels)
    np.testing.assert_array_equal(inst2.masks, inst.masks)


def test_void_stays_void_and_crowd_is_skipped():
    inst = InstanceSet(8, 8, np.array([1, 2]), _two_instances().masks, iscrowd=np.array([False, True]))
    labels = np.zeros((8, 8), np.uint8)
    labels[0] = 255
    labels[inst.masks[0]] = 1
    labels[inst.masks[1]] = 2
    pan = panoptic_from_views(SemanticMap(labels), inst, TAX)
    assert (pan.segment_ids[0] == 0).all()
    assert (pan.segment_ids[inst.masks[1]] == 0).all()  # crowd thing: void in panoptic
    assert {s.category_id for s in pan.segments} == {0, 1}


def test_instances_from_id_map_majority_class():
    ids = np.array([[0, 5, 5], [7, 7, 0]])
    classes = np.array([[0, 2, 2], [1, 3, 0]])
    inst = instances_from_id_map(ids, classes)
    assert inst.ids.tolist() == [5, 7]
    assert inst.class_ids[0] == 2
    np.testing.assert_array_equal(instance_id_map(inst), np.array([[0, 1, 1], [2, 2, 0]]))


def test_complete_annotation_from_each_view():
    inst = _two_instances()
    full = complete_annotation(Annotation(instances=inst), TAX)
    assert full.semantic is not None and full.panoptic is not None
    again = complete_annotation(Annotation(panoptic=full.panoptic), TAX)
    np.testing.assert_array_equal(again.semantic.labels, full.semantic.labels)
    np.testing.assert_array_equal(again.instances.masks, inst.masks)
