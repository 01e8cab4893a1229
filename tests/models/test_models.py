"""Contract tests for the registered segmentation models (tiny CPU inputs, no downloads)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
import torch

from pixelwise.core.errors import ShapeError
from pixelwise.models import (
    ModelConfigError,
    SegmentationModel,
    create_model,
    get_model_spec,
    list_models,
    pad_to_divisor,
    padded_size,
    to_channels_last,
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


class BaseModelTester:
    """One architecture's contract; subclasses set the class attributes only."""

    name: ClassVar[str]
    encoder: ClassVar[str | None] = None
    divisor: ClassVar[int] = 32
    num_classes: ClassVar[int] = 3

    @classmethod
    def build(cls, num_classes: int | None = None, in_channels: int = 3) -> SegmentationModel:
        return create_model(
            cls.name,
            num_classes or cls.num_classes,
            encoder=cls.encoder,
            encoder_weights=None,
            in_channels=in_channels,
        )

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> SegmentationModel:
        """The default build, shared by the tests of one class (each sets its mode)."""
        return cls.build()

    def test_forward_shape(self, model: SegmentationModel) -> None:
        model.eval()
        with torch.no_grad():
            out = model(torch.rand(1, 3, 64, 64))
        assert out.shape == (1, self.num_classes, 64, 64)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()

    def test_backward_produces_grads(self, model: SegmentationModel) -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        logits = model(torch.rand(2, 3, 64, 64))
        logits.square().mean().backward()
        for part in (model.encoder, model.decoder, model.segmentation_head):
            grads = [p.grad for p in part.parameters() if p.requires_grad]
            assert grads and all(g is not None for g in grads)
            assert any(bool(g.abs().sum() > 0) for g in grads if g is not None)

    def test_num_classes_respected(self) -> None:
        model = self.build(num_classes=5).eval()
        with torch.no_grad():
            assert model(torch.rand(1, 3, 32, 64)).shape == (1, 5, 32, 64)
        assert model.num_classes == 5
        assert model.config()["num_classes"] == 5

    def test_required_divisor(self, model: SegmentationModel) -> None:
        assert model.required_divisor == self.divisor

    def test_odd_size_rejected_with_padded_size(self, model: SegmentationModel) -> None:
        model.eval()
        expected = "x".join(str(s) for s in padded_size(100, 120, self.divisor))
        with pytest.raises(ShapeError, match=rf"divisible by {self.divisor}; pad to {expected}"):
            model(torch.rand(1, 3, 100, 120))

    @pytest.mark.parametrize(
        ("shape", "match"),
        [
            ((3, 64, 64), "unsqueeze"),
            ((1, 4, 64, 64), "expected 3 channels"),
            ((1, 1, 3, 64, 64), "expected 4 axes"),
        ],
    )
    def test_bad_input_rejected(
        self, model: SegmentationModel, shape: tuple[int, ...], match: str
    ) -> None:
        with pytest.raises(ShapeError, match=match):
            model.eval()(torch.rand(*shape))

    def test_integer_input_rejected(self, model: SegmentationModel) -> None:
        with pytest.raises(ShapeError, match="floating dtype"):
            model.eval()(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))

    def test_predict_pads_and_crops(self, model: SegmentationModel) -> None:
        model.train()
        out = model.predict(torch.rand(1, 3, 50, 70))
        assert out.shape == (1, self.num_classes, 50, 70)
        assert not out.requires_grad
        assert model.training  # mode restored

    def test_predict_equals_forward_on_divisible_input(self, model: SegmentationModel) -> None:
        model.eval()
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            expected = model(x)
        torch.testing.assert_close(model.predict(x), expected)

    def test_state_dict_round_trip(self, model: SegmentationModel) -> None:
        model.eval()
        clone = create_model(**model.config()).eval()
        clone.load_state_dict(model.state_dict())
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(clone(x), model(x))

    def test_in_channels(self) -> None:
        model = self.build(in_channels=1).eval()
        with torch.no_grad():
            assert model(torch.rand(1, 1, 32, 32)).shape == (1, self.num_classes, 32, 32)


