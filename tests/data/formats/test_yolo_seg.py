"""YOLO-seg format: pixel-exact round trips of bridged rings, bad lines, data.yaml forms, layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.errors import FormatError
from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.masks import Polygon, mask_to_polygons, polygons_to_mask
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.formats import get_format, read_dataset, write_dataset
from pixelwise.data.formats import yolo_seg
from pixelwise.data.formats.yolo_seg import (
    TAXONOMY_FILE,
    bridge_polygons,
    mask_to_yolo_rings,
    parse_yolo_label_file,
    read_data_yaml,
    read_yolo_seg,
    write_yolo_seg,
)
from pixelwise.data.image_io import write_image

H, W = 16, 20
# Non-contiguous ids and a stuff background: only a taxonomy file can restore them.
TAX = Taxonomy((ClassInfo(0, "background", (0, 0, 0), False), ClassInfo(3, "cell", (255, 0, 0)),
                ClassInfo(7, "debris", (0, 255, 0))))
CELL, DEBRIS = 3, 7


def _image(path: Path, height: int = H, width: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.full((height, width, 3), 40, np.uint8))
    return path


def _mask(*boxes: tuple[int, int, int, int], off: tuple[tuple[int, int, int, int], ...] = ()) -> np.ndarray:
    """``(H, W)`` bool: union of row/col boxes ``(r0, r1, c0, c1)`` minus the ``off`` boxes."""
    mask = np.zeros((H, W), bool)
    for r0, r1, c0, c1 in boxes:
        mask[r0:r1, c0:c1] = True
    for r0, r1, c0, c1 in off:
        mask[r0:r1, c0:c1] = False
    return mask


def _diagonal() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    idx = np.arange(min(H, W))
    mask[idx, idx] = True
    return mask


SHAPES = {
    "square_with_hole": _mask((2, 10, 2, 10), off=((4, 7, 4, 6),)),
    "two_holes": _mask((1, 12, 1, 15), off=((3, 5, 3, 5), (7, 10, 9, 13))),
    "two_parts": _mask((1, 4, 1, 4), (8, 14, 10, 18)),
    "parts_with_holes_and_island": _mask((0, 9, 0, 9), (10, 16, 12, 20), off=((2, 7, 2, 7), (12, 14, 14, 18)))
    | _mask((4, 5, 4, 5)),
    "thin_horizontal_line": _mask((5, 6, 0, W)),
    "thin_vertical_line": _mask((0, H, 7, 8)),
    "diagonal_staircase": _diagonal(),
    "single_pixel": _mask((0, 1, 0, 1)),
    "full_frame": _mask((0, H, 0, W)),
    "frame_border_ring": _mask((0, H, 0, W), off=((1, H - 1, 1, W - 1),)),
    "corner_touching_parts": _mask((2, 4, 2, 4), (4, 6, 4, 6)),
    "bottom_right_corner": _mask((H - 3, H, W - 4, W)),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_bridged_ring_rasterises_to_the_exact_mask(name: str) -> None:
    mask = SHAPES[name]
    rings = mask_to_yolo_rings(mask)
    assert len(rings) == 1
    assert np.array_equal(polygons_to_mask(rings, H, W), mask)


def test_bridged_ring_exact_on_random_masks() -> None:
    rng = np.random.default_rng(3)
    for _ in range(80):
        height, width = (int(v) for v in rng.integers(2, 24, size=2))
        mask = rng.random((height, width)) < rng.uniform(0.2, 0.8)
        if not mask.any():
            continue
        (ring,) = mask_to_yolo_rings(mask)
        assert np.array_equal(polygons_to_mask([ring], height, width), mask)


def test_bridge_orients_holes_against_the_exterior_and_keeps_area() -> None:
    outer = np.array([[0, 0], [0, 6], [6, 6], [6, 0]], float)
    hole = np.array([[2, 2], [4, 2], [4, 4], [2, 4]], float)
    ring = bridge_polygons([Polygon(outer, (hole,))])
    x, y = ring[:, 0], ring[:, 1]
    signed = (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2
    assert signed == pytest.approx(36 - 4)  # bridges add no area, the hole subtracts
    assert not np.any(np.all(ring[1:] == ring[:-1], axis=1))


def test_bridge_of_nothing_raises() -> None:
    with pytest.raises(ValueError):
        bridge_polygons([])


def _dataset(tmp_path: Path, samples: dict[str, tuple[Annotation, dict]], taxonomy: Taxonomy = TAX) -> SegmentationDataset:
    items = []
    for image_id, (annotation, metadata) in samples.items():
        height, width = annotation.shape
        items.append(Sample.with_annotation(image_id, _image(tmp_path / "src" / f"{image_id}.png", height, width),
                                            annotation, metadata))
    return SegmentationDataset(taxonomy, items, name="toy")


def _instances(*pairs: tuple[np.ndarray, int], crowd: list[bool] | None = None) -> Annotation:
    masks = np.stack([m for m, _ in pairs])
    return Annotation(instances=InstanceSet(H, W, np.array([c for _, c in pairs]), masks, iscrowd=crowd))


def test_round_trip_is_pixel_exact_with_splits_and_metadata(tmp_path: Path) -> None:
    touching_left, touching_right = _mask((3, 9, 2, 8)), _mask((3, 9, 8, 14))
    samples = {
        "holes": (_instances((SHAPES["two_holes"], CELL), (SHAPES["single_pixel"], DEBRIS)), {"split": "train", "camera": "c1"}),
        "touching": (_instances((touching_left, CELL), (touching_right, CELL)), {"split": "train"}),
        "parts": (_instances((SHAPES["parts_with_holes_and_island"], DEBRIS), (SHAPES["diagonal_staircase"], CELL)),
                  {"split": "val", "tags": ["a", "b"]}),
        "borders": (_instances((SHAPES["frame_border_ring"], CELL), (SHAPES["bottom_right_corner"], DEBRIS)),
                    {"split": "val"}),
    }
    dataset = _dataset(tmp_path, samples)
    out = write_yolo_seg(dataset, tmp_path / "yolo")
    assert not dataset.issues
    assert (out / "images" / "val" / "parts.png").is_file()
    assert (out / "labels" / "train" / "touching.txt").read_text().count("\n") == 2
    back = read_yolo_seg(out)
    assert not back.issues
    assert back.taxonomy == TAX
    assert [s.image_id for s in back] == ["holes", "touching", "borders", "parts"]  # by split, then file name
    for sample in back:
        original = dataset.by_id(sample.image_id)
        assert sample.metadata == original.metadata
        got, want = sample.annotation().instances, original.annotation().instances
        assert isinstance(got.masks, list)  # held as RLE
        assert got.class_ids.tolist() == want.class_ids.tolist()
        assert np.array_equal(got.dense_masks(), want.dense_masks())
    assert [s.image_id for s in read_yolo_seg(out, split="val")] == ["borders", "parts"]


def test_one_line_per_instance_even_with_holes_and_parts(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, {"a": (_instances((SHAPES["parts_with_holes_and_island"], CELL)), {})})
    out = write_yolo_seg(dataset, tmp_path / "yolo")
    lines = (out / "labels" / "a.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("0 ")  # cell is thing index 0


def test_flat_layout_written_when_no_split(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, {"a": (_instances((SHAPES["two_parts"], DEBRIS)), {"source": "lab"})})
    out = write_yolo_seg(dataset, tmp_path / "yolo")
    assert (out / "images" / "a.png").is_file() and (out / "labels" / "a.txt").is_file()
    data = read_data_yaml(out / "data.yaml")
    assert data["train"] == data["val"] == "images"
    assert data["names"] == {0: "cell", 1: "debris"} and data["nc"] == 2
    assert "path" not in data
    back = read_yolo_seg(out)
    assert back[0].metadata == {"source": "lab"}  # no split invented
    assert back[0].annotation().instances.class_ids.tolist() == [DEBRIS]


def test_coordinates_precise_enough_for_wide_images(tmp_path: Path) -> None:
    height, width = 4, 3001
    mask = np.zeros((height, width), bool)
    mask[1:3, 1234:2999] = True
    mask[2, 1500] = False
    annotation = Annotation(instances=InstanceSet(height, width, np.array([CELL]), mask[None]))
    dataset = _dataset(tmp_path, {"wide": (annotation, {})})
    out = write_yolo_seg(dataset, tmp_path / "yolo")
    values = (out / "labels" / "wide.txt").read_text().split()[1:]
    assert max(len(v.split(".")[-1]) for v in values if "." in v) <= 7
    assert np.array_equal(read_yolo_seg(out)[0].annotation().instances.dense_masks()[0], mask)


def test_writer_falls_back_to_one_line_per_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = yolo_seg.bridge_polygons

    def broken(polygons):  # drops every part but the first when asked to join several
        return real(polygons[:1])

    monkeypatch.setattr(yolo_seg, "bridge_polygons", broken)
    mask = SHAPES["two_parts"]
    dataset = _dataset(tmp_path, {"a": (_instances((mask, CELL)), {})})
    out = write_yolo_seg(dataset, tmp_path / "yolo")
    assert len((out / "labels" / "a.txt").read_text().splitlines()) == 2
    assert any("split into 2 lines" in i.reason and i.severity == "warning" for i in dataset.issues)
    back = read_yolo_seg(out)[0].annotation().instances
    assert len(back) == 2 and np.array_equal(back.dense_masks().any(axis=0), mask)


def test_crowd_stuff_empty_and_semantic_only(tmp_path: Path) -> None:
    crowd = _instances((SHAPES["two_parts"], CELL), (SHAPES["single_pixel"], 0), (np.zeros((H, W), bool), CELL),
                       crowd=[True, False, False])
    semantic_only = Annotation(semantic=SemanticMap(SHAPES["two_parts"].astype(np.uint8) * CELL))
    dataset = _dataset(tmp_path, {"crowd": (crowd, {}), "sem": (semantic_only, {})})
    out = write_yolo_seg(dataset, tmp_path / "yolo")
    reasons = [i.reason for i in dataset.issues]
    assert any("stuff class" in r for r in reasons)
    assert any("empty mask" in r for r in reasons)
    assert any("semantic only" in r for r in reasons)
    assert not (out / "labels" / "sem.txt").exists() and (out / "images" / "sem.png").exists()
    back = read_yolo_seg(out)
    crowd_back = back.by_id("crowd").annotation().instances
    assert crowd_back.class_ids.tolist() == [CELL] and not crowd_back.iscrowd.any()  # crowd becomes a plain instance
    assert len(back.by_id("sem").annotation().instances) == 0


BAD_LABELS = """0 0.1 0.1 0.5 0.1 0.5 0.5
0 0.1 0.1 0.5 0.5
1 0.1 0.1 0.5 0.1 0.5
2 0.1 0.1 0.5 0.1 0.5 0.5
0 0.1 0.1 abc 0.1 0.5 0.5
1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.1

