"""Sidecar JSON: round trip, file helpers, and one validation error per broken field."""

from __future__ import annotations

import json

import pytest

from pixelwise.core.taxonomy import Taxonomy
from pixelwise.runtime.sidecar import (
    Sidecar,
    SidecarError,
    find_sidecar,
    read_sidecar,
    sidecar_path,
)
from pixelwise.transforms.preprocess import PreprocessConfig

TAX = Taxonomy.from_names(["background", "cell", "debris"], stuff=["background"])
PRE = PreprocessConfig(input_size=(64, 96))


def make(**changes) -> Sidecar:
    values = dict(
        taxonomy=TAX,
        preprocess=PRE,
        input_shape=("batch", 3, 64, 96),
        output_shape=("batch", 3, 64, 96),
        model_file="m.onnx",
        opset=17,
        exporter="torch.onnx dynamo (torch.export)",
        source={"checkpoint": "best.pt", "sha256": "ab" * 32},
        check={"max_abs_diff": 1e-6, "label_agreement": 1.0},
    )
    values.update(changes)
    return Sidecar(**values)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"output_kind": "probabilities", "output_name": "probabilities"},
        {"output_kind": "labels", "output_name": "labels", "output_shape": (1, 64, 96), "input_shape": (1, 3, 64, 96), "output_dtype": "int64"},
        {"normalization_in_graph": True, "input_range": "0..255"},
        {"check": None, "extra": {"notes": ["x"]}},
    ],
)
def test_round_trip(changes, tmp_path):
    car = make(**changes)
    assert Sidecar.from_dict(car.to_dict()) == car
    assert Sidecar.from_json(car.to_json()) == car
    path = car.write(tmp_path / "m.onnx.json")
    assert read_sidecar(path) == car
    data = json.loads(path.read_text())
    assert data["input"]["layout"] == "NCHW" and data["input"]["color_order"] == "RGB"
    assert data["normalization"]["mean"] == list(PRE.mean)
    assert data["output"]["meaning"]
    assert data["classes"]["classes"][1]["name"] == "cell"


def test_properties():
    car = make()
    assert car.dynamic_batch and car.input_hw == (64, 96) and car.num_classes == 3
    fixed = make(input_shape=(1, 3, 64, 96), output_shape=(1, 3, 64, 96))
    assert not fixed.dynamic_batch
    nhwc = make(input_shape=(1, 64, 96, 3), output_shape=(1, 64, 96, 3), input_layout="NHWC")
    assert nhwc.input_hw == (64, 96) and nhwc.num_classes == 3


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"input_layout": "CHW"}, "layout"),
        ({"input_range": "0..65535"}, "range"),
        ({"output_kind": "masks"}, "output kind"),
        ({"normalization_in_graph": True}, "contradicts"),
        ({"input_range": "0..255"}, "contradicts"),
        ({"input_shape": (3, 64, 96)}, "4 axes"),
        ({"input_shape": (1, 1, 64, 96)}, "3 (RGB) channels"),
        ({"output_shape": (1, 64, 96)}, "must have 4 axes"),
        ({"output_shape": (1, 2, 64, 96)}, "output has 2"),
        ({"output_shape": (1, 1, 64, 96)}, "one-channel output"),
        ({"input_shape": (1, 3, 128, 128)}, "preprocess.input_size"),
        ({"input_range": "0..1"}, "mean (0, 0, 0)"),
    ],
)
def test_validation_errors(changes, message):
    with pytest.raises(SidecarError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(**changes)


def _broken(mutate):
    data = make().to_dict()
    mutate(data)
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        ({"classes": []}, "not a Pixelwise sidecar"),
        (_broken(lambda d: d.update(format="other")), "not a Pixelwise sidecar"),
        (_broken(lambda d: d.update(version=99)), "version 99"),
        (_broken(lambda d: d.pop("input")), "missing or malformed"),
        (_broken(lambda d: d["preprocess"].update(resize_policy="stretch")), "missing or malformed"),
        (_broken(lambda d: d["classes"].update(classes=[{"id": 0}])), "missing or malformed"),
        (_broken(lambda d: d["input"].update(shape=[1, 3, 0, 96])), "invalid axis"),
        (_broken(lambda d: d["normalization"].update(mean=[0.5, 0.5, 0.5])), "differ from the preprocess"),
        (_broken(lambda d: d["output"].update(shape=[1, 2, 64, 96])), "output has 2"),
    ],
)
def test_from_dict_errors_name_the_file(data, message, tmp_path):
    path = tmp_path / "m.onnx.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SidecarError, match=message) as info:
        read_sidecar(path)
    assert info.value.path == path


def test_unreadable_files(tmp_path):
    with pytest.raises(SidecarError, match="not found"):
        read_sidecar(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SidecarError, match="not valid JSON") as info:
        read_sidecar(bad)
    assert str(bad) in str(info.value)


def test_paths(tmp_path):
    model = tmp_path / "net.onnx"
    assert sidecar_path(model) == tmp_path / "net.onnx.json"
    assert find_sidecar(model) is None
    (tmp_path / "net.json").write_text("{}")
    assert find_sidecar(model) == tmp_path / "net.json"
    (tmp_path / "net.onnx.json").write_text("{}")
    assert find_sidecar(model) == tmp_path / "net.onnx.json"
