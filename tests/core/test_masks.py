"""Mask ops against pycocotools (the reference) and exact round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from pixelwise.core.errors import AnnotationError, ShapeError
from pixelwise.core.masks import (
    Polygon,
    mask_area,
    mask_centroid,
    mask_iou,
    mask_perimeter,
    mask_to_box,
    mask_to_polygons,
    polygon_self_intersects,
    polygons_to_mask,
    rle_area,
    rle_compress,
    rle_decode,
    rle_encode,
    rle_encode_many,
    rle_to_box,
    rle_to_uncompressed,
)


def _random_masks(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for index in range(count):
        height, width = (int(v) for v in rng.integers(3, 48, 2))
        mask = rng.random((height, width)) < rng.uniform(0.1, 0.9)
        if index % 2:  # blobby shapes with holes as well as salt-and-pepper
            mask = cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0) > 0.5
        yield mask


def _ring(points):
    return np.asarray(points, dtype=np.float64)


@pytest.mark.parametrize("mask", list(_random_masks(40)))
def test_rle_matches_pycocotools(mask):
    ours = rle_encode(mask)
    ref = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"] == ref["counts"].decode()
    assert rle_area(ours) == int(coco_mask.area(ref)) == mask.sum()
    x, y, w, h = coco_mask.toBbox(ref)
    np.testing.assert_allclose(rle_to_box(ours), [x, y, x + w, y + h])
    np.testing.assert_array_equal(rle_decode(ours), mask)
    unc = rle_to_uncompressed(ours)
    assert sum(unc["counts"]) == mask.size
    np.testing.assert_array_equal(rle_decode(unc), mask)
    ref_unc = coco_mask.frPyObjects(unc, *mask.shape)
    assert ref_unc["counts"] == ref["counts"]
    assert rle_compress(unc)["counts"] == ours["counts"]


@pytest.mark.parametrize("mask", list(_random_masks(60, seed=1)))
def test_polygon_round_trip_is_exact(mask):
    polygons = mask_to_polygons(mask)
    np.testing.assert_array_equal(polygons_to_mask(polygons, *mask.shape), mask)
    assert all(p.exterior.min() >= 0 for p in polygons)
    assert all(p.exterior[:, 0].max() <= mask.shape[1] and p.exterior[:, 1].max() <= mask.shape[0] for p in polygons)


def test_hole_is_kept_and_area_and_perimeter_are_exact():
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    mask[4:6, 4:6] = False
    (polygon,) = mask_to_polygons(mask)
    assert len(polygon.holes) == 1
    assert polygon.area() == mask.sum() == 32
    assert mask_perimeter(mask) == 24 + 8
    np.testing.assert_array_equal(polygons_to_mask([polygon], 10, 10), mask)


@pytest.mark.parametrize("seed", range(20))
def test_polygon_rasterisation_matches_pycocotools(seed):
    rng = np.random.default_rng(seed)
    ring = rng.uniform(0, 40, size=(int(rng.integers(3, 9)), 2))
    ours = polygons_to_mask([ring], 40, 40)
    ref = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([ring.reshape(-1).tolist()], 40, 40))).astype(bool)
    assert mask_iou(ours, ref) >= 0.99


def test_single_pixel_and_diagonal_regions():
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = mask[4, 4] = True
    np.testing.assert_array_equal(polygons_to_mask(mask_to_polygons(mask), 5, 5), mask)


def test_simplify_tolerance_reduces_vertices():
    yy, xx = np.mgrid[:64, :64]
    disk = (xx - 32) ** 2 + (yy - 32) ** 2 < 20**2
    full = mask_to_polygons(disk)[0]
    simple = mask_to_polygons(disk, tolerance=1.0)[0]
    assert len(simple.exterior) < len(full.exterior)
    assert mask_iou(polygons_to_mask([simple], 64, 64), disk) > 0.97


@pytest.mark.parametrize(
    "rle, message",
    [
        ({"size": [2, 2], "counts": [1, 2]}, "sum to 3"),
        ({"size": [2], "counts": "00"}, "size"),
        ({"counts": [4]}, "'size' and 'counts'"),
        ({"size": [2, 2], "counts": 3.5}, "counts must be"),
        ({"size": [2, 2], "counts": [-1, 5]}, "non-negative"),
    ],
)
def test_bad_rle_is_a_specific_error(rle, message):
    with pytest.raises(AnnotationError, match=message):
        rle_decode(rle)


@pytest.mark.parametrize(
    "ring, error, message",
    [
        ([[0, 0], [1, 1]], AnnotationError, "2 distinct points"),
        ([0, 0, 1, 1, 2], AnnotationError, "odd number"),
        ([[0, 0, 0], [1, 1, 1], [2, 2, 2]], ShapeError, r"\(K, 2\)"),
        ([[0, 0], [1, np.nan], [2, 2]], AnnotationError, "non-finite"),
    ],
)
def test_bad_polygons(ring, error, message):
    with pytest.raises(error, match=message):
        Polygon(np.asarray(ring, dtype=float))


@pytest.mark.parametrize(
    "ring, crosses",
    [
        ([[0, 0], [4, 0], [4, 4], [0, 4]], False),
        ([[0, 0], [4, 4], [4, 0], [0, 4]], True),  # bow tie
        ([[0, 0], [4, 0], [2, 3]], False),
    ],
)
def test_self_intersection(ring, crosses):
    assert polygon_self_intersects(_ring(ring)) is crosses


def test_measurements():
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:6] = True
    assert mask_area(mask) == 8
    np.testing.assert_array_equal(mask_to_box(mask), [2, 1, 6, 3])
    assert mask_centroid(mask) == (4.0, 2.0)
    assert np.isnan(mask_centroid(np.zeros((3, 3), bool))[0])
    np.testing.assert_array_equal(mask_to_box(np.zeros((3, 3), bool)), [0, 0, 0, 0])
    assert mask_iou(mask, mask) == 1.0


def test_encode_many_matches_single():
    masks = np.stack(list(_random_masks(3, seed=5))[0:1] * 3)
    assert rle_encode_many(masks) == [rle_encode(m) for m in masks]
    with pytest.raises(ShapeError):
        rle_encode_many(masks[0])
