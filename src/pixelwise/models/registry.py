"""Model registry: build any segmentation model by name through one factory.

Architectures register a builder with :func:`register_model`; users call
:func:`create_model`. A name is either the bare architecture (``"unet"``, the default
encoder is used) or the combined form ``"<architecture>-<encoder>"`` (``"unet-resnet18"``).
Unknown architectures or encoders raise :class:`KeyError` listing the valid names.

Example:
    >>> from pixelwise.models import create_model, list_models
    >>> "unet" in list_models()
    True
    >>> model = create_model("unet-resnet18", num_classes=3)
    >>> model.config()
    {'name': 'unet', 'encoder': 'resnet18', 'num_classes': 3, 'in_channels': 3}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pixelwise.core.errors import PixelwiseError

if TYPE_CHECKING:
    from pixelwise.models.semantic import SegmentationModel

__all__ = [
    "ModelBuilder",
    "ModelConfigError",
    "ModelSpec",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
    "resolve_name",
]


class ModelBuilder(Protocol):
    """Signature of a registered builder (called by :func:`create_model` after validation)."""

    def __call__(
        self,
        *,
        encoder: str,
        num_classes: int,
        encoder_weights: str | None,
        in_channels: int,
    ) -> SegmentationModel: ...


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture.

    Attributes:
        name: registry key, lower case (``"unet"``).
        builder: function that builds the model (see :class:`ModelBuilder`).
        default_encoder: encoder used when none is given.
        encoders: encoder names accepted for this architecture.
        description: one line for listings and the CLI.
    """

    name: str
    builder: ModelBuilder
    default_encoder: str
    encoders: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if self.default_encoder not in self.encoders:
            raise ValueError(
                f"model {self.name!r}: default encoder {self.default_encoder!r} "
                f"is not among its encoders {list(self.encoders)}"
            )


class ModelConfigError(PixelwiseError, ValueError):
    """Arguments to :func:`create_model` contradict each other or are out of range."""


_REGISTRY: dict[str, ModelSpec] = {}


def _ensure_builtin_models() -> None:
    """Import the module registering the built-in architectures (idempotent)."""
    import pixelwise.models.semantic  # noqa: F401 - registers on import


def register_model(
    name: str,
    *,
    default_encoder: str,
    encoders: tuple[str, ...] | list[str],
    description: str = "",
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering a model builder under ``name``.

    Args:
        name: architecture key, lower case, without ``-`` (the dash separates the encoder).
        default_encoder: encoder used when :func:`create_model` gets none.
        encoders: all encoder names this architecture accepts.
        description: one line shown in listings.

    Returns:
        The decorator; it returns the builder unchanged.

    Raises:
        ValueError: ``name`` is empty, contains ``-`` or is already registered.

    Example:
        >>> @register_model(  # doctest: +SKIP
        ...     "tiny", default_encoder="resnet18", encoders=("resnet18",)
        ... )
        ... def _build_tiny(*, encoder, num_classes, encoder_weights, in_channels):
        ...     ...
    """
    key = name.lower()
    if not key or "-" in key:
        raise ValueError(f"model name must be non-empty and contain no '-', got {name!r}")

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        _REGISTRY[key] = ModelSpec(
            name=key,
            builder=builder,
            default_encoder=default_encoder,
            encoders=tuple(encoders),
            description=description,
        )
        return builder

    return decorator


def list_models(with_encoders: bool = False) -> list[str]:
    """Names accepted by :func:`create_model`, sorted.

    Args:
        with_encoders: also list every ``"<architecture>-<encoder>"`` combination.

    Returns:
        Architecture names (and combined names if asked).
    """
    _ensure_builtin_models()
    names = sorted(_REGISTRY)
    if not with_encoders:
        return names
    combined = [f"{n}-{e}" for n in names for e in _REGISTRY[n].encoders]
    return names + combined


def get_model_spec(name: str) -> ModelSpec:
    """Registry entry of an architecture (bare name, not the combined form).

    Raises:
        KeyError: unknown name; the message lists the valid names.
    """
    _ensure_builtin_models()
    key = name.lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; valid models: {', '.join(list_models())}")
    return _REGISTRY[key]


def resolve_name(name: str, encoder: str | None = None) -> tuple[ModelSpec, str]:
    """Split ``name`` into architecture and encoder and check both.

    Args:
        name: ``"unet"`` or ``"unet-resnet18"`` (encoder names may contain dashes,
            e.g. ``"fpn-efficientnet-b0"``: only the first dash splits).
        encoder: explicit encoder; must agree with the one in ``name`` if both are given.

    Returns:
        The architecture spec and the encoder name to use.

    Raises:
        KeyError: unknown architecture or encoder (message lists the valid names).
        ModelConfigError: the encoder in ``name`` and ``encoder`` disagree.
    """
    arch, _, from_name = name.strip().lower().partition("-")
    spec = get_model_spec(arch)
    if from_name and encoder is not None and from_name != encoder.lower():
        raise ModelConfigError(
            f"encoder given twice and they differ: {from_name!r} in name {name!r} "
            f"and encoder={encoder!r}; give only one"
        )
    chosen = (encoder or from_name or spec.default_encoder).lower()
    if chosen not in spec.encoders:
        raise KeyError(
            f"unknown encoder {chosen!r} for model {spec.name!r}; "
            f"valid encoders: {', '.join(spec.encoders)}"
        )
    return spec, chosen


def create_model(
    name: str,
    num_classes: int,
    encoder: str | None = None,
    encoder_weights: str | None = None,
    in_channels: int = 3,
) -> SegmentationModel:
    """Build a segmentation model by name.

    Args:
        name: architecture (``"unet"``, ``"fpn"``, ``"deeplabv3plus"``, ``"segformer"``)
            or combined ``"<architecture>-<encoder>"`` (``"unet-resnet18"``).
        num_classes: number of output channels K of the logits (background included).
        encoder: encoder name; defaults to the architecture's light default.
        encoder_weights: ``None`` for random initialisation, or a pretrained tag such as
            ``"imagenet"`` which is passed to segmentation_models_pytorch unchanged
            (it downloads from the Hugging Face hub, so it needs network access).
        in_channels: number of input channels C (3 for RGB).

    Returns:
        A :class:`~pixelwise.models.semantic.SegmentationModel` mapping ``(B, C, H, W)``
        float32 to logits ``(B, K, H, W)`` float32.

    Raises:
        KeyError: unknown architecture or encoder (message lists the valid names).
        ModelConfigError: ``num_classes < 1``, ``in_channels < 1`` or contradictory encoders.

    Example:
        >>> import torch
        >>> model = create_model("fpn", num_classes=4).eval()
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 4, 64, 64])
    """
    spec, enc = resolve_name(name, encoder)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelConfigError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ModelConfigError(f"in_channels must be an int >= 1, got {in_channels!r}")
    return spec.builder(
        encoder=enc,
        num_classes=num_classes,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
    )
