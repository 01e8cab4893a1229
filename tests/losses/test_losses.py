"""Segmentation losses: tables of tiny cases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from pixelwise.core.errors import ShapeError
from pixelwise.losses import (
    LossSpecError,
    WeightedSumLoss,
    build_loss,
    class_weights_from_pixel_counts,
    list_losses,
)

K = 3
IGNORE = 255
SPECS = ["ce", "dice", "jaccard", "focal", "ce+dice", {"focal": {"gamma": 1.0}, "jaccard": 0.5}]


@pytest.fixture(autouse=True)
def _fixed_rng() -> Iterator[None]:
    state = torch.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(state)


def _target(with_ignore: bool = True) -> torch.Tensor:
    target = torch.randint(0, K, (2, 6, 6))
    if with_ignore:
        target[0, :2, :] = IGNORE
        target[1, 3, 3] = IGNORE
    return target


def _perfect_logits(target: torch.Tensor) -> torch.Tensor:
    safe = torch.where(target == IGNORE, 0, target)
    return 30.0 * F.one_hot(safe, K).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_perfect_prediction_gives_near_zero(spec: str | dict[str, object]) -> None:
    target = _target()
    loss = build_loss(spec, num_classes=K)(_perfect_logits(target), target)
    assert loss.ndim == 0
    assert float(loss) < 1e-3


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_ignored_pixels_change_nothing(spec: str | dict[str, object]) -> None:
    loss_fn = build_loss(spec, num_classes=K)
    target = _target()
    logits = torch.randn(2, K, 6, 6, requires_grad=True)
    base = loss_fn(logits, target)
    base.backward()
    ignored = (target == IGNORE).unsqueeze(1).expand_as(logits)
    assert logits.grad is not None
    assert torch.all(logits.grad[ignored] == 0)

    scrambled = torch.where(ignored, torch.randn_like(logits) * 100, logits.detach())
    torch.testing.assert_close(loss_fn(scrambled, target), base.detach())


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_gradients_flow(spec: str | dict[str, object]) -> None:
    logits = torch.randn(2, K, 6, 6, requires_grad=True)
    build_loss(spec, num_classes=K)(logits, _target()).backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert float(logits.grad.abs().sum()) > 0


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_all_pixels_ignored_gives_zero(spec: str | dict[str, object]) -> None:
    logits = torch.randn(1, K, 4, 4, requires_grad=True)
    loss = build_loss(spec, num_classes=K)(logits, torch.full((1, 4, 4), IGNORE))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert logits.grad is not None and torch.all(logits.grad == 0)


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 3.0]])
def test_focal_with_gamma_zero_equals_ce(weights: list[float] | None) -> None:
    target = _target()
    logits = torch.randn(2, K, 6, 6)
    focal = build_loss({"focal": {"gamma": 0.0}}, num_classes=K, class_weights=weights)
    ce = build_loss("ce", num_classes=K, class_weights=weights)
    torch.testing.assert_close(focal(logits, target), ce(logits, target))


def test_ce_matches_torch_reference() -> None:
    target = _target()
    logits = torch.randn(2, K, 6, 6)
    weights = torch.tensor([0.5, 1.0, 2.0])
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE)
    got = build_loss("ce", num_classes=K, class_weights=weights)(logits, target)
    torch.testing.assert_close(got, expected)


def test_focal_down_weights_easy_pixels() -> None:
    target = _target(with_ignore=False)
    logits = _perfect_logits(target) / 10 + torch.randn(2, K, 6, 6) * 0.1
    ce = build_loss("ce", num_classes=K)(logits, target)
    focal = build_loss("focal", num_classes=K)(logits, target)
    assert 0 < float(focal) < float(ce)


@pytest.mark.parametrize(
    "spec", ["ce+0.5*dice", {"ce": 1.0, "dice": 0.5}, {"ce": {"weight": 1}, "dice": 0.5}], ids=str
)
def test_weighted_sum_equals_sum_of_parts(spec: str | dict[str, object]) -> None:
    target = _target()
    logits = torch.randn(2, K, 6, 6)
    combined = build_loss(spec, num_classes=K)
    assert isinstance(combined, WeightedSumLoss)
    ce = build_loss("ce", num_classes=K)(logits, target)
    dice = build_loss("dice", num_classes=K)(logits, target)
    torch.testing.assert_close(combined(logits, target), ce + 0.5 * dice)
    parts = combined.forward_terms(logits, target)
    torch.testing.assert_close(parts["ce"], ce)
    torch.testing.assert_close(parts["total"], ce + 0.5 * dice)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # Uniform logits: p = 0.5 everywhere; two pixels of each class.
        # Dice per class (2*1 + 1) / (4 + 1) = 0.6; IoU per class (1 + 1) / (3 + 1) = 0.5.
        ("dice", 0.4),
        ("jaccard", 0.5),
        ("ce", 0.6931471805599453),
        ("focal", 0.25 * 0.6931471805599453),
    ],
)
def test_hand_computed_values(spec: str, expected: float) -> None:
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[0, 0], [1, 1]]])
    got = build_loss(spec, num_classes=2)(logits, target)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_single_term_is_returned_bare() -> None:
    assert type(build_loss("dice", num_classes=K)).__name__ == "DiceLoss"
    assert isinstance(build_loss("2*dice", num_classes=K), WeightedSumLoss)


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("lovasz", KeyError, "valid losses: ce, dice, focal, jaccard"),
        ("ce+boundary", KeyError, "valid losses"),
        ({"tversky": 1.0}, KeyError, "valid losses"),
        ("", LossSpecError, "empty"),
        ("ce+", LossSpecError, "cannot parse"),
        ("ce+ce", LossSpecError, "twice"),
        ({"ce": -1.0}, LossSpecError, "weight"),
        ({"ce": "heavy"}, LossSpecError, "expected a weight"),
        ({"focal": {"gamma": -1.0}}, LossSpecError, "gamma"),
        ({"dice": {"alpha": 1.0}}, LossSpecError, "bad parameters"),
        (3, LossSpecError, "str or a dict"),
    ],
)
def test_bad_specs(spec: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build_loss(spec, num_classes=K)  # type: ignore[arg-type]


def test_list_losses() -> None:
    assert list_losses() == ["ce", "dice", "focal", "jaccard"]


@pytest.mark.parametrize(
    ("logits_shape", "target", "match"),
    [
        ((2, 4, 6, 6), torch.zeros(2, 6, 6, dtype=torch.long), "K=3"),
        ((2, K, 6, 6), torch.zeros(2, 5, 6, dtype=torch.long), "target must be"),
        ((2, K, 6, 6), torch.zeros(2, 6, 6), "integer class indices"),
        ((2, K, 6, 6), torch.full((2, 6, 6), 7), r"found range \[7, 7\]"),
    ],
)
def test_bad_inputs(logits_shape: tuple[int, ...], target: torch.Tensor, match: str) -> None:
    with pytest.raises(ShapeError, match=match):
        build_loss("ce+dice", num_classes=K)(torch.randn(*logits_shape), target)


def test_class_weights_must_be_per_class() -> None:
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        build_loss("ce", num_classes=K, class_weights=[1.0, 2.0])
    with pytest.raises(LossSpecError, match=">= 0"):
        build_loss("ce", num_classes=K, class_weights=[1.0, -2.0, 1.0])


def test_class_weights_follow_device_and_are_not_saved() -> None:
    loss_fn = build_loss("ce", num_classes=K, class_weights=[1.0, 2.0, 3.0])
    assert "class_weights" not in loss_fn.state_dict()
    assert loss_fn.to(torch.float64).class_weights is not None


@pytest.mark.parametrize(
    ("counts", "method", "normalize", "expected"),
    [
        ([900, 100], "inverse", False, [10 / 9, 10.0]),
        ([900, 100], "inverse_sqrt", False, [(10 / 9) ** 0.5, 10**0.5]),
        ([100, 200, 700], "median_freq", False, [2.0, 1.0, 2 / 7]),
        ([900, 100, 0], "inverse", True, [0.2, 1.8, 0.0]),
        ([5, 5, 5, 5], "inverse_sqrt", True, [1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_class_weights_from_pixel_counts(
    counts: list[int], method: str, normalize: bool, expected: list[float]
) -> None:
    got = class_weights_from_pixel_counts(counts, method=method, normalize=normalize)
    assert got.dtype == torch.float32 and got.shape == (len(counts),)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize(
    ("counts", "method", "error"),
    [
        ([1, 2], "log", ValueError),
        ([0, 0], "inverse", ValueError),
        ([1, -2], "inverse", ValueError),
        ([[1, 2]], "inverse", ShapeError),
    ],
)
def test_class_weights_from_pixel_counts_errors(
    counts: list[int], method: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        class_weights_from_pixel_counts(counts, method=method)
