"""Weight loading: safetensors and torch files, encoder-only, checkpoints, transfer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pixelwise.models import (
    SegmentationModel,
    WeightsError,
    create_model,
    load_weights,
    save_weights,
)


@pytest.fixture(autouse=True)
def _fixed_rng() -> Iterator[None]:
    state = torch.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(state)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny inputs gain nothing from threads, and on a busy 2-core machine the OpenMP
    pool's spinning makes these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _unet(num_classes: int = 3) -> SegmentationModel:
    return create_model("unet", num_classes=num_classes, encoder_weights=None)


def _write(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=key)


def _differs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return any(
        not torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values())
        if x.is_floating_point()
    )


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("keep_prefix", [False, True])
def test_encoder_only_state_dict(tmp_path: Path, suffix: str, keep_prefix: bool) -> None:
    source = _unet()
    state = source.encoder.state_dict()
    if keep_prefix:
        state = {f"encoder.{k}": v for k, v in state.items()}
    path = _write(state, tmp_path / f"encoder{suffix}")

    torch.manual_seed(1)
    target = _unet()
    assert _differs(source.encoder, target.encoder)
    report = load_weights(target, path)

    _assert_same(source.encoder, target.encoder)
    assert report.kind == "encoder"
    assert len(report.loaded) == len(state)
    assert not report.skipped_shape_mismatch and not report.unexpected
    assert report.missing and all(not k.startswith("encoder.") for k in report.missing)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_full_state_dict_round_trip(tmp_path: Path, suffix: str) -> None:
    source = _unet()
    path = _write(source.state_dict(), tmp_path / f"full{suffix}")
    torch.manual_seed(1)
    target = _unet()
    report = load_weights(target, path)
    _assert_same(source, target)
    assert report.kind == "full"
    assert not report.missing and not report.unexpected and not report.skipped_shape_mismatch


def test_checkpoint_dict_with_model_state(tmp_path: Path) -> None:
    source = _unet()
    checkpoint = {"model_state": source.state_dict(), "epoch": 7, "config": {"lr": 0.1}}
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    torch.manual_seed(1)
    target = _unet()
    report = load_weights(target, path)
    _assert_same(source, target)
    assert report.kind == "checkpoint"


def test_wrapper_prefixes_are_removed(tmp_path: Path) -> None:
    source = _unet()
    state = {f"module._orig_mod.{k}": v for k, v in source.state_dict().items()}
    path = _write(state, tmp_path / "ddp.pt")
    torch.manual_seed(1)
    target = _unet()
    load_weights(target, path)
    _assert_same(source, target)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_transfer_three_to_five_classes(tmp_path: Path, suffix: str) -> None:
    source = _unet(num_classes=3)
    path = _write(source.state_dict(), tmp_path / f"three{suffix}")
    torch.manual_seed(1)
    target = _unet(num_classes=5)
    head_before = {k: v.clone() for k, v in target.segmentation_head.state_dict().items()}

    report = load_weights(target, path)

    assert report.head_reinitialised
    skipped = {key: (f, m) for key, f, m in report.skipped_shape_mismatch}
    assert set(skipped) == {"segmentation_head.0.weight", "segmentation_head.0.bias"}
    assert skipped["segmentation_head.0.bias"] == ((3,), (5,))
    assert not report.missing and not report.unexpected
    _assert_same(source.encoder, target.encoder)
    _assert_same(source.decoder, target.decoder)
    for key, value in target.segmentation_head.state_dict().items():
        torch.testing.assert_close(value, head_before[key])
    assert "shape-mismatch 2" in report.summary()


def test_strict_head_raises_on_class_mismatch(tmp_path: Path) -> None:
    path = _write(_unet(num_classes=3).state_dict(), tmp_path / "three.safetensors")
    with pytest.raises(WeightsError, match=r"three\.safetensors.*segmentation head"):
        load_weights(_unet(num_classes=5), path, strict_head=True)


def test_nothing_matches_names_the_file(tmp_path: Path) -> None:
    other = create_model("segformer", num_classes=3)
    path = _write(other.encoder.state_dict(), tmp_path / "mit_encoder.safetensors")
    with pytest.raises(WeightsError, match=r"mit_encoder\.safetensors: no tensor matches"):
        load_weights(_unet(), path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "not found"),
        (b"", "cannot read"),
        (b"this is not a weights file", "cannot read"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=match):
        load_weights(_unet(), path)


def test_torch_file_without_tensors(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(WeightsError, match="no tensors"):
        load_weights(_unet(), path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("encoder_only", [False, True])
def test_save_weights_round_trip(tmp_path: Path, suffix: str, encoder_only: bool) -> None:
    source = _unet()
    path = save_weights(source, tmp_path / "sub" / f"model{suffix}", encoder_only=encoder_only)
    torch.manual_seed(1)
    target = _unet()
    report = load_weights(target, path)
    _assert_same(source.encoder, target.encoder)
    assert report.kind == ("encoder" if encoder_only else "full")
    if suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as fh:
            assert json.loads(fh.metadata()["pixelwise_config"]) == source.config()