x 0.1 0.1 0.5 0.1 0.5 0.5
1 -0.2 0.0 1.3 0.0 1.3 0.5 -0.2 0.5
0 0.2 0.2 0.6 0.2 0.6 nan
1 0 0 0.5 0 0.5 1.0000004
"""

EXPECTED_BAD = [
    (2, "polygon with 2 points", "error"),
    (3, "odd number of coordinates", "error"),
    (4, "unknown class index 2", "error"),
    (5, "non-numeric token 'abc'", "error"),
    (8, "non-numeric token 'x'", "error"),
    (9, "clipped", "warning"),
    (10, "non-finite", "error"),
]


def _write_flat(root: Path, label_text: str | None, names: object = ("cell", "debris"), stem: str = "a") -> Path:
    _image(root / "images" / f"{stem}.png")
    if label_text is not None:
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{stem}.txt").write_text(label_text)
    if names is not None:
        (root / "data.yaml").write_text(json.dumps({"train": "images", "val": "images", "names": names}))
    return root


def test_bad_lines_are_reported_with_line_numbers_and_the_rest_loads(tmp_path: Path) -> None:
    root = _write_flat(tmp_path / "ds", BAD_LABELS)
    dataset = read_yolo_seg(root)
    assert len(dataset) == 1
    issues = sorted(dataset.issues, key=lambda i: int(i.reason.split()[1].rstrip(":")))
    assert len(issues) == len(EXPECTED_BAD)
    for issue, (line, text, severity) in zip(issues, EXPECTED_BAD):
        assert issue.reason.startswith(f"line {line}:"), issue.reason
        assert text in issue.reason and issue.severity == severity
        assert issue.path == root / "labels" / "a.txt"
    instances = dataset[0].annotation().instances
    assert instances.class_ids.tolist() == [0, 1, 1, 1]  # lines 1, 6, 9 (clipped) and 11 (within tolerance)
    clipped = instances.dense_masks()[2]
    assert clipped[: H // 2, :].all() and not clipped[H // 2:, :].any()


def test_parse_label_file_tolerates_tiny_excess(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("0 0 0 1.0000005 0 1 1\n")
    lines, issues = parse_yolo_label_file(path, {0})
    assert not issues and lines[0].points.max() == 1.0


@pytest.mark.parametrize(
    "names, expected",
    [
        (["cell", "debris"], ["cell", "debris"]),
        ({0: "cell", 1: "debris"}, ["cell", "debris"]),
        ({"1": "debris", "0": "cell"}, ["cell", "debris"]),
    ],
)
def test_data_yaml_names_as_list_or_dict(tmp_path: Path, names: object, expected: list[str]) -> None:
    root = _write_flat(tmp_path / "ds", "1 0 0 0.5 0 0.5 0.5\n", names=names)
    dataset = read_yolo_seg(root)
    assert dataset.taxonomy.names == expected and dataset.taxonomy.ids == [0, 1]
    assert dataset[0].annotation().instances.class_ids.tolist() == [1]


def test_bad_names_raise_format_error(tmp_path: Path) -> None:
    root = _write_flat(tmp_path / "ds", None, names="cell")
    with pytest.raises(FormatError, match="names"):
        read_yolo_seg(root)


def test_flat_layout_without_yaml_and_missing_label(tmp_path: Path) -> None:
    root = _write_flat(tmp_path / "ds", "3 0 0 0.5 0 0.5 0.5\n", names=None)
    _image(root / "images" / "unlabelled.png")
    (root / "labels" / "orphan.txt").write_text("0 0 0 1 0 1 1\n")
    dataset = read_yolo_seg(root)
    assert dataset.taxonomy.names == ["class_3"] and dataset.taxonomy.ids == [3]
    assert len(dataset.by_id("unlabelled").annotation().instances) == 0
    reasons = {i.reason for i in dataset.issues}
    assert "label file has no image" in reasons
    assert any("no class names" in r for r in reasons)
    assert "split" not in dataset[0].metadata


def test_split_folders_without_yaml_and_unknown_split(tmp_path: Path) -> None:
    for split in ("train", "val"):
        _image(tmp_path / "images" / split / f"{split}_img.png")
        (tmp_path / "labels" / split).mkdir(parents=True)
        (tmp_path / "labels" / split / f"{split}_img.txt").write_text("0 0 0 1 0 1 1\n")
    dataset = read_yolo_seg(tmp_path)
    assert {s.image_id: s.metadata["split"] for s in dataset} == {"train_img": "train", "val_img": "val"}
    with pytest.raises(FormatError, match="split 'test' not found"):
        read_yolo_seg(tmp_path, split="test")


def test_yaml_path_key_and_txt_image_list(tmp_path: Path) -> None:
    root = tmp_path / "data" / "set"
    _image(root / "images" / "x" / "a.png")
    _image(root / "images" / "x" / "b.png")
    (root / "labels" / "x").mkdir(parents=True)
    (root / "labels" / "x" / "b.txt").write_text("0 0 0 0.5 0 0.5 0.5\n")
    (root / "val.txt").write_text("./images/x/b.png\n")
    yaml_path = tmp_path / "set.yaml"
    yaml_path.write_text("path: data/set\ntrain: images/x\nval: val.txt\nnames: [cell]\nnc: 3\n")
    dataset = read_yolo_seg(yaml_path)
    assert {s.image_id: s.metadata.get("split") for s in dataset} == {"a": "train", "b": "train"}
    assert [s.image_id for s in read_yolo_seg(yaml_path, split="val")] == ["b"]
    assert any("nc is 3" in i.reason for i in dataset.issues)


def test_taxonomy_option_maps_names_back_and_rejects_unknown(tmp_path: Path) -> None:
    root = _write_flat(tmp_path / "ds", "1 0 0 0.5 0 0.5 0.5\n0 0 0 1 0 1 1\n", names=["debris", "cell"])
    dataset = read_yolo_seg(root, taxonomy=TAX)
    assert dataset.taxonomy == TAX
    assert dataset[0].annotation().instances.class_ids.tolist() == [CELL, DEBRIS]
    with pytest.raises(FormatError, match="not in the given taxonomy"):
        read_yolo_seg(root, taxonomy=Taxonomy.from_names(["background", "cell"]))


def test_taxonomy_file_ignored_when_it_lacks_a_name(tmp_path: Path) -> None:
    root = _write_flat(tmp_path / "ds", "0 0 0 0.5 0 0.5 0.5\n", names=["cell", "virus"])
    (root / TAXONOMY_FILE).write_text(json.dumps(TAX.to_dict()))
    dataset = read_yolo_seg(root)
    assert dataset.taxonomy.names == ["cell", "virus"]
    assert any(TAXONOMY_FILE in i.reason for i in dataset.issues)


def test_unreadable_image_is_skipped_and_reported(tmp_path: Path) -> None:
    root = _write_flat(tmp_path / "ds", "0 0 0 0.5 0 0.5 0.5\n")
    (root / "images" / "broken.png").write_bytes(b"")
    dataset = read_yolo_seg(root)
    assert [s.image_id for s in dataset] == ["a"]
    assert any(i.image_id == "broken" and i.severity == "error" for i in dataset.issues)


def test_registered_and_reachable_by_name(tmp_path: Path) -> None:
    spec = get_format("yolo-seg")
    assert spec.views == frozenset({"instances"})
    dataset = _dataset(tmp_path, {"a": (_instances((SHAPES["square_with_hole"], CELL)), {"split": "test"})})
    out = write_dataset(dataset, tmp_path / "yolo", "yolo-seg", progress=False)
    data = read_data_yaml(out / "data.yaml")
    assert data["test"] == "images/test" and data["train"] == data["val"] == "images/test"
    back = read_dataset(out, "yolo-seg")
    assert back[0].metadata == {"split": "test"}  # listed three times; the manifest decides
    assert np.array_equal(back[0].annotation().instances.dense_masks()[0], SHAPES["square_with_hole"])


def test_mask_to_polygons_matches_ring_area() -> None:
    mask = SHAPES["two_holes"]
    (ring,) = mask_to_yolo_rings(mask)
    total = sum(p.area() for p in mask_to_polygons(mask))
    x, y = ring[:, 0], ring[:, 1]
    assert abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2 == pytest.approx(total) == mask.sum()
