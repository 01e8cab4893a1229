"""Rebuild structurally pruned models from a checkpoint (pure PyTorch, layer 3).

Channel pruning (:mod:`pixelwise.training.prune`) removes whole channels, so a pruned
network no longer matches what :func:`~pixelwise.models.create_model` builds. The
checkpoint therefore records, in its model config, the shape of every parameter and
buffer that pruning changed::

    checkpoint["model"] = {"name": "unet", "encoder": "resnet18", "num_classes": 2,
                           "in_channels": 3,
                           "pruned_shapes": {"encoder.conv1.weight": [44, 3, 7, 7], ...}}

:func:`apply_pruned_shapes` rebuilds the narrower architecture by shrinking each affected
layer (Conv, BatchNorm, Linear, GroupNorm, LayerNorm) to the recorded shape, so
``load_state_dict(strict=True)`` then restores the pruned weights. Which channels were
kept does not matter here: the state dict holds only the kept ones. Depthwise
convolutions keep ``groups == channels``.

Example:
    >>> from pixelwise.models.pruned import create_model_from_config
    >>> model = create_model_from_config({"name": "unet", "encoder": "resnet18", "num_classes": 2})
    >>> model.num_classes
    2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.core.errors import PixelwiseError
from pixelwise.models.registry import create_model
from pixelwise.models.semantic import SegmentationModel

__all__ = [
    "PRUNED_SHAPES_KEY",
    "PrunedShapeError",
    "apply_pruned_shapes",
    "create_model_from_config",
    "pruned_shapes",
]

#: Key of the ``{param_or_buffer_name: shape}`` entry in a checkpoint's model config.
PRUNED_SHAPES_KEY = "pruned_shapes"


class PrunedShapeError(PixelwiseError, ValueError):
    """Recorded pruned shapes do not fit the architecture they are applied to."""


def pruned_shapes(reference: nn.Module, pruned: nn.Module) -> dict[str, list[int]]:
    """Shapes of every parameter and buffer that differ between two models of one architecture.

    Args:
        reference: the unpruned model (as ``create_model`` builds it).
        pruned: the same model after structural pruning.

    Returns:
        ``{state_dict key: shape as a list of ints}`` for the entries whose shape changed
        (JSON- and ``weights_only``-friendly).

    Raises:
        PrunedShapeError: the two state dicts do not have the same keys.
    """
    ref = reference.state_dict()
    new = pruned.state_dict()
    if set(ref) != set(new):
        missing = sorted(set(ref) ^ set(new))[:5]
        raise PrunedShapeError(f"models differ in their state-dict keys (e.g. {missing}); pruning must keep every layer")
    return {k: [int(s) for s in new[k].shape] for k in new if tuple(new[k].shape) != tuple(ref[k].shape)}


def _resize_tensor(tensor: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return torch.zeros(tuple(int(s) for s in shape), dtype=tensor.dtype, device=tensor.device)


def _shrink_module(module: nn.Module, prefix: str, shapes: Mapping[str, Sequence[int]]) -> set[str]:
    """Resize one leaf module's tensors to the recorded shapes; return the keys it consumed."""
    used: set[str] = set()
    for kind, names in (("param", list(module._parameters)), ("buffer", list(module._buffers))):
        for local in names:
            key = f"{prefix}{local}"
            if key not in shapes:
                continue
            current = module._parameters[local] if kind == "param" else module._buffers[local]
            if current is None:
                continue
            new = _resize_tensor(current, shapes[key])
            if kind == "param":
                module._parameters[local] = nn.Parameter(new, requires_grad=current.requires_grad)
            else:
                module._buffers[local] = new
            used.add(key)
    if not used:
        return used
    if isinstance(module, nn.modules.conv._ConvNd):
        weight = module.weight
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            module.in_channels = int(weight.shape[0])
            module.out_channels = int(weight.shape[1]) * module.groups
        elif depthwise:
            module.out_channels = int(weight.shape[0])
            module.in_channels = module.out_channels
            module.groups = module.out_channels
        else:
            module.out_channels = int(weight.shape[0])
            module.in_channels = int(weight.shape[1]) * module.groups
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        source = module.weight if module.weight is not None else module.running_mean
        if source is not None:
            module.num_features = int(source.shape[0])
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = (int(s) for s in module.weight.shape)
    elif isinstance(module, nn.GroupNorm):
        module.num_channels = int(module.weight.shape[0])
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(int(s) for s in module.weight.shape)
    else:
        raise PrunedShapeError(
            f"layer {prefix.rstrip('.')!r} ({type(module).__name__}) cannot be rebuilt at a pruned width; "
            "only Conv, BatchNorm, Linear, GroupNorm and LayerNorm layers can be pruned"
        )
    return used


def apply_pruned_shapes(model: nn.Module, shapes: Mapping[str, Sequence[int]]) -> nn.Module:
    """Shrink a freshly built model, in place, to the recorded pruned shapes.

    Tensors are replaced by zeros of the new shapes; load the pruned state dict afterwards.

    Args:
        model: an unpruned model of the architecture the shapes came from.
        shapes: ``{state_dict key: shape}`` as returned by :func:`pruned_shapes`.

    Returns:
        The same model, for chaining.

    Raises:
        PrunedShapeError: a key that the model does not have, or a layer type that
            cannot change width.
    """
    used: set[str] = set()
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if any(key.startswith(prefix) for key in shapes):
            used |= _shrink_module(module, prefix, shapes)
    unknown = sorted(set(shapes) - used)
    if unknown:
        raise PrunedShapeError(
            f"pruned shapes name {len(unknown)} tensors this architecture does not have (e.g. {unknown[:3]})",
        )
    model.pruned_shapes = {k: [int(s) for s in v] for k, v in shapes.items()}  # type: ignore[assignment]
    return model


def create_model_from_config(config: Mapping[str, Any]) -> SegmentationModel:
    """Build a model from a checkpoint's model config, re-applying recorded pruning.

    Args:
        config: ``create_model`` keyword arguments, optionally with ``"pruned_shapes"``.

    Returns:
        The (possibly narrower) model with freshly initialised or zero weights; load the
        checkpoint's state dict next.
    """
    kwargs = dict(config)
    shapes = kwargs.pop(PRUNED_SHAPES_KEY, None)
    model = create_model(**kwargs)
    if shapes:
        apply_pruned_shapes(model, shapes)
    return model
