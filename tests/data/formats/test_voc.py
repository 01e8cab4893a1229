"""Pascal VOC format: real sample, pixel-exact round trips, labels.txt, splits, bad files."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.errors import FormatError, TaxonomyError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.formats import get_format, read_dataset, write_dataset
from pixelwise.data.formats.voc import (
    VOC_CLASSES,
    read_labels_txt,
    read_voc,
    voc_taxonomy,
    write_labels_txt,
    write_voc,
)
from pixelwise.data.image_io import read_label_image, write_image, write_label_png

H, W = 12, 16
TAX = voc_taxonomy()
PERSON, CHAIR = TAX.id_of("person"), TAX.id_of("chair")


def _image(path: Path, height: int = H, width: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    write_image(path, rgb)
    return path


def _scene() -> Annotation:
    """Two persons and a chair on background, with a VOC-like void band around person 1."""
    masks = np.zeros((3, H, W), bool)
    masks[0, 2:6, 2:6] = True
    masks[1, 6:11, 9:14] = True
    masks[2, 1:4, 10:15] = True
    instances = InstanceSet(H, W, np.array([PERSON, PERSON, CHAIR]), masks)
    labels = np.zeros((H, W), np.uint8)
    for mask, class_id in zip(masks, instances.class_ids):
        labels[mask] = class_id
    labels[1, 1:7] = 255  # void band on background, outside the instance
    return Annotation(SemanticMap(labels), instances)


def _dataset(tmp_path: Path, suffix: str = ".jpg", n: int = 1, metadata: dict | None = None) -> SegmentationDataset:
    samples = [
        Sample.with_annotation(f"img{i}", _image(tmp_path / "src" / f"img{i}{suffix}"), _scene(), metadata)
        for i in range(n)
    ]
    return SegmentationDataset(TAX, samples, name="scene")


def _voc_root(tmp_path: Path, class_map: np.ndarray, object_map: np.ndarray | None = None, image_hw=(H, W)) -> Path:
    root = tmp_path / "voc"
    _image(root / "JPEGImages" / "a.jpg", *image_hw)
    (root / "SegmentationClass").mkdir(parents=True)
    write_label_png(root / "SegmentationClass" / "a.png", class_map, palette=TAX.palette())
    if object_map is not None:
        (root / "SegmentationObject").mkdir(parents=True)
        write_label_png(root / "SegmentationObject" / "a.png", object_map, palette=TAX.palette())
    return root


# --------------------------------------------------------------------------- real data


def test_real_sample_has_19_instances_of_4_classes(data_dir: Path) -> None:
    ds = read_voc(data_dir / "voc_sample")
    assert ds.issues == [] and len(ds) == 1 and ds.taxonomy.names == list(VOC_CLASSES)
    sample = ds[0]
    assert (sample.image_id, sample.height, sample.width) == ("sample", 375, 500)
    ann = sample.annotation()
    assert ann.semantic.labels.shape == (375, 500)
    names = Counter(ds.taxonomy.name_of(c) for c in ann.instances.class_ids)
    assert names == {"bottle": 1, "chair": 8, "person": 7, "diningtable": 3}
    assert ann.instances.ids.tolist() == list(range(1, 20))


def test_real_sample_round_trip_is_pixel_exact(data_dir: Path, tmp_path: Path) -> None:
    ds = read_voc(data_dir / "voc_sample")
    out = write_voc(ds, tmp_path / "out")
    again = read_voc(out)
    a, b = ds[0].annotation(), again[0].annotation()
    np.testing.assert_array_equal(a.semantic.labels, b.semantic.labels)
    np.testing.assert_array_equal(a.instances.masks, b.instances.masks)
    np.testing.assert_array_equal(a.instances.class_ids, b.instances.class_ids)
    assert (out / "JPEGImages" / "sample.jpg").read_bytes() == (data_dir / "voc_sample/JPEGImages/sample.jpg").read_bytes()
    assert again.taxonomy == ds.taxonomy and again.issues == []


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_round_trip_semantic_and_instances(tmp_path: Path, suffix: str) -> None:
    ds = _dataset(tmp_path, suffix)
    out = write_dataset(ds, tmp_path / "voc", "voc")
    again = read_dataset(out, "voc")
    a, b = ds[0].annotation(), again[0].annotation()
    np.testing.assert_array_equal(a.semantic.labels, b.semantic.labels)
    np.testing.assert_array_equal(a.instances.masks, b.instances.masks)
    assert b.instances.class_ids.tolist() == [PERSON, PERSON, CHAIR]
    assert (out / "JPEGImages" / "img0.jpg").is_file()
    assert (out / "ImageSets" / "Segmentation" / "default.txt").read_text() == "img0\n"
    assert (out / "labels.txt").read_text().splitlines() == list(VOC_CLASSES)


def test_metadata_round_trips_through_manifest(tmp_path: Path) -> None:
    meta = {"camera": "cam-7", "tags": ["night", "rain"], "custom": {"k": 1}}
    ds = _dataset(tmp_path, metadata=meta)
    again = read_voc(write_voc(ds, tmp_path / "voc"))
    assert again[0].metadata == meta


def test_custom_taxonomy_round_trips_with_colours_and_flags(tmp_path: Path) -> None:
    tax = Taxonomy((ClassInfo(0, "floor", (10, 20, 30), False), ClassInfo(3, "robot", (200, 0, 9), True, "machine")))
    labels = np.zeros((H, W), np.uint8)
    labels[3:6, 3:6] = 3
    sample = Sample.with_annotation("r", _image(tmp_path / "r.jpg"), Annotation(SemanticMap(labels)))
    out = write_voc(SegmentationDataset(tax, [sample]), tmp_path / "voc")
    assert (out / "labels.txt").read_text().splitlines() == ["floor", "__unused_1__", "__unused_2__", "robot"]
    again = read_voc(out)
    assert again.taxonomy == tax
    assert again[0].annotation().instances is None
    np.testing.assert_array_equal(again[0].annotation().semantic.labels, labels)


def test_semantic_only_sample_has_no_object_png(tmp_path: Path) -> None:
    labels = np.zeros((H, W), np.uint8)
    labels[2:5, 2:5] = PERSON
    sample = Sample.with_annotation("s", _image(tmp_path / "s.jpg"), Annotation(SemanticMap(labels)))
    out = write_voc(SegmentationDataset(TAX, [sample]), tmp_path / "voc")
    assert not (out / "SegmentationObject" / "s.png").exists()
    assert read_voc(out)[0].annotation().instances is None


def test_writer_derives_semantic_from_instances(tmp_path: Path) -> None:
    scene = _scene()
    sample = Sample.with_annotation("i", _image(tmp_path / "i.jpg"), Annotation(instances=scene.instances))
    again = read_voc(write_voc(SegmentationDataset(TAX, [sample]), tmp_path / "voc"))
    labels = again[0].annotation().semantic.labels
    assert labels[3, 3] == PERSON and labels[2, 12] == CHAIR and labels[0, 0] == 0
    assert len(again[0].annotation().instances) == 3


def test_crowd_instance_becomes_void_in_object_png(tmp_path: Path) -> None:
    scene = _scene()
    crowd = InstanceSet(H, W, scene.instances.class_ids, scene.instances.masks, iscrowd=np.array([False, True, False]))
    sample = Sample.with_annotation("c", _image(tmp_path / "c.jpg"), Annotation(scene.semantic, crowd))
    out = write_voc(SegmentationDataset(TAX, [sample]), tmp_path / "voc")
    objects = read_label_image(out / "SegmentationObject" / "c.png")
    assert objects[8, 10] == 255 and objects[3, 3] == 1 and objects[2, 12] == 2
    assert read_voc(out)[0].annotation().instances.class_ids.tolist() == [PERSON, CHAIR]


def test_more_than_254_instances_is_reported_and_skipped(tmp_path: Path) -> None:
    masks = np.zeros((255, 16, 16), bool)
    for i in range(255):
        masks[i].flat[i] = True
    many = InstanceSet(16, 16, np.full(255, PERSON), masks)
    big = Sample.with_annotation("big", _image(tmp_path / "big.jpg", 16, 16), Annotation(instances=many))
    ok = Sample.with_annotation("ok", _image(tmp_path / "ok.jpg"), _scene())
    ds = SegmentationDataset(TAX, [big, ok])
    out = write_voc(ds, tmp_path / "voc")
    assert [s.image_id for s in read_voc(out)] == ["ok"]
    assert any("at most 254" in i.reason and i.image_id == "big" for i in ds.issues)
    assert not (out / "JPEGImages" / "big.jpg").exists()


def test_unsafe_and_clashing_ids_become_file_safe(tmp_path: Path) -> None:
    samples = [
        Sample.with_annotation(image_id, _image(tmp_path / f"{k}.jpg"), _scene(), {"n": k})
        for k, image_id in enumerate(["a/b", "a_b", "c d"])
    ]
    again = read_voc(write_voc(SegmentationDataset(TAX, samples), tmp_path / "voc"))
    assert sorted((s.image_id, s.metadata["n"]) for s in again) == [("a_b", 0), ("a_b_2", 1), ("c_d", 2)]


def test_class_id_above_254_is_refused(tmp_path: Path) -> None:
    tax = Taxonomy((ClassInfo(0, "bg"), ClassInfo(300, "far")))
    with pytest.raises(TaxonomyError, match="300"):
        write_voc(SegmentationDataset(tax, []), tmp_path / "voc")


# --------------------------------------------------------------------------- reading details


def test_instance_class_vote_ignores_void_pixels(tmp_path: Path) -> None:
    classes = np.zeros((H, W), np.uint8)
    objects = np.zeros((H, W), np.uint8)
    objects[2:5, 2:5] = 1  # 9 pixels: 6 void in the class map, 3 chair
    classes[2:5, 2:5] = 255
    classes[4, 2:5] = CHAIR
    objects[7:9, 7:9] = 2  # wholly void: no class, dropped
    classes[7:9, 7:9] = 255
    root = _voc_root(tmp_path, classes, objects)
    ann = read_voc(root)[0].annotation()
    assert ann.instances.class_ids.tolist() == [CHAIR]
    assert ann.instances.ids.tolist() == [1]
    assert ann.semantic.labels[2, 2] == 255


def test_missing_object_png_gives_no_instances(tmp_path: Path) -> None:
    root = _voc_root(tmp_path, np.zeros((H, W), np.uint8))
    ann = read_voc(root)[0].annotation()
    assert ann.instances is None and ann.semantic.class_ids() == [0]


@pytest.mark.parametrize("which", ["class", "object"])
def test_wrong_mask_size_is_reported_and_skipped(tmp_path: Path, which: str) -> None:
    small = np.zeros((8, 8), np.uint8)
    good = np.zeros((H, W), np.uint8)
    root = _voc_root(tmp_path, small if which == "class" else good, good if which == "class" else small)
    ds = read_voc(root)
    assert len(ds) == 0
    assert [i.reason for i in ds.issues] == [f"mask is 8x8 but image is {W}x{H} (WxH)"]
    assert ds.issues[0].path.parent.name == ("SegmentationClass" if which == "class" else "SegmentationObject")


def test_unknown_class_id_is_a_warning_and_sample_kept(tmp_path: Path) -> None:
    classes = np.zeros((H, W), np.uint8)
    classes[0, 0] = 40
    ds = read_voc(_voc_root(tmp_path, classes))
    assert len(ds) == 1
    assert [(i.severity, i.reason) for i in ds.issues] == [("warning", "class ids [40] are not in the taxonomy")]


def test_broken_mask_and_missing_image_are_reported(tmp_path: Path) -> None:
    root = _voc_root(tmp_path, np.zeros((H, W), np.uint8))
    (root / "SegmentationClass" / "broken.png").write_bytes(b"")
    _image(root / "JPEGImages" / "broken.jpg")
    write_label_png(root / "SegmentationClass" / "orphan.png", np.zeros((H, W), np.uint8))
    ds = read_voc(root)
    assert [s.image_id for s in ds] == ["a"]
    reasons = {i.image_id: i.reason for i in ds.issues}
    assert "empty" in reasons["broken"] and "image missing" in reasons["orphan"]


def test_split_selects_ids_and_unknown_split_lists_available(tmp_path: Path) -> None:
    out = write_voc(_dataset(tmp_path, n=3), tmp_path / "voc")
    (out / "ImageSets" / "Segmentation" / "train.txt").write_text("img2\nimg0\n")
    assert [s.image_id for s in read_voc(out, split="train")] == ["img2", "img0"]
    assert len(read_voc(out)) == 3
    with pytest.raises(FormatError, match=r"available splits: \['default', 'train'\]"):
        read_voc(out, split="val")


def test_not_a_voc_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="folder missing"):
        read_voc(tmp_path)


# --------------------------------------------------------------------------- labels.txt


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["__ignore__", "_background_", "cat"], [(0, "_background_", False), (1, "cat", True)]),
        (["background", "a", "", "b"], [(0, "background", False), (1, "a", True), (2, "b", True)]),
        (["bg", "__unused_1__", "dog"], [(0, "bg", True), (2, "dog", True)]),
    ],
)
def test_read_labels_txt(tmp_path: Path, lines: list[str], expected: list[tuple[int, str, bool]]) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(lines) + "\n")
    tax = read_labels_txt(path)
    assert [(c.id, c.name, c.is_thing) for c in tax] == expected
    assert tax.ignore_index == 255


@pytest.mark.parametrize("lines, message", [(["a", "a"], "duplicate"), (["__ignore__"], "no class")])
def test_read_labels_txt_errors(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(lines))
    with pytest.raises(FormatError, match=message):
        read_labels_txt(path)


def test_labels_txt_round_trip_keeps_gaps(tmp_path: Path) -> None:
    tax = Taxonomy((ClassInfo(0, "background", is_thing=False), ClassInfo(2, "b"), ClassInfo(5, "e")))
    again = read_labels_txt(write_labels_txt(tax, tmp_path / "labels.txt"))
    assert [(c.id, c.name, c.is_thing) for c in again] == [(0, "background", False), (2, "b", True), (5, "e", True)]


def test_labels_txt_in_voc_root_is_used(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "voc"
    shutil.copytree(data_dir / "voc_sample", root)
    (root / "labels.txt").write_text("\n".join(["__ignore__", *VOC_CLASSES[:5], "BOTTLE", *VOC_CLASSES[6:]]))
    ds = read_voc(root, check_ids=False)
    assert ds.taxonomy.name_of(5) == "BOTTLE" and len(ds.taxonomy) == 21


def test_registered_views() -> None:
    spec = get_format("voc")
    assert spec.views == frozenset({"semantic", "instances"})
    assert spec.reader is read_voc and spec.writer is write_voc
