"""Cityscapes format: instanceIds coding, pixel-exact round trips, flat layouts, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.convert import panoptic_from_views
from pixelwise.core.errors import FormatError, TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.formats import get_format, read_dataset, write_dataset
from pixelwise.data.formats.cityscapes import (
    CITYSCAPES_VOID_IDS,
    cityscapes_taxonomy,
    decode_instance_ids,
    decode_instance_value,
    encode_instance_value,
    read_cityscapes,
    write_cityscapes,
)
from pixelwise.data.image_io import read_image, read_label_image, write_image, write_label_png

H, W = 10, 14
TAX = cityscapes_taxonomy()
ROAD, SKY, PERSON, CAR = 7, 23, 24, 26


def _image(path: Path, height: int = H, width: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3))
    return path


def _scene() -> Annotation:
    """Sky over road, a person and two cars, plus a car-class region without an instance."""
    labels = np.full((H, W), ROAD, np.uint8)
    labels[:3] = SKY
    masks = np.zeros((3, H, W), bool)
    masks[0, 3:9, 10:12] = True
    masks[1, 4:7, 1:4] = True
    masks[2, 4:8, 5:9] = True
    instances = InstanceSet(H, W, np.array([PERSON, CAR, CAR]), masks)  # instanceIds value order
    for mask, class_id in zip(masks, instances.class_ids):
        labels[mask] = class_id
    labels[9, 12:14] = CAR  # car pixels of no instance (e.g. a distant group)
    labels[0, 0] = 255  # one void pixel
    return Annotation(SemanticMap(labels), instances)


def _pixel_classes(panoptic: PanopticMap) -> np.ndarray:
    """``(H, W, 2)`` (category, is_thing) per pixel, -1 for void: segment-id independent."""
    out = np.full((*panoptic.shape, 2), -1, np.int64)
    for seg in panoptic.segments:
        out[panoptic.segment_ids == seg.id] = (seg.category_id, int(seg.is_thing))
    return out


# --------------------------------------------------------------------------- instanceIds coding


@pytest.mark.parametrize(
    "value, expected",
    [(26001, (26, 1)), (26000, (26, 0)), (7, (7, None)), (0, (0, None)), (33999, (33, 999)), (24012, (24, 12))],
)
def test_decode_instance_value(value: int, expected: tuple[int, int | None]) -> None:
    assert decode_instance_value(value) == expected
    assert encode_instance_value(*expected) == value


@pytest.mark.parametrize("class_id, number", [(0, 1), (26, 1000), (26, -1)])
def test_encode_instance_value_refuses(class_id: int, number: int) -> None:
    with pytest.raises(ValueError):
        encode_instance_value(class_id, number)


def test_decode_instance_ids_map() -> None:
    ids = np.array([[7, 7, 26001], [26000, 26, 26001], [24000, 23, 23]], np.uint16)
    classes, instances = decode_instance_ids(ids)
    assert classes.tolist() == [[7, 7, 26], [26, 26, 26], [24, 23, 23]]
    assert instances.ids.tolist() == [24000, 26000, 26001]
    assert instances.class_ids.tolist() == [24, 26, 26]
    assert instances.areas().tolist() == [1, 1, 2]


def test_default_taxonomy_is_the_34_label_ids() -> None:
    assert TAX.ids == list(range(34)) and TAX.ignore_index == 255
    assert TAX.thing_ids == [24, 25, 26, 27, 28, 29, 30, 31, 32, 33]
    assert (TAX.name_of(ROAD), TAX.get(ROAD).color, TAX.get(CAR).color) == ("road", (128, 64, 128), (0, 0, 142))
    assert TAX.get(CAR).supercategory == "vehicle"


# --------------------------------------------------------------------------- round trips


def test_round_trip_things_and_stuff_pixel_exact(tmp_path: Path) -> None:
    scene = _scene()
    sample = Sample.with_annotation("frame1", _image(tmp_path / "src" / "frame1.jpg"), scene)
    ds = SegmentationDataset(TAX, [sample])
    out = write_dataset(ds, tmp_path / "cs", "cityscapes")
    gt = out / "gtFine" / "train" / "pixelwise"
    assert (out / "leftImg8bit" / "train" / "pixelwise" / "frame1_leftImg8bit.png").is_file()
    raw = read_label_image(gt / "frame1_gtFine_instanceIds.png")
    assert sorted(np.unique(raw).tolist()) == [ROAD, SKY, CAR, 255, 24000, 26000, 26001]
    assert read_image(gt / "frame1_gtFine_color.png")[5, 2].tolist() == [0, 0, 142]

    again = read_dataset(out, "cityscapes")
    assert again.issues == [] and again.taxonomy == TAX
    ann = again[0].annotation()
    np.testing.assert_array_equal(ann.semantic.labels, scene.semantic.labels)
    np.testing.assert_array_equal(ann.instances.masks, scene.instances.masks)
    assert ann.instances.class_ids.tolist() == [PERSON, CAR, CAR]
    expected = _pixel_classes(panoptic_from_views(scene.semantic, scene.instances, TAX))
    got = _pixel_classes(ann.panoptic)
    crowd = scene.semantic.labels == CAR
    crowd &= ~scene.instances.masks.any(axis=0)
    np.testing.assert_array_equal(got[~crowd], expected[~crowd])
    assert got[9, 12].tolist() == [CAR, 1]  # instance-less car pixels: a crowd thing segment
    crowd_segments = [s for s in ann.panoptic.segments if s.iscrowd]
    assert [(s.category_id, s.is_thing) for s in crowd_segments] == [(CAR, True)]


def test_panoptic_only_sample_round_trips(tmp_path: Path) -> None:
    seg = np.zeros((H, W), np.int32)
    seg[:5] = 3
    seg[5:] = 9
    seg[6:9, 2:6] = 4
    seg[6:9, 8:12] = 5
    segments = (SegmentInfo(3, SKY, False), SegmentInfo(9, ROAD, False), SegmentInfo(4, CAR), SegmentInfo(5, PERSON))
    panoptic = PanopticMap(seg, segments)
    sample = Sample.with_annotation("p", _image(tmp_path / "p.png"), Annotation(panoptic=panoptic))
    again = read_cityscapes(write_cityscapes(SegmentationDataset(TAX, [sample]), tmp_path / "cs"))
    ann = again[0].annotation()
    np.testing.assert_array_equal(_pixel_classes(ann.panoptic), _pixel_classes(panoptic))
    assert ann.instances.class_ids.tolist() == [PERSON, CAR]  # sorted by instanceIds value
    assert (tmp_path / "cs" / "leftImg8bit" / "train" / "pixelwise" / "p_leftImg8bit.png").read_bytes() == (
        tmp_path / "p.png"
    ).read_bytes()


def test_semantic_only_sample_has_no_instance_file(tmp_path: Path) -> None:
    sample = Sample.with_annotation("s", _image(tmp_path / "s.png"), Annotation(_scene().semantic))
    out = write_cityscapes(SegmentationDataset(TAX, [sample]), tmp_path / "cs", split="val", city="bonn")
    assert not (out / "gtFine" / "val" / "bonn" / "s_gtFine_instanceIds.png").exists()
    ann = read_cityscapes(out, split="val")[0].annotation()
    assert ann.instances is None and ann.panoptic is None
    np.testing.assert_array_equal(ann.semantic.labels, _scene().semantic.labels)


def test_metadata_and_custom_taxonomy_round_trip(tmp_path: Path) -> None:
    tax = Taxonomy((ClassInfo(0, "floor", (1, 2, 3), False), ClassInfo(4, "box", (9, 8, 7), True, "item")), ignore_index=200)
    labels = np.zeros((H, W), np.uint8)
    labels[2:5, 2:5] = 4
    labels[9, 9] = 200
    masks = (labels == 4)[None]
    meta = {"location": "dock 3", "timestamp": "2024-05-01T10:00:00", "tags": ["a"]}
    sample = Sample.with_annotation(
        "x", _image(tmp_path / "x.png"), Annotation(SemanticMap(labels, 200), InstanceSet(H, W, [4], masks)), meta
    )
    out = write_cityscapes(SegmentationDataset(tax, [sample]), tmp_path / "cs")
    again = read_cityscapes(out)
    assert again.taxonomy == tax and again[0].metadata == meta
    ann = again[0].annotation()
    np.testing.assert_array_equal(ann.semantic.labels, labels)
    assert ann.semantic.ignore_index == 200 and ann.instances.ids.tolist() == [4000]


# --------------------------------------------------------------------------- layouts and options


def _labels() -> np.ndarray:
    labels = np.full((H, W), ROAD, np.uint8)
    labels[:4] = SKY
    return labels


@pytest.mark.parametrize(
    "image_rel, gt_rel",
    [
        ("f_leftImg8bit.png", "f_gtFine_labelIds.png"),
        ("f.png", "f_gtFine_labelIds.png"),
        ("images/f.png", "gtFine/f_gtFine_labelIds.png"),
        ("leftImg8bit/f_leftImg8bit.png", "gtFine/sub/f_gtFine_labelIds.png"),
        ("images/f.jpg", "images/f_gtFine_labelIds.png"),
    ],
)
def test_flat_layouts_are_read(tmp_path: Path, image_rel: str, gt_rel: str) -> None:
    _image(tmp_path / image_rel)
    (tmp_path / gt_rel).parent.mkdir(parents=True, exist_ok=True)
    write_label_png(tmp_path / gt_rel, _labels())
    write_image(tmp_path / gt_rel.replace("labelIds", "color"), np.zeros((H, W, 3), np.uint8))
    ds = read_cityscapes(tmp_path)
    assert [s.image_id for s in ds] == ["f"] and ds.issues == []
    np.testing.assert_array_equal(ds[0].annotation().semantic.labels, _labels())


def test_instance_ids_alone_give_semantic(tmp_path: Path) -> None:
    _image(tmp_path / "g.png")
    ids = _labels().astype(np.uint16)
    ids[5:8, 2:5] = 26000
    write_label_png(tmp_path / "g_gtFine_instanceIds.png", ids)
    ann = read_cityscapes(tmp_path)[0].annotation()
    assert ann.semantic.labels[6, 3] == CAR and ann.semantic.labels[0, 0] == SKY
    assert ann.instances.ids.tolist() == [26000]


def test_split_option(tmp_path: Path) -> None:
    sample = Sample.with_annotation("v", _image(tmp_path / "v.png"), _scene())
    out = write_cityscapes(SegmentationDataset(TAX, [sample]), tmp_path / "cs", split="val")
    assert len(read_cityscapes(out, split="val")) == 1
    with pytest.raises(FormatError, match=r"available splits: \['val'\]"):
        read_cityscapes(out, split="train")
    _image(tmp_path / "flat" / "a.png")
    with pytest.raises(FormatError, match="no leftImg8bit"):
        read_cityscapes(tmp_path / "flat", split="train")


def test_void_ids_map_to_ignore(tmp_path: Path) -> None:
    _image(tmp_path / "v.png")
    ids = _labels().astype(np.uint16)
    ids[0, :4] = 0
    ids[1, :4] = 1
    ids[6:8, 6:8] = 24000
    write_label_png(tmp_path / "v_gtFine_instanceIds.png", ids)
    plain = read_cityscapes(tmp_path)[0].annotation()
    voided = read_cityscapes(tmp_path, void_ids=CITYSCAPES_VOID_IDS)[0].annotation()
    assert plain.semantic.labels[0, 0] == 0 and plain.panoptic.segment_ids[0, 0] != 0
    assert voided.semantic.labels[0, 0] == 255 and voided.semantic.labels[1, 0] == 255
    assert voided.panoptic.segment_ids[0, 0] == 0 and voided.panoptic.segment_ids[7, 7] != 0


def test_bad_files_are_reported_and_skipped(tmp_path: Path) -> None:
    _image(tmp_path / "good.png")
    write_label_png(tmp_path / "good_gtFine_labelIds.png", _labels())
    _image(tmp_path / "small.png")
    write_label_png(tmp_path / "small_gtFine_labelIds.png", np.zeros((8, 8), np.uint8))
    _image(tmp_path / "nogt.png")
    _image(tmp_path / "empty.png")
    (tmp_path / "empty_gtFine_labelIds.png").write_bytes(b"")
    ds = read_cityscapes(tmp_path)
    assert [s.image_id for s in ds] == ["good"]
    issues = {i.image_id: (i.severity, i.reason) for i in ds.issues}
    assert issues["small"] == ("error", f"mask is 8x8 but image is {W}x{H} (WxH)")
    assert issues["nogt"][0] == "warning" and "no *_gtFine_labelIds.png" in issues["nogt"][1]
    assert issues["empty"][0] == "error" and "empty" in issues["empty"][1]


def test_writer_refuses_wide_class_ids(tmp_path: Path) -> None:
    tax = Taxonomy((ClassInfo(0, "bg"), ClassInfo(300, "far")))
    with pytest.raises(TaxonomyError, match="300"):
        write_cityscapes(SegmentationDataset(tax, []), tmp_path / "cs")


def test_instance_value_beyond_16_bits_is_reported(tmp_path: Path) -> None:
    tax = Taxonomy((ClassInfo(0, "bg", is_thing=False), ClassInfo(70, "gadget")))
    masks = np.zeros((1, H, W), bool)
    masks[0, 2:4, 2:4] = True
    big = Sample.with_annotation("big", _image(tmp_path / "big.png"), Annotation(instances=InstanceSet(H, W, [70], masks)))
    ds = SegmentationDataset(tax, [big])
    out = write_cityscapes(ds, tmp_path / "cs")
    assert len(read_cityscapes(out)) == 0
    assert "exceeds 16 bits" in ds.issues[-1].reason and ds.issues[-1].image_id == "big"


def test_registered_views() -> None:
    spec = get_format("cityscapes")
    assert spec.views == frozenset({"semantic", "instances", "panoptic"})
    assert spec.reader is read_cityscapes and spec.writer is write_cityscapes
