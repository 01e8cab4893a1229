"""validate_dataset finds every kind of problem, names the file, and never crashes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.errors import AnnotationError
from pixelwise.core.labels import Annotation, InstanceSet, PanopticMap, SegmentInfo, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset
from pixelwise.data.image_io import write_image
from pixelwise.data.validate import ISSUE_KINDS, ValidationReport, validate_dataset, validate_polygon

TAX = Taxonomy.from_names(["background", "cat", "dog"], stuff=["background"])


def _image(folder: Path, name: str, height: int = 8, width: int = 8) -> Path:
    path = folder / f"{name}.png"
    write_image(path, np.full((height, width, 3), 100, np.uint8))
    return path


def _semantic(height: int = 8, width: int = 8, value: int = 1) -> Annotation:
    labels = np.zeros((height, width), np.uint8)
    labels[2:5, 2:5] = value
    return Annotation(semantic=SemanticMap(labels))


def _good(folder: Path, name: str) -> Sample:
    return Sample.with_annotation(name, _image(folder, name), _semantic())


def _dataset(samples: list[Sample], issues: list[DataIssue] | None = None) -> SegmentationDataset:
    return SegmentationDataset(TAX, samples, list(issues or []), name="test")


def test_clean_dataset_is_ok(tmp_path: Path):
    report = validate_dataset(_dataset([_good(tmp_path, f"im{i}") for i in range(4)]), progress=False)
    assert report.ok
    assert (report.n_checked, report.n_ok) == (4, 4)
    assert report.issues == [] and report.counts == {}


# Each builder returns one problem sample; expected kind, severity and a reason substring.
def _empty_file(tmp: Path) -> Sample:
    path = tmp / "broken.png"
    path.write_bytes(b"")
    return Sample.with_annotation("broken", path, _semantic())


def _image_wrong_size(tmp: Path) -> Sample:
    return Sample.with_annotation("small", _image(tmp, "small", 6, 6), _semantic(8, 8))


def _labels_wrong_size(tmp: Path) -> Sample:
    return Sample("mis", _image(tmp, "mis", 8, 8), 8, 8, loader=lambda: _semantic(10, 10))


def _broken_loader(tmp: Path) -> Sample:
    def load() -> Annotation:
        raise AnnotationError(tmp / "labels.json", "polygon of annotation 3 has 2 points", "redraw it")

    return Sample("bad", _image(tmp, "bad"), 8, 8, loader=load)


def _unknown_semantic(tmp: Path) -> Sample:
    return Sample.with_annotation("unk", _image(tmp, "unk"), _semantic(value=9))


def _unknown_instance(tmp: Path) -> Sample:
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :2, :2] = masks[1, 4:, 4:] = True
    instances = InstanceSet(8, 8, np.array([1, 7]), masks)
    return Sample.with_annotation("unk_inst", _image(tmp, "unk_inst"), Annotation(instances=instances))


def _unknown_panoptic(tmp: Path) -> Sample:
    ids = np.zeros((8, 8), np.int32)
    ids[:4] = 1
    panoptic = PanopticMap(ids, (SegmentInfo(1, 42),))
    return Sample.with_annotation("unk_pan", _image(tmp, "unk_pan"), Annotation(panoptic=panoptic))


def _empty_instance(tmp: Path) -> Sample:
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :3, :3] = True
    instances = InstanceSet(8, 8, np.array([1, 2]), masks)
    return Sample.with_annotation("empty_inst", _image(tmp, "empty_inst"), Annotation(instances=instances))


def _raising_value_error(tmp: Path) -> Sample:
    def load() -> Annotation:
        raise ValueError("cannot reshape array")

    return Sample("odd", _image(tmp, "odd"), 8, 8, loader=load)


@pytest.mark.parametrize(
    "build, kind, text",
    [
        (_empty_file, "unreadable_image", "empty"),
        (_image_wrong_size, "image_size_mismatch", "6x6"),
        (_labels_wrong_size, "label_size_mismatch", "labels are 10x10 (HxW) but the image is 8x8"),
        (_broken_loader, "bad_annotation", "2 points"),
        (_raising_value_error, "bad_annotation", "cannot reshape"),
        (_unknown_semantic, "unknown_class", "[9]"),
        (_unknown_instance, "unknown_class", "[7]"),
        (_unknown_panoptic, "unknown_class", "[42]"),
        (_empty_instance, "empty_instance", "indices [1]"),
    ],
)
def test_each_error_kind_is_reported(tmp_path: Path, build: Callable[[Path], Sample], kind: str, text: str):
    dataset = _dataset([_good(tmp_path, "good"), build(tmp_path)])
    report = validate_dataset(dataset, progress=False)
    assert not report.ok
    assert report.counts == {kind: 1}
    (issue,) = report.of_kind(kind)
    assert issue.severity == "error"
    assert text in issue.reason
    assert issue.image_id == dataset[1].image_id
    assert issue.path is not None
    assert (report.n_checked, report.n_ok) == (2, 1)


def test_bad_annotation_names_the_label_file(tmp_path: Path):
    report = validate_dataset(_dataset([_broken_loader(tmp_path)]), progress=False)
    (issue,) = report.issues
    assert issue.path == tmp_path / "labels.json"
    assert issue.hint == "redraw it"


@pytest.mark.parametrize(
    "name, reason",
    [("truncated.jpg", "truncated"), ("text_named.jpg", "not an image"), ("one_pixel.png", "1x1")],
)
def test_real_bad_images(tmp_path: Path, data_dir: Path, name: str, reason: str):
    source = data_dir / "bad" / name
    sample = Sample.with_annotation("x", source, _semantic())
    report = validate_dataset(_dataset([sample]), progress=False)
    (issue,) = report.of_kind("unreadable_image")
    assert reason in issue.reason
    assert issue.path == source


def test_check_images_false_skips_decoding(tmp_path: Path):
    report = validate_dataset(_dataset([_empty_file(tmp_path)]), check_images=False, progress=False)
    assert report.ok and report.issues == []


def test_duplicates(tmp_path: Path):
    a = _good(tmp_path, "a")
    same_id = Sample.with_annotation("a", _image(tmp_path, "other"), _semantic())
    same_file = Sample.with_annotation("c", a.image_path, _semantic())
    report = validate_dataset(_dataset([a, same_id, same_file]), progress=False)
    assert report.counts == {"duplicate_id": 1, "duplicate_file": 1}
    (dup_id,) = report.of_kind("duplicate_id")
    assert dup_id.severity == "error" and str(a.image_path) in dup_id.reason
    (dup_file,) = report.of_kind("duplicate_file")
    assert dup_file.severity == "warning" and "'a'" in dup_file.reason and "'c'" in dup_file.reason
    assert report.n_ok == 2


def test_reader_issues_come_first(tmp_path: Path):
    reader_issue = DataIssue(tmp_path / "x.png", "mask missing", "error", "x")
    report = validate_dataset(_dataset([_good(tmp_path, "a")], [reader_issue]), progress=False)
    assert report.issues[0] == reader_issue and report.kinds[0] == "reader"
    assert not report.ok and report.n_ok == 1


@pytest.mark.parametrize(
    "annotation, expect_warning",
    [
        (Annotation(), True),
        (Annotation(semantic=SemanticMap(np.full((8, 8), 255, np.uint8))), True),
        (Annotation(instances=InstanceSet.empty(8, 8)), True),
        (Annotation(semantic=SemanticMap(np.zeros((8, 8), np.uint8))), False),  # all background is a label
    ],
)
def test_unlabelled_images_warn(tmp_path: Path, annotation: Annotation, expect_warning: bool):
    sample = Sample("u", _image(tmp_path, "u"), 8, 8, loader=lambda: annotation)
    report = validate_dataset(_dataset([sample]), progress=False)
    assert report.ok
    assert report.counts == ({"no_labels": 1} if expect_warning else {})
    quiet = validate_dataset(_dataset([sample]), warn_unlabelled=False, progress=False)
    assert quiet.issues == []


def test_overlaps_only_when_asked(tmp_path: Path):
    masks = np.zeros((3, 8, 8), bool)
    masks[0, :4, :4] = True
    masks[1, 2:6, 2:6] = True  # overlaps instance 0 on 2x2 = 4 pixels
    masks[2, :, :] = True  # crowd: ignored
    instances = InstanceSet(8, 8, np.array([1, 2, 1]), masks, iscrowd=np.array([False, False, True]))
    sample = Sample.with_annotation("o", _image(tmp_path, "o"), Annotation(instances=instances))
    assert validate_dataset(_dataset([sample]), progress=False).issues == []
    report = validate_dataset(_dataset([sample]), check_overlaps=True, progress=False)
    (issue,) = report.of_kind("overlapping_instances")
    assert issue.severity == "warning" and "4 pixels" in issue.reason
    assert report.ok


def test_report_outputs(tmp_path: Path):
    dataset = _dataset([_good(tmp_path, "a"), _unknown_semantic(tmp_path), _empty_file(tmp_path)])
    report = validate_dataset(dataset, progress=False)
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["ok"] is False and payload["n_errors"] == 2
    assert {i["kind"] for i in payload["issues"]} == {"unknown_class", "unreadable_image"}
    text = report.format_text()
    assert "FAILED" in text and "unknown_class" in text and "broken.png" in text
    assert "... and 1 more" in report.format_text(max_issues=1)


def test_report_rejects_unknown_kind():
    with pytest.raises(KeyError, match="valid kinds"):
        ValidationReport().add("typo", DataIssue(None, "x"))
    assert set(ISSUE_KINDS) >= {"reader", "no_labels"}


def test_many_samples_with_progress(tmp_path: Path):
    path = _image(tmp_path, "shared")
    samples = [Sample.with_annotation(f"s{i}", tmp_path / f"s{i}.png", _semantic()) for i in range(60)]
    for s in samples:
        shutil.copy(path, s.image_path)
    report = validate_dataset(_dataset(samples), progress=True)
    assert report.ok and report.n_ok == 60


# --------------------------------------------------------------------- polygons
@pytest.mark.parametrize(
    "ring, problems",
    [
        ([0, 0, 4, 0, 4, 4, 0, 4], []),
        ([[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], []),  # closed ring
        ([0, 0, 8.4, 0, 8.4, 8.4], []),  # within the 0.5 px slack
        ([0, 0, 4, 4], ["2 distinct points"]),
        ([0, 0, 4, 0, 4], ["odd number of coordinates (5)"]),
        ([0, 0, 4, 0, float("nan"), 4], ["non-finite"]),
        ([0, 0, 2, 2, 4, 4], ["zero area"]),
        ([0, 0, 4, 4, 4, 0, 0, 4], ["intersects itself"]),
        ([0, 0, 9, 0, 9, 4], ["outside the image"]),
        ([-1, -1, 4, -1, 4, 4], ["outside the image"]),
        ([0, 0, 12, 12, 12, 0, 0, 12], ["intersects itself", "outside the image"]),
    ],
)
def test_validate_polygon(ring, problems: list[str]):
    found = validate_polygon(ring, width=8, height=8)
    assert len(found) == len(problems)
    for text, expected in zip(found, problems):
        assert expected in text
