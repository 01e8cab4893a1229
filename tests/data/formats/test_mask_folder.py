"""Plain mask folders: encodings, suffix matching, mask kinds, bad pairs, real nuclei round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pixelwise.core.convert import instances_from_id_map
from pixelwise.core.errors import FormatError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.formats import get_format, read_dataset, write_dataset
from pixelwise.data.formats.mask_folder import (
    CLASSES_JSON,
    detect_mask_kind,
    instances_from_label_image,
    match_masks,
    read_class_file,
    read_mask_folder,
    write_mask_folder,
)
from pixelwise.data.image_io import read_label_image, write_image, write_label_png

H, W = 10, 12
LABELS = np.zeros((H, W), np.uint8)
LABELS[1:5, 1:6] = 1
LABELS[6:9, 3:11] = 2
LABELS[0, :] = 255  # void row


def _image(path: Path, height: int = H, width: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.full((height, width, 3), 90, np.uint8))
    return path


def _save_mask(path: Path, labels: np.ndarray, encoding: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if encoding == "png8":
        Image.fromarray(labels.astype(np.uint8)).save(path)
    elif encoding == "png16":
        Image.fromarray(labels.astype(np.uint16)).save(path)
    elif encoding == "palette":
        write_label_png(path, labels, palette=np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8))
    elif encoding == "tif8":
        tifffile.imwrite(path, labels.astype(np.uint8))
    elif encoding == "tif16":
        tifffile.imwrite(path, labels.astype(np.uint16))
    return path


@pytest.mark.parametrize(
    "encoding, suffix",
    [("png8", ".png"), ("png16", ".png"), ("palette", ".png"), ("tif8", ".tif"), ("tif16", ".tiff")],
)
def test_semantic_masks_in_every_encoding(tmp_path: Path, encoding: str, suffix: str) -> None:
    _image(tmp_path / "images" / "a.jpg")
    _save_mask(tmp_path / "masks" / f"a{suffix}", LABELS, encoding)
    dataset = read_mask_folder(tmp_path, mask_kind="semantic")
    assert not dataset.issues
    semantic = dataset[0].annotation().semantic
    assert np.array_equal(semantic.labels, LABELS) and semantic.ignore_index == 255
    assert dataset.taxonomy.names == ["background", "class_1", "class_2"]
    assert dataset.taxonomy.stuff_ids == [0]


@pytest.mark.parametrize("mask_name", ["a.png", "a_mask.png", "a_label.tif", "a_labels.png", "a_instances.tiff", "a_MASK.png"])
def test_suffix_matching(tmp_path: Path, mask_name: str) -> None:
    _image(tmp_path / "images" / "a.png")
    _save_mask(tmp_path / "masks" / mask_name, LABELS, "tif8" if ".tif" in mask_name else "png8")
    dataset = read_mask_folder(tmp_path, mask_kind="semantic")
    assert not dataset.issues
    assert np.array_equal(dataset.by_id("a").annotation().semantic.labels, LABELS)


def test_match_masks_prefers_exact_stem_and_reports_extras() -> None:
    pairs, issues = match_masks([Path("a.jpg"), Path("b.jpg")], [Path("a_mask.png"), Path("a.png"), Path("z_mask.png")])
    assert pairs == [(Path("a.jpg"), Path("a.png")), (Path("b.jpg"), None)]
    assert [(i.path, i.severity) for i in issues] == [(Path("a_mask.png"), "warning"), (Path("z_mask.png"), "error")]


def test_images_and_masks_in_one_folder(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.jpg")
    _save_mask(tmp_path / "a_mask.png", LABELS, "png8")
    _save_mask(tmp_path / "b_label.png", LABELS, "png8")
    dataset = read_mask_folder(tmp_path, mask_kind="semantic")
    assert [s.image_id for s in dataset] == ["a", "b"] and not dataset.issues


def test_bad_pairs_reported_while_good_ones_load(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "good.png")
    _save_mask(tmp_path / "masks" / "good.png", LABELS, "png8")
    _image(tmp_path / "images" / "nomask.png")
    _save_mask(tmp_path / "masks" / "noimage.png", LABELS, "png8")
    _image(tmp_path / "images" / "small.png", 6, 6)
    _save_mask(tmp_path / "masks" / "small.png", LABELS, "png8")
    _image(tmp_path / "images" / "corrupt.png")
    (tmp_path / "masks" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    dataset = read_mask_folder(tmp_path, mask_kind="semantic")
    assert [s.image_id for s in dataset] == ["good", "nomask"]
    assert dataset.by_id("nomask").annotation().is_empty
    found = {(i.path.name, i.severity) for i in dataset.issues}
    assert found == {("nomask.png", "warning"), ("noimage.png", "error"), ("small.png", "error"), ("corrupt.png", "error")}
    small = next(i for i in dataset.issues if i.path.name == "small.png")
    assert "12x10" in small.reason and "6x6" in small.reason


@pytest.mark.parametrize(
    "arrays, class_list, expected",
    [
        ([np.array([[0, 255]], np.uint8)], False, "binary"),
        ([np.array([[0, 1]], np.uint8), np.zeros((2, 2), np.uint8)], False, "binary"),
        ([np.array([[0, 1, 255]], np.uint8)], False, "binary"),
        ([np.array([[0, 1, 2]], np.uint8)], False, "semantic"),
        ([np.array([[0, 1]], np.uint16)], False, "instance"),
        ([np.array([[0, 1]], np.uint8), np.array([[0, 900]], np.uint16)], False, "instance"),
        ([np.array([[0, 255]], np.uint8)], True, "semantic"),
    ],
)
def test_detect_mask_kind_rules(arrays: list[np.ndarray], class_list: bool, expected: str) -> None:
    assert detect_mask_kind(arrays, has_class_list=class_list) == expected


def test_auto_binary_with_void(tmp_path: Path) -> None:
    mask = np.zeros((H, W), np.uint8)
    mask[2:5, 2:5] = 1
    mask[5, :] = 255
    _image(tmp_path / "images" / "a.png")
    _save_mask(tmp_path / "masks" / "a.png", mask, "png8")
    dataset = read_mask_folder(tmp_path)
    assert dataset.taxonomy.names == ["background", "foreground"]
    labels = dataset[0].annotation().semantic.labels
    assert labels[3, 3] == 1 and labels[5, 0] == 255 and labels[0, 0] == 0 and labels.sum() == 9 + 255 * W


def test_auto_binary_0_255(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "a.png")
    _save_mask(tmp_path / "masks" / "a.png", (LABELS == 1).astype(np.uint8) * 255, "png8")
    labels = read_mask_folder(tmp_path)[0].annotation().semantic.labels
    assert np.array_equal(labels, (LABELS == 1).astype(np.uint8))


def test_instance_masks_8bit_with_class_file(tmp_path: Path) -> None:
    ids = np.zeros((H, W), np.uint8)
    ids[1:4, 1:4], ids[5:9, 6:11], ids[0, 10:] = 4, 9, 17
    _image(tmp_path / "images" / "a.png")
    _save_mask(tmp_path / "masks" / "a.png", ids, "png8")
    (tmp_path / "labels.txt").write_text("__ignore__\nbackground\ncell\nnucleus\n")
    with pytest.raises(FormatError, match="instance_class 5"):
        read_mask_folder(tmp_path, mask_kind="instance", instance_class=5)
    dataset = read_mask_folder(tmp_path, mask_kind="instance", instance_class=2)
    assert dataset.taxonomy.names == ["background", "cell", "nucleus"]
    annotation = dataset[0].annotation()
    assert annotation.instances.ids.tolist() == [4, 9, 17]
    assert annotation.instances.class_ids.tolist() == [2, 2, 2]
    assert np.array_equal(annotation.semantic.labels, np.where(ids > 0, 2, 0))


def test_instances_from_label_image_matches_dense_split() -> None:
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 6, size=(13, 9)).astype(np.uint16) * 7
    ids[-1, -1], ids[0, 0] = 35, 14  # first and last pixels set: empty leading and trailing zero runs
    fast = instances_from_label_image(ids, 1)
    dense = instances_from_id_map(ids, class_of={int(v): 1 for v in np.unique(ids)})
    assert fast.ids.tolist() == dense.ids.tolist()
    assert np.array_equal(fast.dense_masks(), dense.dense_masks())
    assert fast.rles() == dense.rles()
    assert len(instances_from_label_image(np.zeros((3, 3), np.uint8), 1)) == 0


def test_rgb_semantic_masks_use_class_colours(tmp_path: Path) -> None:
    taxonomy = Taxonomy((ClassInfo(0, "background", (0, 0, 0), False), ClassInfo(1, "road", (128, 64, 128)),
                         ClassInfo(2, "car", (0, 0, 142))))
    (tmp_path / CLASSES_JSON).write_text(json.dumps(taxonomy.to_dict()))
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[LABELS == 1] = (128, 64, 128)
    rgb[LABELS == 2] = (0, 0, 142)
    rgb[LABELS == 255] = (255, 255, 255)
    _image(tmp_path / "images" / "a.png")
    _image(tmp_path / "images" / "b.png")
    Image.fromarray(rgb).save(_image(tmp_path / "masks" / "a.png"))
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "masks" / "b.png")
    dataset = read_mask_folder(tmp_path)
    assert dataset.taxonomy == taxonomy
    assert [s.image_id for s in dataset] == ["a"]
    assert np.array_equal(dataset[0].annotation().semantic.labels, LABELS)
    (issue,) = dataset.issues
    assert issue.path.name == "b.png" and "#010203" in issue.reason


@pytest.mark.parametrize(
    "content, names, things",
    [
        ('["background", "cat", "dog"]', ["background", "cat", "dog"], [1, 2]),
        ('{"0": "bg", "5": "cat"}', ["bg", "cat"], [5]),
        (None, ["background", "cat"], [1]),
    ],
)
def test_class_files(tmp_path: Path, content: str | None, names: list[str], things: list[int]) -> None:
    if content is None:
        path = tmp_path / "labels.txt"
        path.write_text("background\ncat\n\n")
    else:
        path = tmp_path / CLASSES_JSON
        path.write_text(content)
    taxonomy, extras = read_class_file(path)
    assert taxonomy.names == names and taxonomy.thing_ids == things and extras == {}


def test_unknown_ids_against_class_file_warn(tmp_path: Path) -> None:
    (tmp_path / CLASSES_JSON).write_text('["background", "cat"]')
    _image(tmp_path / "images" / "a.png")
    _save_mask(tmp_path / "masks" / "a.png", LABELS, "png8")
    dataset = read_mask_folder(tmp_path)
    assert len(dataset) == 1
    (issue,) = dataset.issues
    assert issue.severity == "warning" and "[2]" in issue.reason


def _dataset(tmp_path: Path, annotations: dict[str, Annotation], taxonomy: Taxonomy, metadata: dict | None = None
             ) -> SegmentationDataset:
    samples = []
    for image_id, annotation in annotations.items():
        height, width = annotation.shape
        samples.append(Sample.with_annotation(image_id, _image(tmp_path / "src" / f"{image_id}.jpg", height, width),
                                              annotation, metadata))
    return SegmentationDataset(taxonomy, samples, name="toy")


@pytest.mark.parametrize("mask_format", ["png", "tiff"])
def test_semantic_write_round_trip_8_and_16_bit(tmp_path: Path, mask_format: str) -> None:
    taxonomy = Taxonomy((ClassInfo(0, "background", (0, 0, 0), False), ClassInfo(1, "a", (9, 9, 9)),
                         ClassInfo(2, "b", (1, 2, 3)), ClassInfo(300, "rare", (7, 7, 7))))
    wide = LABELS.astype(np.uint16)
    wide[2, 2] = 300
    dataset = _dataset(tmp_path, {"small": Annotation(SemanticMap(LABELS)), "wide": Annotation(SemanticMap(wide))},
                       taxonomy, {"camera": "x"})
    out = write_mask_folder(dataset, tmp_path / "out", mask_format=mask_format)
    suffix = ".png" if mask_format == "png" else ".tif"
    assert read_label_image(out / "masks" / f"small{suffix}").dtype == np.uint8
    assert read_label_image(out / "masks" / f"wide{suffix}").dtype == np.uint16
    back = read_mask_folder(out)
    assert back.taxonomy == taxonomy and not back.issues
    for image_id, labels in (("small", LABELS), ("wide", wide)):
        sample = back.by_id(image_id)
        assert sample.metadata == {"camera": "x"} and sample.image_path.suffix == ".jpg"
        assert np.array_equal(sample.annotation().semantic.labels, labels)


def test_semantic_written_from_instances_and_palette_option(tmp_path: Path) -> None:
    taxonomy = Taxonomy.from_names(["background", "cat"], stuff=["background"])
    masks = np.zeros((1, H, W), bool)
    masks[0, 2:4, 2:4] = True
    dataset = _dataset(tmp_path, {"a": Annotation(instances=InstanceSet(H, W, np.array([1]), masks))}, taxonomy)
    out = write_mask_folder(dataset, tmp_path / "out", palette=True)
    assert Image.open(out / "masks" / "a.png").mode == "P"
    assert np.array_equal(read_mask_folder(out)[0].annotation().semantic.labels, masks[0].astype(np.uint8))


def test_instance_write_warns_when_classes_collapse(tmp_path: Path) -> None:
    taxonomy = Taxonomy.from_names(["background", "cat", "dog"], stuff=["background"])
    masks = np.zeros((3, H, W), bool)
    masks[0, 1:3, 1:3] = masks[1, 5:8, 5:8] = masks[2, 0, :] = True
    instances = InstanceSet(H, W, np.array([1, 2, 1]), masks)
    dataset = _dataset(tmp_path, {"a": Annotation(instances=instances), "sem": Annotation(SemanticMap(LABELS))}, taxonomy)
    out = write_dataset(dataset, tmp_path / "out", "masks", mask_kind="instance", progress=False)
    assert any("classes [2]" in i.reason for i in dataset.issues)
    assert any(i.image_id == "sem" and "no instance view" in i.reason for i in dataset.issues)
    assert not read_label_image(out / "masks" / "sem.png").any()
    assert json.loads((out / CLASSES_JSON).read_text())["instance_class"] == 1
    back = read_dataset(out, "masks")[0].annotation().instances
    assert back.ids.tolist() == [1, 2, 3] and back.class_ids.tolist() == [1, 1, 1]
    assert np.array_equal(back.dense_masks(), masks)


def test_writer_rejects_unknown_kind(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, {"a": Annotation(SemanticMap(LABELS))}, Taxonomy.from_names(["background"]))
    with pytest.raises(FormatError, match="binary"):
        write_mask_folder(dataset, tmp_path / "out", mask_kind="binary")


def test_explicit_pairs_with_a_missing_file(tmp_path: Path) -> None:
    _image(tmp_path / "x.png")
    _save_mask(tmp_path / "y.png", LABELS, "png8")
    dataset = read_mask_folder(tmp_path, pairs=[("x.png", "y.png"), ("x.png", "missing.png")], mask_kind="semantic")
    assert len(dataset) == 1 and dataset[0].image_id == "x"
    assert [i.path.name for i in dataset.issues] == ["missing.png"]


@pytest.fixture
def nuclei(data_dir: Path) -> Path:
    return data_dir / "nuclei_dsb2018"


def test_real_nuclei_instances(nuclei: Path) -> None:
    dataset = read_mask_folder(nuclei, mask_kind="instance", pairs=[("image.tif", "instances.tif")])
    assert dataset.taxonomy.names == ["background", "object"] and not dataset.issues
    sample = dataset[0]
    assert (sample.height, sample.width) == (512, 512)
    instances = sample.annotation().instances
    assert len(instances) == 125 and isinstance(instances.masks, list)
    original = tifffile.imread(nuclei / "instances.tif")
    assert instances.ids.tolist() == [int(v) for v in np.unique(original) if v]
    assert int(instances.areas().sum()) == int((original > 0).sum())


@pytest.mark.parametrize("mask_format, suffix", [("png", ".png"), ("tiff", ".tif")])
def test_real_nuclei_round_trip_keeps_16_bit_ids(tmp_path: Path, nuclei: Path, mask_format: str, suffix: str) -> None:
    dataset = read_dataset(nuclei, "masks", mask_kind="instance", pairs=[("image.tif", "instances.tif")])
    out = write_dataset(dataset, tmp_path / "out", "masks", mask_kind="instance", mask_format=mask_format)
    written = read_label_image(out / "masks" / f"image{suffix}")
    original = tifffile.imread(nuclei / "instances.tif")
    assert written.dtype == np.uint16 and np.array_equal(written, original)
    assert (out / "images" / "image.tif").read_bytes() == (nuclei / "image.tif").read_bytes()
    back = read_dataset(out, "masks")  # auto: the kind recorded in classes.json
    instances = back[0].annotation().instances
    assert len(instances) == 125
    assert instances.rles() == dataset[0].annotation().instances.rles()


def test_nuclei_auto_detects_instances_from_16_bit(tmp_path: Path, nuclei: Path) -> None:
    shutil.copy(nuclei / "image.tif", _image(tmp_path / "images" / "cells.png").with_name("cells.tif"))
    (tmp_path / "images" / "cells.png").unlink()
    shutil.copy(nuclei / "instances.tif", (tmp_path / "masks").mkdir() or tmp_path / "masks" / "cells_instances.tif")
    dataset = read_mask_folder(tmp_path)
    assert len(dataset[0].annotation().instances) == 125


def test_registered() -> None:
    spec = get_format("masks")
    assert spec.views == frozenset({"semantic", "instances"})
    with pytest.raises(FormatError, match="mask_kind"):
        spec.reader(Path("."), mask_kind="colour")
