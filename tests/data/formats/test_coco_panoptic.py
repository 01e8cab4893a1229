"""Tests of the COCO panoptic format: PNG id encoding, round trips, conversion, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.core.convert import panoptic_from_views
from pixelwise.core.errors import AnnotationError, FormatError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.formats import get_format
from pixelwise.data.formats.coco_panoptic import (
    decode_panoptic_png,
    encode_panoptic_png,
    read_coco_panoptic,
    write_coco_panoptic,
)
from pixelwise.data.image_io import write_image

H, W = 12, 16
TAXONOMY = Taxonomy(
    (
        ClassInfo(1, "person", (220, 20, 60), True, "human"),
        ClassInfo(2, "car", (0, 0, 142), True, "vehicle"),
        ClassInfo(7, "road", (128, 64, 128), False, "flat"),
        ClassInfo(8, "sky", (70, 130, 180), False, None),
    )
)


def _image(path: Path, height: int = H, width: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.full((height, width, 3), 120, np.uint8))
    return path


def _panoptic(seed: int) -> PanopticMap:
    """Two stuff segments, three things (one crowd), ids past 255 and 65535, and void pixels."""
    ids = np.zeros((H, W), np.int32)
    ids[:4] = 300  # sky
    ids[8:] = 5  # road
    ids[5:9, 2:5] = 70_000  # person
    ids[4:7, 9:14] = 1  # car
    ids[9:12, 12:16] = 2 + seed  # crowd of persons
    ids[10, 0:3] = 0  # void inside the road
    segments = (
        SegmentInfo(300, 8, False),
        SegmentInfo(5, 7, False),
        SegmentInfo(70_000, 1, True),
        SegmentInfo(1, 2, True),
        SegmentInfo(2 + seed, 1, True, iscrowd=True),
    )
    return PanopticMap(ids, segments)


def _dataset(tmp_path: Path, annotations: dict[str, Annotation], metadata: dict[str, dict] | None = None) -> SegmentationDataset:
    samples = []
    for image_id, annotation in annotations.items():
        path = _image(tmp_path / "src" / f"{image_id}.jpg")
        samples.append(Sample.with_annotation(image_id, path, annotation, (metadata or {}).get(image_id)))
    return SegmentationDataset(TAXONOMY, samples, name="unit")


def _written(tmp_path: Path, n: int = 3) -> Path:
    dataset = _dataset(tmp_path, {f"im{i}": Annotation(panoptic=_panoptic(i)) for i in range(n)})
    return write_coco_panoptic(dataset, tmp_path / "out")


def test_registered_with_panoptic_view() -> None:
    spec = get_format("coco-panoptic")
    assert spec.views == frozenset({"panoptic"})
    assert spec.reader is read_coco_panoptic and spec.writer is write_coco_panoptic


@pytest.mark.parametrize(
    ("segment_id", "rgb"),
    [(0, [0, 0, 0]), (1, [1, 0, 0]), (255, [255, 0, 0]), (256, [0, 1, 0]), (70_000, [112, 17, 1]), (256**3 - 1, [255, 255, 255])],
)
def test_png_id_encoding(segment_id: int, rgb: list[int]) -> None:
    encoded = encode_panoptic_png(np.full((2, 3), segment_id, np.int64))
    assert encoded.dtype == np.uint8 and encoded[0, 0].tolist() == rgb
    assert decode_panoptic_png(encoded)[1, 2] == segment_id


def test_encoding_rejects_ids_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="0..16777215"):
        encode_panoptic_png(np.array([[256**3]]))


def test_round_trip_is_pixel_exact_with_stuff_and_void(tmp_path: Path) -> None:
    out = _written(tmp_path)
    back = read_coco_panoptic(out)
    assert back.issues == [] and [s.image_id for s in back] == ["im0", "im1", "im2"]
    assert back.taxonomy == TAXONOMY
    for i, sample in enumerate(back):
        original = _panoptic(i)
        panoptic = sample.annotation().panoptic
        np.testing.assert_array_equal(panoptic.segment_ids, original.segment_ids)
        assert sorted(panoptic.segments, key=lambda s: s.id) == sorted(original.segments, key=lambda s: s.id)
    rgb = np.asarray(Image.open(out / "panoptic" / "im0.png").convert("RGB"))
    assert rgb[6, 3].tolist() == [112, 17, 1]  # 70000 = 112 + 256 * 17 + 65536 * 1
    assert (out / "images" / "im0.jpg").is_file()


def test_segments_info_fields(tmp_path: Path) -> None:
    data = json.loads((_written(tmp_path, 1) / "panoptic.json").read_text())
    info = {s["id"]: s for s in data["annotations"][0]["segments_info"]}
    assert info[70_000] == {"id": 70_000, "category_id": 1, "area": 12, "bbox": [2, 5, 3, 4], "iscrowd": 0}
    assert info[2]["iscrowd"] == 1 and info[5]["area"] == 4 * W - 3 - 12 - 3  # road minus person, crowd and void
    assert data["annotations"][0]["file_name"] == "im0.png"
    assert {c["id"]: c["isthing"] for c in data["categories"]} == {1: 1, 2: 1, 7: 0, 8: 0}


def test_metadata_and_image_id_round_trip(tmp_path: Path) -> None:
    meta = {"camera": "front", "timestamp": "2023-01-02T03:04:05", "tags": ["a"], "coco_id": 17}
    dataset = _dataset(tmp_path, {"x": Annotation(panoptic=_panoptic(0))}, {"x": meta})
    out = write_coco_panoptic(dataset, tmp_path / "out")
    data = json.loads((out / "panoptic.json").read_text())
    assert data["images"][0]["id"] == 17 and data["annotations"][0]["image_id"] == 17
    assert data["images"][0]["date_captured"] == meta["timestamp"]
    assert read_coco_panoptic(out)[0].metadata == meta


def test_dataset_without_panoptic_is_completed_from_views(tmp_path: Path) -> None:
    labels = np.full((H, W), 8, np.uint8)
    labels[6:] = 7
    labels[0, :4] = 255
    masks = np.zeros((2, H, W), bool)
    masks[0, 2:8, 2:6] = True
    masks[1, 7:11, 9:15] = True
    labels[masks[0]] = 1
    labels[masks[1]] = 2
    semantic = SemanticMap(labels)
    instances = InstanceSet(H, W, np.array([1, 2]), masks)
    dataset = _dataset(tmp_path, {"views": Annotation(semantic=semantic, instances=instances)})
    back = read_coco_panoptic(write_coco_panoptic(dataset, tmp_path / "out"))[0].annotation().panoptic
    expected = panoptic_from_views(semantic, instances, TAXONOMY)
    np.testing.assert_array_equal(back.segment_ids, expected.segment_ids)
    assert set(back.segments) == set(expected.segments)
    assert (back.segment_ids[0, :4] == 0).all()  # void stays void


def test_standard_coco_layout(tmp_path: Path) -> None:
    out = _written(tmp_path, 2)
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(out / "panoptic.json", root / "annotations" / "panoptic_val2017.json")
    shutil.copytree(out / "panoptic", root / "annotations" / "panoptic_val2017")
    shutil.copytree(out / "images", root / "val2017")
    back = read_coco_panoptic(root)
    assert back.issues == [] and len(back) == 2
    np.testing.assert_array_equal(back[1].annotation().panoptic.segment_ids, _panoptic(1).segment_ids)


def _drop_png(out: Path, data: dict) -> None:
    (out / "panoptic" / "im1.png").unlink()


def _shrink_png(out: Path, data: dict) -> None:
    write_image(out / "panoptic" / "im1.png", np.zeros((H - 2, W, 3), np.uint8))


def _forget_segment(out: Path, data: dict) -> None:
    data["annotations"][1]["segments_info"] = [s for s in data["annotations"][1]["segments_info"] if s["id"] != 300]


def _unknown_category(out: Path, data: dict) -> None:
    data["annotations"][1]["segments_info"][0]["category_id"] = 99


def _no_record(out: Path, data: dict) -> None:
    del data["annotations"][1]


def _missing_image(out: Path, data: dict) -> None:
    (out / "images" / "im1.jpg").unlink()


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_drop_png, "panoptic PNG not found"),
        (_shrink_png, "PNG is 16x10 (WxH) but the image is 16x12"),
        (_forget_segment, "segment ids [300] appear in the PNG but not in its segments_info"),
        (_unknown_category, "unknown category id 99"),
        (_no_record, "has no panoptic annotation"),
        (_missing_image, "'im1.jpg'"),
    ],
)
def test_bad_sample_is_skipped_and_reported(tmp_path: Path, damage, needle: str) -> None:
    out = _written(tmp_path)
    data = json.loads((out / "panoptic.json").read_text())
    damage(out, data)
    (out / "panoptic.json").write_text(json.dumps(data))
    back = read_coco_panoptic(out)
    assert [s.image_id for s in back] == ["im0", "im2"]
    assert len(back.issues) == 1 and needle in back.issues[0].reason and back.issues[0].image_id == "im1"
    np.testing.assert_array_equal(back[1].annotation().panoptic.segment_ids, _panoptic(2).segment_ids)


def test_unchecked_segments_fail_when_loaded(tmp_path: Path) -> None:
    out = _written(tmp_path, 1)
    data = json.loads((out / "panoptic.json").read_text())
    _forget_segment(out, {"annotations": [None, data["annotations"][0]]})
    (out / "panoptic.json").write_text(json.dumps(data))
    back = read_coco_panoptic(out, check_segments=False)
    assert len(back) == 1 and back.issues == []
    with pytest.raises(AnnotationError, match=r"\[300\]"):
        back[0].annotation()


@pytest.mark.parametrize("missing", ["images", "annotations", "categories"])
def test_missing_top_level_list_raises(tmp_path: Path, missing: str) -> None:
    data = {"images": [], "annotations": [], "categories": []}
    del data[missing]
    path = tmp_path / "panoptic.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=f"no '{missing}' list"):
        read_coco_panoptic(tmp_path)