class TestUnet(BaseModelTester):
    name = "unet"


class TestFPN(BaseModelTester):
    name = "fpn"


class TestDeepLabV3Plus(BaseModelTester):
    name = "deeplabv3plus"
    divisor = 16

    def test_single_image_batch_rejected_in_training(self, model: SegmentationModel) -> None:
        with pytest.raises(ShapeError, match="batch of at least 2"):
            model.train()(torch.rand(1, 3, 64, 64))


class TestSegformer(BaseModelTester):
    name = "segformer"


ALL_COMBINATIONS = [
    (name, enc) for name in list_models() for enc in get_model_spec(name).encoders
]


@pytest.mark.parametrize(("name", "encoder"), ALL_COMBINATIONS)
def test_every_registered_encoder_builds_and_runs(name: str, encoder: str) -> None:
    model = create_model(f"{name}-{encoder}", num_classes=2).eval()
    assert (model.name, model.encoder_name) == (name, encoder)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_registry_lists_the_four_architectures() -> None:
    assert list_models() == ["deeplabv3plus", "fpn", "segformer", "unet"]
    assert "unet-resnet18" in list_models(with_encoders=True)
    assert get_model_spec("segformer").default_encoder == "mit_b0"


@pytest.mark.parametrize(
    ("name", "encoder", "match"),
    [
        ("pspnet", None, "valid models: deeplabv3plus, fpn, segformer, unet"),
        ("unet", "vgg11", "valid encoders: mobilenet_v2"),
        ("unet-vgg11", None, "valid encoders: mobilenet_v2"),
        ("fpn", "mit_b0", "valid encoders"),
    ],
)
def test_unknown_name_raises_key_error(name: str, encoder: str | None, match: str) -> None:
    with pytest.raises(KeyError, match=match):
        create_model(name, num_classes=2, encoder=encoder)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "unet-resnet18", "encoder": "resnet34"}, "encoder given twice"),
        ({"name": "unet", "num_classes": 0}, "num_classes"),
        ({"name": "unet", "in_channels": 0}, "in_channels"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    args = {"num_classes": 2, **kwargs}
    with pytest.raises(ModelConfigError, match=match):
        create_model(**args)  # type: ignore[arg-type]


def test_combined_name_with_dashed_encoder() -> None:
    model = create_model("FPN-EfficientNet-B0", num_classes=2)
    assert model.config() == {
        "name": "fpn",
        "encoder": "efficientnet-b0",
        "num_classes": 2,
        "in_channels": 3,
    }


@pytest.mark.parametrize(
    ("shape", "divisor", "expected", "pads"),
    [
        ((1, 3, 100, 120), 32, (1, 3, 128, 128), (28, 8)),
        ((1, 3, 64, 64), 32, (1, 3, 64, 64), (0, 0)),
        ((2, 1, 5, 17), 16, (2, 1, 16, 32), (11, 15)),
        ((7, 9), 8, (8, 16), (1, 7)),
    ],
)
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_pad_to_divisor(
    shape: tuple[int, ...],
    divisor: int,
    expected: tuple[int, ...],
    pads: tuple[int, int],
    mode: str,
) -> None:
    x = torch.rand(*shape)
    padded, got_pads = pad_to_divisor(x, divisor, mode=mode)
    assert tuple(padded.shape) == expected
    assert got_pads == pads
    torch.testing.assert_close(padded[..., : shape[-2], : shape[-1]], x)


def test_pad_to_divisor_bad_mode() -> None:
    with pytest.raises(ValueError, match="valid modes"):
        pad_to_divisor(torch.rand(1, 3, 5, 5), 4, mode="wrap")


def test_channels_last_keeps_outputs() -> None:
    model = create_model("unet", num_classes=2).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        to_channels_last(model)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
