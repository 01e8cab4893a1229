"""Tests of the COCO instance format: read, write, round trips, pycocotools agreement, bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixelwise.core.errors import FormatError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.masks import rle_encode, rle_to_uncompressed
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.formats import MANIFEST_NAME, get_format
from pixelwise.data.formats.coco import (
    coco_dict_from_dataset,
    coco_results,
    instances_from_semantic,
    read_coco,
    write_coco,
)
from pixelwise.data.image_io import write_image

BAD = Path(__file__).resolve().parents[1] / "bad"
H, W = 16, 20
TAXONOMY = Taxonomy(
    (
        ClassInfo(0, "background", (0, 0, 0), False, None),
        ClassInfo(1, "cat", (200, 10, 10), True, "animal"),
        ClassInfo(2, "dog", (10, 200, 10), True, "animal"),
        ClassInfo(3, "grass", (10, 10, 200), False, "plant"),
    )
)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _image(path: Path, height: int = H, width: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.full((height, width, 3), 90, np.uint8))
    return path


def _dataset(tmp_path: Path, annotations: dict[str, Annotation], metadata: dict[str, dict] | None = None) -> SegmentationDataset:
    samples = []
    for image_id, annotation in annotations.items():
        h, w = annotation.shape
        path = _image(tmp_path / "src" / f"{image_id}.png", h, w)
        samples.append(Sample.with_annotation(image_id, path, annotation, (metadata or {}).get(image_id)))
    return SegmentationDataset(TAXONOMY, samples, name="unit")


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Mask with every background region not reachable from the border (4-connected) filled."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8), (0, 0), 2, flags=4)
    return (flood != 2)[1:-1, 1:-1]


def _random_masks(rng: np.random.Generator, n: int, hole_free: bool) -> np.ndarray:
    masks = rng.random((n, H, W)) < 0.45
    masks[:, :, :2] = False  # keep a margin so not every mask touches the border
    if hole_free:
        masks = np.stack([_fill_holes(m) for m in masks])
    return masks


def _instances(masks: np.ndarray, classes: list[int], crowd: list[bool] | None = None) -> InstanceSet:
    return InstanceSet(H, W, np.array(classes), masks, iscrowd=None if crowd is None else np.array(crowd))


def _coco_json(tmp_path: Path, annotations: list[dict], images: list[dict] | None = None, name: str = "ann.json") -> Path:
    if images is None:
        _image(tmp_path / "a.png")
        images = [{"id": 1, "file_name": "a.png", "height": H, "width": W}]
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cat", "supercategory": "animal"}, {"id": 2, "name": "dog"}],
    }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


GOOD_POLYGON = [2.0, 2.0, 10.0, 2.0, 10.0, 8.0, 2.0, 8.0]


def _good_ann(ann_id: int = 100, image_id: int = 1) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "segmentation": [GOOD_POLYGON]}


# --------------------------------------------------------------------------- registry


def test_registered_with_instances_view() -> None:
    spec = get_format("coco")
    assert spec.views == frozenset({"instances"})
    assert spec.reader is read_coco and spec.writer is write_coco


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("mode", "hole_free", "expect_polygon"),
    [("polygon", True, True), ("rle", False, False), ("auto", True, True), ("auto", False, None)],
)
def test_round_trip_masks_pixel_equal(
    tmp_path: Path, rng: np.random.Generator, mode: str, hole_free: bool, expect_polygon: bool | None
) -> None:
    masks = _random_masks(rng, 5, hole_free)
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(masks, [1, 2, 1, 2, 1]))})
    out = write_coco(dataset, tmp_path / "out", mask_encoding=mode)
    data = json.loads((out / "annotations.json").read_text())
    kinds = {isinstance(a["segmentation"], list) for a in data["annotations"]}
    if expect_polygon is not None:
        assert kinds == {expect_polygon}
    back = read_coco(out)
    assert back.issues == []
    instances = back.by_id("img").annotation().instances
    np.testing.assert_array_equal(instances.dense_masks(), masks)
    assert instances.class_ids.tolist() == [1, 2, 1, 2, 1]


def _ring_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[3:12, 4:14] = True
    mask[6:9, 7:11] = False
    return mask


def test_hole_survives_in_auto_mode_via_rle(tmp_path: Path) -> None:
    square = np.zeros((H, W), bool)
    square[1:4, 15:19] = True
    masks = np.stack([_ring_mask(), square])
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(masks, [1, 2]))})
    out = write_coco(dataset, tmp_path / "out", mask_encoding="auto")
    segs = [a["segmentation"] for a in json.loads((out / "annotations.json").read_text())["annotations"]]
    assert isinstance(segs[0], dict) and isinstance(segs[1], list)
    np.testing.assert_array_equal(read_coco(out)[0].annotation().instances.dense_masks(), masks)


def test_polygon_mode_fills_holes_and_warns(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(_ring_mask()[None], [1]))})
    out = write_coco(dataset, tmp_path / "out", mask_encoding="polygon")
    filled = _ring_mask()
    filled[6:9, 7:11] = True
    np.testing.assert_array_equal(read_coco(out)[0].annotation().instances.dense_masks()[0], filled)
    assert any("holes" in i.reason and i.severity == "warning" for i in dataset.issues)


@pytest.mark.parametrize("mode", ["auto", "polygon", "rle"])
def test_crowd_instances_are_written_as_rle(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    masks = _random_masks(rng, 2, hole_free=True)
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(masks, [1, 2], crowd=[True, False]))})
    out = write_coco(dataset, tmp_path / "out", mask_encoding=mode)
    anns = json.loads((out / "annotations.json").read_text())["annotations"]
    assert anns[0]["iscrowd"] == 1 and isinstance(anns[0]["segmentation"], dict)
    assert anns[1]["iscrowd"] == 0 and isinstance(anns[1]["segmentation"], list) == (mode != "rle")
    back = read_coco(out)[0].annotation().instances
    assert back.iscrowd.tolist() == [True, False]
    np.testing.assert_array_equal(back.dense_masks(), masks)


def test_annotation_and_image_ids_survive(tmp_path: Path, rng: np.random.Generator) -> None:
    masks = _random_masks(rng, 3, hole_free=False)
    instances = InstanceSet(H, W, np.array([1, 1, 2]), masks, ids=np.array([70, 5, 70]))
    dataset = _dataset(tmp_path, {"img": Annotation(instances=instances)}, {"img": {"coco_id": 4242}})
    out = write_coco(dataset, tmp_path / "out")
    data = json.loads((out / "annotations.json").read_text())
    assert data["images"][0]["id"] == 4242
    ann_ids = [a["id"] for a in data["annotations"]]
    assert ann_ids[:2] == [70, 5] and ann_ids[2] not in (70, 5)  # duplicate id re-allocated
    back = read_coco(out)[0]
    assert back.metadata["coco_id"] == 4242
    assert back.annotation().instances.ids.tolist() == ann_ids


def test_metadata_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    meta = {
        "camera": "cam-3",
        "timestamp": "2024-05-01 10:00:00",
        "tags": ["night", "rain"],
        "lighting": "dusk",
        "custom": {"k": 1},
        "width": "clashes with COCO's own key",
    }
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(_random_masks(rng, 1, True), [1]))}, {"img": meta})
    out = write_coco(dataset, tmp_path / "out")
    record = json.loads((out / "annotations.json").read_text())["images"][0]
    assert record["date_captured"] == meta["timestamp"] and record["camera"] == "cam-3" and record["width"] == W
    back = read_coco(out)[0].metadata
    back.pop("coco_id")
    assert back == meta  # the clashing key comes back through the manifest
    (out / MANIFEST_NAME).unlink()
    json_only = read_coco(out)[0].metadata
    json_only.pop("coco_id")
    assert json_only == {k: v for k, v in meta.items() if k != "width"}


def test_taxonomy_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(_random_masks(rng, 1, True), [2]))})
    back = read_coco(write_coco(dataset, tmp_path / "out"))
    assert back.taxonomy == TAXONOMY
    things_only = read_coco(write_coco(dataset, tmp_path / "out2", include_stuff=False))
    assert things_only.taxonomy.ids == [1, 2]


def test_semantic_only_gives_one_instance_per_8_connected_region(tmp_path: Path) -> None:
    labels = np.zeros((H, W), np.uint8)
    labels[1:3, 1:3] = 1
    labels[3:5, 3:5] = 1  # touches the first block diagonally: same instance (8-connectivity)
    labels[8:10, 8:12] = 1
    labels[12:15, 2:6] = 2
    labels[0:2, 15:20] = 3  # stuff: no instance
    labels[14:16, 15:20] = 255  # void
    dataset = _dataset(tmp_path, {"img": Annotation(semantic=SemanticMap(labels))})
    back = read_coco(write_coco(dataset, tmp_path / "out"))[0].annotation().instances
    assert back.class_ids.tolist() == [1, 1, 2]
    expected = instances_from_semantic(SemanticMap(labels), TAXONOMY).dense_masks()
    np.testing.assert_array_equal(back.dense_masks(), expected)
    assert expected[0].sum() == 8 and expected[1].sum() == 8


def test_panoptic_only_gives_thing_instances(tmp_path: Path) -> None:
    ids = np.zeros((H, W), np.int32)
    ids[:, :5] = 7  # stuff
    ids[2:6, 8:12] = 3
    ids[10:14, 8:12] = 9
    segments = (SegmentInfo(7, 3, False), SegmentInfo(3, 1, True), SegmentInfo(9, 2, True, iscrowd=True))
    dataset = _dataset(tmp_path, {"img": Annotation(panoptic=PanopticMap(ids, segments))})
    back = read_coco(write_coco(dataset, tmp_path / "out"))[0].annotation().instances
    assert back.class_ids.tolist() == [1, 2] and back.iscrowd.tolist() == [False, True]
    np.testing.assert_array_equal(back.dense_masks(), np.stack([ids == 3, ids == 9]))


# --------------------------------------------------------------------------- pycocotools agreement


def test_uncompressed_rle_input_matches_pycocotools(tmp_path: Path, rng: np.random.Generator) -> None:
    masks = _random_masks(rng, 2, hole_free=False)
    masks[1, 0, 0] = True  # a run starting with foreground (counts begin with 0)
    rles = [rle_to_uncompressed(rle_encode(m)) for m in masks]
    assert rles[1]["counts"][0] == 0
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": r} for i, r in enumerate(rles)]
    dataset = read_coco(_coco_json(tmp_path, anns))
    assert dataset.issues == []
    got = dataset[0].annotation().instances.dense_masks()
    for mask, rle in zip(got, rles):
        expected = mask_utils.decode(mask_utils.frPyObjects(rle, H, W)).astype(bool)
        np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(got, masks)


def test_area_and_bbox_equal_pycocotools(tmp_path: Path, rng: np.random.Generator) -> None:
    masks = np.concatenate([_random_masks(rng, 4, hole_free=True), _random_masks(rng, 4, hole_free=False)])
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(masks, [1] * 8, crowd=[False] * 7 + [True]))})
    out = write_coco(dataset, tmp_path / "out", mask_encoding="auto")
    coco = COCO(str(out / "annotations.json"))
    for ann in coco.dataset["annotations"]:
        rle = coco.annToRLE(ann)
        assert ann["area"] == int(mask_utils.area(rle))
        assert ann["bbox"] == mask_utils.toBbox(rle).tolist()


def _random_polygon(rng: np.random.Generator, n: int) -> list[float]:
    """A star-shaped polygon of n vertices around a random centre (may leave the image a little)."""
    cx, cy = rng.uniform(4, W - 4), rng.uniform(4, H - 4)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(1.5, 6, n)
    xs = np.clip(cx + radii * np.cos(angles), 0, W)
    ys = np.clip(cy + radii * np.sin(angles), 0, H)
    return np.stack([xs, ys], axis=1).reshape(-1).round(2).tolist()


def test_polygon_rasterisation_agrees_with_pycocotools(tmp_path: Path, rng: np.random.Generator) -> None:
    polygons = [[_random_polygon(rng, int(rng.integers(3, 12))) for _ in range(int(rng.integers(1, 3)))] for _ in range(20)]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": p} for i, p in enumerate(polygons)]
    dataset = read_coco(_coco_json(tmp_path, anns))
    assert dataset.issues == []
    got = dataset[0].annotation().instances.dense_masks()
    for mask, poly in zip(got, polygons):
        expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, H, W))).astype(bool)
        union = np.logical_or(mask, expected).sum()
        iou = 1.0 if union == 0 else np.logical_and(mask, expected).sum() / union
        assert iou >= 0.99


# --------------------------------------------------------------------------- bad input


BAD_FILES = [
    ("polygon_two_points.json", ["annotation 1", "2 points"]),
    ("rle_wrong_counts.json", ["annotation 1", "160", "768"]),
]


@pytest.mark.parametrize(("name", "needles"), BAD_FILES)
def test_bad_files_give_their_issue_and_other_annotations_load(tmp_path: Path, name: str, needles: list[str]) -> None:
    if not (BAD / name).is_file() or not (BAD / "good_a.png").is_file():
        pytest.skip(f"tests/data/bad/{name} is not there (made by tests/data/bad/make_bad_files.py)")
    as_is = read_coco(BAD / name)
    assert len(as_is) == 1 and len(as_is[0].annotation().instances) == 0
    assert len(as_is.issues) == 1
    issue = as_is.issues[0]
    assert issue.path == BAD / name and all(n in issue.reason for n in needles)
    # The same file with one more, valid annotation: only the bad one is dropped.
    data = json.loads((BAD / name).read_text())
    data["annotations"].append({"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [GOOD_POLYGON]})
    shutil.copy(BAD / "good_a.png", tmp_path / "good_a.png")
    (tmp_path / name).write_text(json.dumps(data))
    mixed = read_coco(tmp_path / name)
    instances = mixed[0].annotation().instances
    assert instances.ids.tolist() == [2] and int(instances.areas()[0]) == 48
    assert len(mixed.issues) == 1 and all(n in mixed.issues[0].reason for n in needles)


def test_missing_images_key_raises_format_error() -> None:
    if not (BAD / "missing_images.json").is_file():
        pytest.skip("tests/data/bad/missing_images.json is not there (made by tests/data/bad/make_bad_files.py)")
    with pytest.raises(FormatError, match="no 'images' list") as info:
        read_coco(BAD / "missing_images.json")
    assert info.value.path == BAD / "missing_images.json"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"images": [],\n "annotations": [,]}', "line 2 column"),
        ("[1, 2]", "must be an object"),
        ('{"images": [], "annotations": []}', "no 'categories' list"),
        ('{"images": {}, "annotations": [], "categories": []}', "'images' must be a list"),
        ('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}', "duplicate class id"),
    ],
)
def test_whole_file_errors_raise(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(FormatError, match=needle):
        read_coco(path)


BAD_ANNOTATIONS = [
    ({"category_id": 9}, "unknown category id 9"),
    ({"image_id": 77}, "unknown image id 77"),
    ({"bbox": [10, 10, 30, 4]}, "bbox"),
    ({"segmentation": [[2, 2, 40, 2, 40, 8]]}, "outside"),
    ({"segmentation": [[2, 2, 8, 2, 8]]}, "odd number"),
    ({"segmentation": []}, "empty"),
    ({"segmentation": {"size": [H + 1, W], "counts": [H * W + W]}}, "RLE size"),
    ({"segmentation": {"size": [H, W], "counts": "not-an-rle"}}, "RLE"),
    ({"segmentation": "M"}, "polygon list or an RLE dict"),
]


@pytest.mark.parametrize(("change", "needle"), BAD_ANNOTATIONS)
def test_bad_annotation_is_skipped_alone(tmp_path: Path, change: dict, needle: str) -> None:
    path = _coco_json(tmp_path, [_good_ann(1), dict(_good_ann(2), **change), _good_ann(3)])
    dataset = read_coco(path)
    assert len(dataset.issues) == 1 and needle in dataset.issues[0].reason
    assert dataset[0].annotation().instances.ids.tolist() == [1, 3]


def test_image_record_problems_skip_only_that_image(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        _image(tmp_path / "images" / name)
    _image(tmp_path / "images" / "small.png", 8, 8)
    images = [
        {"id": 1, "file_name": "a.png", "height": H, "width": W, "camera": "x"},
        {"id": 1, "file_name": "b.png", "height": H, "width": W},  # duplicate id
        {"id": 2, "file_name": "gone.png", "height": H, "width": W},  # missing file
        {"id": 3, "file_name": "small.png", "height": H, "width": W},  # size mismatch
        {"id": 4, "file_name": "b.png"},  # no size: taken from the file
    ]
    anns = [_good_ann(1, 1), _good_ann(2, 2), _good_ann(3, 4)]
    dataset = read_coco(_coco_json(tmp_path, anns, images))
    assert [s.image_id for s in dataset] == ["a", "b"]
    assert (dataset[1].height, dataset[1].width) == (H, W)
    reasons = " | ".join(i.reason for i in dataset.issues)
    assert "duplicate image id 1" in reasons and "'gone.png'" in reasons and "20x16 (WxH) but the image is 8x8" in reasons
    assert len(dataset.issues) == 3
    assert dataset[0].metadata == {"camera": "x", "coco_id": 1}


def test_standard_coco_layout_and_images_dir(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    _image(root / "val2017" / "000000000042.jpg")
    (root / "annotations").mkdir()
    data = {
        "images": [{"id": 42, "file_name": "000000000042.jpg", "height": H, "width": W, "date_captured": "2013-11-14 11:18:45"}],
        "annotations": [_good_ann(1, 42)],
        "categories": [{"id": 1, "name": "cat", "supercategory": "animal"}],
    }
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    dataset = read_coco(root)
    assert [s.image_id for s in dataset] == ["000000000042"]
    assert dataset[0].metadata == {"timestamp": "2013-11-14 11:18:45", "coco_id": 42}
    assert dataset.taxonomy.get(1).supercategory == "animal" and dataset.taxonomy.get(1).is_thing
    moved = tmp_path / "elsewhere"
    shutil.move(str(root / "val2017"), str(moved))
    assert len(read_coco(root)) == 0
    assert len(read_coco(root, images_dir=moved)) == 1


# --------------------------------------------------------------------------- writer edge cases and results


def test_writer_skips_samples_it_cannot_load_or_copy(tmp_path: Path, rng: np.random.Generator) -> None:
    dataset = _dataset(tmp_path, {"ok": Annotation(instances=_instances(_random_masks(rng, 1, True), [1]))})
    unlabelled = Annotation(semantic=SemanticMap(np.zeros((H, W), np.uint8)))
    dataset.samples.append(Sample("no_image", tmp_path / "nope.png", H, W, {}, None, unlabelled))

    def broken() -> Annotation:
        raise FormatError(tmp_path / "x.json", "broken label file")

    dataset.samples.append(Sample("broken", _image(tmp_path / "src" / "broken.png"), H, W, {}, broken))
    out = write_coco(dataset, tmp_path / "out", progress=False)
    assert [s.image_id for s in read_coco(out)] == ["ok"]
    assert {i.image_id for i in dataset.issues} == {"no_image", "broken"}


def test_coco_results_evaluate_to_perfect_ap(tmp_path: Path, rng: np.random.Generator) -> None:
    masks = _random_masks(rng, 3, hole_free=True)
    dataset = _dataset(tmp_path, {"img": Annotation(instances=_instances(masks, [1, 2, 1]))})
    gt_dict = coco_dict_from_dataset(dataset)
    assert len(gt_dict["annotations"]) == 3 and gt_dict["images"][0]["file_name"] == "img.png"
    prediction = InstanceSet(H, W, np.array([1, 2, 1]), masks, scores=np.array([0.9, 0.8, 0.7]))
    results = coco_results(prediction, gt_dict["images"][0]["id"])
    assert [r["score"] for r in results] == pytest.approx([0.9, 0.8, 0.7])
    np.testing.assert_array_equal(mask_utils.decode(results[0]["segmentation"]).astype(bool), masks[0])
    gt = COCO()
    gt.dataset = gt_dict
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(results), "segm")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no scores"):
        coco_results(_instances(masks, [1, 2, 1]), 1)
