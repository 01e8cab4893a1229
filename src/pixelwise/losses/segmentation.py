"""Multiclass semantic-segmentation losses, built by name.

Every loss takes logits ``(B, K, H, W)`` float and a target ``(B, H, W)`` int64 of class
indices in ``[0, K)`` or ``ignore_index``, and returns a scalar. Pixels equal to
``ignore_index`` contribute nothing to any loss (nor to its gradient); when a batch has
no valid pixel the loss is 0 (still differentiable, with zero gradient).

=========== =================================================================
name        loss
=========== =================================================================
``ce``      cross-entropy, optionally class-weighted (weighted mean over pixels)
``dice``    1 - soft Dice on softmax probabilities, per class over the batch
``jaccard`` 1 - soft IoU (Jaccard) on softmax probabilities
``focal``   focal loss ``-(1 - p_t)^gamma log p_t``; ``gamma=0`` equals ``ce``
=========== =================================================================

Combine with a spec: ``"ce+dice"``, ``"ce+0.5*dice"``, ``{"ce": 1.0, "dice": 0.5}`` or
``{"focal": {"weight": 1.0, "gamma": 3.0}, "dice": 1.0}``.

Example:
    >>> import torch
    >>> loss_fn = build_loss("ce+0.5*dice", num_classes=3)
    >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    >>> target = torch.randint(0, 3, (2, 8, 8))
    >>> loss = loss_fn(logits, target)
    >>> loss.backward()
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.core.errors import PixelwiseError, ShapeError

__all__ = [
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "JaccardLoss",
    "LossSpecError",
    "WeightedSumLoss",
    "build_loss",
    "class_weights_from_pixel_counts",
    "list_losses",
]

ClassWeights = Sequence[float] | np.ndarray | torch.Tensor


class LossSpecError(PixelwiseError, ValueError):
    """A loss spec, its parameters or the class weights are malformed."""


def _as_weight_tensor(class_weights: ClassWeights | None, num_classes: int) -> torch.Tensor | None:
    """Validate ``class_weights`` as a ``(K,)`` float32 tensor of finite values >= 0."""
    if class_weights is None:
        return None
    if isinstance(class_weights, torch.Tensor):
        weights = class_weights.detach().to(dtype=torch.float32, device="cpu")
    else:
        weights = torch.as_tensor(np.asarray(class_weights, dtype=np.float32))
    if weights.shape != (num_classes,):
        raise ShapeError(
            f"class_weights must have shape ({num_classes},) (one per class), "
            f"got {tuple(weights.shape)}"
        )
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise LossSpecError(f"class_weights must be finite and >= 0, got {weights.tolist()}")
    return weights.clone()


class _SegLoss(nn.Module):
    """Shared input checks and the ignore mask.

    Args:
        num_classes: K, the number of logit channels.
        ignore_index: target value excluded from the loss.
        class_weights: optional ``(K,)`` non-negative weights.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_weights: ClassWeights | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise LossSpecError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_weights: torch.Tensor | None
        self.register_buffer(
            "class_weights", _as_weight_tensor(class_weights, num_classes), persistent=False
        )

    def _check(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Validate inputs and return the valid-pixel mask ``(B, H, W)`` bool."""
        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise ShapeError(
                f"logits must be (B, K={self.num_classes}, H, W), got {tuple(logits.shape)}"
            )
        if target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ShapeError(
                f"target must be (B, H, W) = {(logits.shape[0], *logits.shape[2:])} "
                f"matching logits {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        if target.is_floating_point() or target.dtype == torch.bool:
            raise ShapeError(f"target must hold integer class indices, got dtype {target.dtype}")
        valid = target != self.ignore_index
        if valid.any():
            values = target[valid]
            low, high = int(values.min()), int(values.max())
            if low < 0 or high >= self.num_classes:
                raise ShapeError(
                    f"target values must be in [0, {self.num_classes}) or "
                    f"ignore_index={self.ignore_index}, found range [{low}, {high}]"
                )
        return valid

    def extra_repr(self) -> str:
        weighted = self.class_weights is not None
        return (
            f"num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"weighted={weighted}"
        )


class CrossEntropyLoss(_SegLoss):
    """Cross-entropy over valid pixels; with class weights, the weighted mean
    ``sum_i w[y_i] * ce_i / sum_i w[y_i]`` (as :func:`torch.nn.functional.cross_entropy`).
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: logits ``(B, K, H, W)`` float; target ``(B, H, W)`` int. Returns a scalar."""
        valid = self._check(logits, target)
        if not valid.any():
            return logits.sum() * 0.0
        return F.cross_entropy(
            logits,
            target.long(),
            weight=self.class_weights,
            ignore_index=self.ignore_index,
            reduction="mean",
        )


class FocalLoss(_SegLoss):
    """Focal loss (Lin et al. 2017): ``-(1 - p_t)^gamma * log p_t`` per valid pixel.

    Reduced like the weighted cross-entropy (class weights act as alpha), so
    ``gamma=0`` gives exactly :class:`CrossEntropyLoss`.

    Args:
        gamma: focusing parameter >= 0 (2 is the usual choice).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_weights: ClassWeights | None = None,
        gamma: float = 2.0,
    ) -> None:
        super().__init__(num_classes, ignore_index, class_weights)
        if not gamma >= 0:
            raise LossSpecError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: logits ``(B, K, H, W)`` float; target ``(B, H, W)`` int. Returns a scalar."""
        valid = self._check(logits, target)
        if not valid.any():
            return logits.sum() * 0.0
        safe_target = torch.where(valid, target.long(), 0).unsqueeze(1)
        log_pt = F.log_softmax(logits, dim=1).gather(1, safe_target).squeeze(1)
        loss = -log_pt
        if self.gamma > 0:
            # For gamma < 1 the power's slope is infinite at 0: keep the base above 0.
            floor = torch.finfo(loss.dtype).eps if self.gamma < 1 else 0.0
            loss = (1.0 - log_pt.exp()).clamp(min=floor).pow(self.gamma) * loss
        weight = valid.to(loss.dtype)
        if self.class_weights is not None:
            weight = weight * self.class_weights.to(loss.dtype)[safe_target.squeeze(1)]
        return (loss * weight).sum() / weight.sum().clamp(min=torch.finfo(loss.dtype).tiny)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}"


class _OverlapLoss(_SegLoss):
    """Soft-overlap losses computed per class over the whole batch.

    Args:
        smooth: added to numerator and denominator; keeps classes absent from both
            prediction and target at a score of 1 (loss 0) and gradients finite.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_weights: ClassWeights | None = None,
        smooth: float = 1.0,
    ) -> None:
        super().__init__(num_classes, ignore_index, class_weights)
        if not smooth >= 0:
            raise LossSpecError(f"smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)

    def _score(self, intersection: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: logits ``(B, K, H, W)`` float; target ``(B, H, W)`` int. Returns a scalar."""
        valid = self._check(logits, target)
        if not valid.any():
            return logits.sum() * 0.0
        probs = logits.softmax(dim=1)
        mask = valid.unsqueeze(1).to(probs.dtype)  # (B, 1, H, W)
        probs = probs * mask
        safe_target = torch.where(valid, target.long(), 0)
        one_hot = F.one_hot(safe_target, self.num_classes).permute(0, 3, 1, 2).to(probs.dtype)
        one_hot = one_hot * mask
        dims = (0, 2, 3)
        intersection = (probs * one_hot).sum(dims)  # (K,)
        total = probs.sum(dims) + one_hot.sum(dims)  # (K,)
        score = self._score(intersection, total)
        loss = 1.0 - score
        if self.class_weights is None:
            return loss.mean()
        weights = self.class_weights.to(loss.dtype)
        return (loss * weights).sum() / weights.sum().clamp(min=torch.finfo(loss.dtype).tiny)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, smooth={self.smooth}"


class DiceLoss(_OverlapLoss):
    """``1 - mean_k (2 I_k + s) / (|P_k| + |T_k| + s)`` on softmax probabilities."""

    def _score(self, intersection: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(total.dtype).eps
        return (2.0 * intersection + self.smooth) / (total + self.smooth).clamp(min=eps)


class JaccardLoss(_OverlapLoss):
    """``1 - mean_k (I_k + s) / (|P_k| + |T_k| - I_k + s)`` (soft IoU) on softmax probabilities."""

    def _score(self, intersection: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(total.dtype).eps
        return (intersection + self.smooth) / (total - intersection + self.smooth).clamp(min=eps)


class WeightedSumLoss(nn.Module):
    """``sum_i weight_i * loss_i(logits, target)``.

    Args:
        terms: loss modules by name (``{"ce": CrossEntropyLoss(...), ...}``).
        weights: non-negative weight of each term, same keys.
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        if set(terms) != set(weights):
            raise LossSpecError(f"terms {sorted(terms)} and weights {sorted(weights)} differ")
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = {name: float(weights[name]) for name in terms}

    def forward_terms(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each unweighted term plus ``"total"`` (the weighted sum), for logging.

        Args:
            logits: ``(B, K, H, W)`` float.
            target: ``(B, H, W)`` int.

        Returns:
            Scalar tensors by term name, and ``"total"``.
        """
        parts = {name: term(logits, target) for name, term in self.terms.items()}
        total = logits.new_zeros(())
        for name, value in parts.items():
            total = total + self.weights[name] * value
        parts["total"] = total
        return parts

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: logits ``(B, K, H, W)`` float; target ``(B, H, W)`` int. Returns a scalar."""
        return self.forward_terms(logits, target)["total"]

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{n}" for n, w in self.weights.items())


_LOSSES: dict[str, Callable[..., nn.Module]] = {
    "ce": CrossEntropyLoss,
    "dice": DiceLoss,
    "jaccard": JaccardLoss,
    "focal": FocalLoss,
}


def list_losses() -> list[str]:
    """Loss names accepted in a spec, sorted."""
    return sorted(_LOSSES)


# One term of a string spec: "name" or "weight*name", e.g. "0.5*dice".
_TERM = re.compile(
    r"^\s*(?:(?P<weight>[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*\*\s*)?(?P<name>[a-z_]+)\s*$"
)


def _parse_spec(spec: str | Mapping[str, Any]) -> dict[str, tuple[float, dict[str, Any]]]:
    """Normalise a spec to ``{name: (weight, params)}``."""
    parsed: dict[str, tuple[float, dict[str, Any]]] = {}
    if isinstance(spec, str):
        if not spec.strip():
            raise LossSpecError("empty loss spec; use e.g. 'ce' or 'ce+dice'")
        for raw in spec.lower().split("+"):
            match = _TERM.match(raw)
            if match is None:
                raise LossSpecError(
                    f"cannot parse loss term {raw.strip()!r} in {spec!r}; "
                    "write 'name' or 'weight*name', joined by '+'"
                )
            name = match["name"]
            weight = float(match["weight"]) if match["weight"] else 1.0
            if name in parsed:
                raise LossSpecError(f"loss {name!r} appears twice in {spec!r}")
            parsed[name] = (weight, {})
    elif isinstance(spec, Mapping):
        if not spec:
            raise LossSpecError("empty loss spec; use e.g. {'ce': 1.0, 'dice': 0.5}")
        for raw_name, value in spec.items():
            name = str(raw_name).lower()
            if isinstance(value, Mapping):
                params = dict(value)
                weight = float(params.pop("weight", 1.0))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                params, weight = {}, float(value)
            else:
                raise LossSpecError(
                    f"loss {name!r}: expected a weight or a dict of parameters, got {value!r}"
                )
            parsed[name] = (weight, params)
    else:
        raise LossSpecError(f"loss spec must be a str or a dict, got {type(spec).__name__}")
    for name, (weight, _) in parsed.items():
        if name not in _LOSSES:
            raise KeyError(f"unknown loss {name!r}; valid losses: {', '.join(list_losses())}")
        if not (math.isfinite(weight) and weight >= 0):
            raise LossSpecError(f"loss {name!r}: weight must be finite and >= 0, got {weight}")
    return parsed


def build_loss(
    spec: str | Mapping[str, Any],
    num_classes: int,
    ignore_index: int = 255,
    class_weights: ClassWeights | None = None,
) -> nn.Module:
    """Build a loss, or a weighted sum of losses, from a spec.

    Args:
        spec: a name (``"ce"``, ``"dice"``, ``"jaccard"``, ``"focal"``), a sum with
            optional weights (``"ce+0.5*dice"``), or a dict ``{name: weight}`` /
            ``{name: {"weight": w, **params}}`` (e.g. ``{"focal": {"gamma": 3}}``).
        num_classes: K, the number of logit channels.
        ignore_index: target value excluded from every term.
        class_weights: optional ``(K,)`` non-negative weights applied to every term (see
            :func:`class_weights_from_pixel_counts`).

    Returns:
        A module ``loss(logits (B, K, H, W) float, target (B, H, W) int) -> scalar``.
        A single term of weight 1 is returned bare; anything else is a
        :class:`WeightedSumLoss` (its ``forward_terms`` gives the parts).

    Raises:
        KeyError: unknown loss name (message lists the valid names).
        LossSpecError: malformed spec, weight or parameter.
        ShapeError: ``class_weights`` is not ``(K,)``.

    Example:
        >>> loss_fn = build_loss({"focal": {"gamma": 2.0}, "dice": 0.5}, num_classes=4)
        >>> sorted(loss_fn.weights.items())
        [('dice', 0.5), ('focal', 1.0)]
    """
    parsed = _parse_spec(spec)
    terms: dict[str, nn.Module] = {}
    for name, (_, params) in parsed.items():
        try:
            terms[name] = _LOSSES[name](
                num_classes=num_classes,
                ignore_index=ignore_index,
                class_weights=class_weights,
                **params,
            )
        except TypeError as exc:
            raise LossSpecError(f"loss {name!r}: bad parameters {params}: {exc}") from exc
    if len(terms) == 1:
        name = next(iter(terms))
        if parsed[name][0] == 1.0:
            return terms[name]
    return WeightedSumLoss(terms, {name: weight for name, (weight, _) in parsed.items()})


_WEIGHT_METHODS = ("inverse", "inverse_sqrt", "median_freq")


def class_weights_from_pixel_counts(
    counts: Sequence[int] | np.ndarray | torch.Tensor,
    method: str = "inverse_sqrt",
    normalize: bool = True,
) -> torch.Tensor:
    """Class weights from per-class pixel counts, to counter class imbalance.

    With ``f_k = counts_k / sum(counts)``:

    * ``"inverse"``: ``1 / f_k``;
    * ``"inverse_sqrt"``: ``1 / sqrt(f_k)`` (milder);
    * ``"median_freq"``: ``median(f) / f_k`` (Eigen & Fergus 2015; the median is over
      classes with pixels).

    Classes with zero pixels get weight 0 (they cannot appear in the loss anyway).

    Args:
        counts: ``(K,)`` non-negative pixel counts (ignored pixels excluded).
        method: one of the above.
        normalize: rescale so the weights of classes with pixels average to 1.

    Returns:
        ``(K,)`` float32 tensor.

    Raises:
        ShapeError: ``counts`` is not 1-D.
        ValueError: unknown method, negative counts or all counts zero.

    Example:
        >>> class_weights_from_pixel_counts([900, 100], method="inverse", normalize=False)
        tensor([ 1.1111, 10.0000])
    """
    if method not in _WEIGHT_METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(_WEIGHT_METHODS)}")
    if isinstance(counts, torch.Tensor):
        values = counts.detach().cpu().to(torch.float64).numpy()
    else:
        values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ShapeError(f"counts must be (K,) with K >= 1, got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"counts must be finite and >= 0, got {values.tolist()}")
    total = values.sum()
    if total <= 0:
        raise ValueError("all pixel counts are zero; cannot derive class weights")
    present = values > 0
    freq = values / total
    weights = np.zeros_like(freq)
    if method == "inverse":
        weights[present] = 1.0 / freq[present]
    elif method == "inverse_sqrt":
        weights[present] = 1.0 / np.sqrt(freq[present])
    else:
        weights[present] = np.median(freq[present]) / freq[present]
    if normalize:
        weights[present] /= weights[present].mean()
    return torch.as_tensor(weights, dtype=torch.float32)
