"""Load and save model weights, tolerating partial matches for transfer learning.

:func:`load_weights` accepts three payloads, from a ``.safetensors`` file or a PyTorch
file (read with ``torch.load(weights_only=True)``, so no code in the file runs):

* a full model state dict (``encoder.*``, ``decoder.*``, ``segmentation_head.*``);
* an encoder-only state dict, keys with or without the ``encoder.`` prefix;
* a Pixelwise checkpoint dict holding the state dict under ``"model_state"``
  (``"state_dict"`` is accepted too).

Keys whose shapes differ from the model's (typically the segmentation head when the
class count changed) are skipped and reported; the model keeps its own (fresh) values
for them. Prefixes added by ``DataParallel`` (``module.``) and ``torch.compile``
(``_orig_mod.``) are removed.

Pretrained ImageNet encoders are not loaded here: pass ``encoder_weights="imagenet"`` to
:func:`pixelwise.models.create_model`, which hands it to segmentation_models_pytorch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pixelwise.core.errors import DataError

__all__ = ["LoadReport", "WeightsError", "load_weights", "read_state_dict", "save_weights"]

_HEAD_PREFIX = "segmentation_head."
_ENCODER_PREFIX = "encoder."
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_CHECKPOINT_KEYS = ("model_state", "state_dict")


class WeightsError(DataError):
    """A weights file cannot be read or does not fit the model (nothing matched, head
    mismatch with ``strict_head=True``)."""


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        path: file that was read.
        kind: ``"full"``, ``"encoder"`` (encoder-only state dict) or ``"checkpoint"``
            (a dict holding ``"model_state"``).
        loaded: model keys whose values were copied from the file.
        skipped_shape_mismatch: ``(model key, shape in file, shape in model)`` for keys
            present in both but with different shapes; the model keeps its own values.
        missing: model keys absent from the file (kept as initialised).
        unexpected: file keys that match no model key (ignored).
    """

    path: Path
    kind: str
    loaded: tuple[str, ...]
    skipped_shape_mismatch: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def head_reinitialised(self) -> bool:
        """True when some segmentation-head tensor was skipped for its shape."""
        return any(k.startswith(_HEAD_PREFIX) for k, _, _ in self.skipped_shape_mismatch)

    def summary(self) -> str:
        """One line for logs."""
        parts = [
            f"{self.path.name} ({self.kind}): loaded {len(self.loaded)}",
            f"shape-mismatch {len(self.skipped_shape_mismatch)}",
            f"missing {len(self.missing)}",
            f"unexpected {len(self.unexpected)}",
        ]
        text = ", ".join(parts)
        if self.skipped_shape_mismatch:
            first = ", ".join(
                f"{k} {list(f)}->{list(m)}" for k, f, m in self.skipped_shape_mismatch[:3]
            )
            text += f" [skipped: {first}{', ...' if len(self.skipped_shape_mismatch) > 3 else ''}]"
        return text


def _is_safetensors(path: Path) -> bool:
    """Sniff the safetensors header: u64 little-endian length, then a JSON object."""
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) < 9 or head[:2] == b"PK":  # torch zip archives start with PK
        return False
    size = int.from_bytes(head[:8], "little")
    return 0 < size < 100_000_000 and head[8:9] == b"{"


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read a state dict from a safetensors or PyTorch file, on CPU.

    Args:
        path: ``.safetensors`` file, or a ``torch.save`` file (``.pt``, ``.pth``, ``.ckpt``).

    Returns:
        ``(state_dict, kind)``: tensors by key (wrapper prefixes removed) and
        ``"checkpoint"`` if it came from a ``"model_state"`` entry, else ``"state_dict"``.

    Raises:
        WeightsError: missing or unreadable file, or no tensor dict inside.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "weights file not found")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - readers raise many types; re-raise as one
        raise WeightsError(
            path,
            f"cannot read weights ({type(exc).__name__}: {exc})",
            "expected a .safetensors file or a torch.save file of tensors",
        ) from exc

    kind = "state_dict"
    if isinstance(obj, Mapping):
        for key in _CHECKPOINT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                kind = "checkpoint"
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(
            path,
            f"no state dict inside (found {type(obj).__name__})",
            "save with torch.save(model.state_dict(), path) or pixelwise.models.save_weights",
        )
    tensors: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue  # e.g. epoch counters stored next to tensors
        for prefix in _WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        tensors[key] = value
    if not tensors:
        raise WeightsError(path, "the dict inside holds no tensors")
    return tensors, kind


def load_weights(model: nn.Module, path: str | Path, strict_head: bool = False) -> LoadReport:
    """Copy matching tensors from a weights file into ``model``, in place.

    Args:
        model: the model to fill (typically from :func:`~pixelwise.models.create_model`).
        path: ``.safetensors`` or PyTorch file (see the module docstring for payloads).
        strict_head: raise instead of skipping when a ``segmentation_head`` tensor has a
            different shape (use when the class count must match, e.g. for inference).

    Returns:
        A :class:`LoadReport` of loaded, shape-mismatched, missing and unexpected keys.

    Raises:
        WeightsError: unreadable file, no key matched the model (wrong file), or head
            mismatch with ``strict_head=True``. The message names the file.

    Example:
        >>> from pixelwise.models import create_model, load_weights  # doctest: +SKIP
        >>> model = create_model("unet", num_classes=5)  # doctest: +SKIP
        >>> report = load_weights(model, "unet_3classes.safetensors")  # doctest: +SKIP
        >>> report.head_reinitialised  # doctest: +SKIP
        True
    """
    path = Path(path)
    source, kind = read_state_dict(path)
    target = model.state_dict()

    direct = sum(k in target for k in source)
    prefixed = sum(_ENCODER_PREFIX + k in target for k in source)
    if prefixed > direct:
        source = {_ENCODER_PREFIX + k: v for k, v in source.items()}

    loaded: dict[str, torch.Tensor] = {}
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    unexpected: list[str] = []
    for key, value in source.items():
        if key not in target:
            unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            mismatched.append((key, tuple(value.shape), tuple(target[key].shape)))
        else:
            loaded[key] = value

    if not loaded:
        sample_file = ", ".join(list(source)[:3])
        sample_model = ", ".join(list(target)[:3])
        reason = (
            f"no tensor matches the model ({len(source)} keys in file, "
            f"{len(mismatched)} with the right name but wrong shape)"
        )
        raise WeightsError(
            path,
            reason,
            f"file keys look like [{sample_file}], model keys like [{sample_model}]; "
            "is this the right file for this architecture and encoder?",
        )
    head_mismatch = [m for m in mismatched if m[0].startswith(_HEAD_PREFIX)]
    if strict_head and head_mismatch:
        key, in_file, in_model = head_mismatch[0]
        raise WeightsError(
            path,
            f"segmentation head shape differs: {key} is {list(in_file)} in the file "
            f"and {list(in_model)} in the model",
            "build the model with the class count of the weights, or pass strict_head=False "
            "to re-initialise the head",
        )

    model.load_state_dict(loaded, strict=False)
    if kind == "state_dict":
        kind = "encoder" if all(k.startswith(_ENCODER_PREFIX) for k in source) else "full"
    return LoadReport(
        path=path,
        kind=kind,
        loaded=tuple(loaded),
        skipped_shape_mismatch=tuple(mismatched),
        missing=tuple(k for k in target if k not in source),
        unexpected=tuple(unexpected),
    )


def save_weights(model: nn.Module, path: str | Path, encoder_only: bool = False) -> Path:
    """Write a model's state dict (or its encoder part) to ``path``.

    A ``.safetensors`` suffix writes safetensors (with ``model.config()`` as JSON metadata
    under ``"pixelwise_config"`` when the model has one); any other suffix uses
    :func:`torch.save`. Either file loads back with :func:`load_weights`.

    Args:
        model: model to save.
        path: output file; parent folders are created.
        encoder_only: keep only ``encoder.*`` keys (prefix kept) for transfer learning.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if not encoder_only or k.startswith(_ENCODER_PREFIX)
    }
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        metadata: dict[str, str] = {}
        config = getattr(model, "config", None)
        if callable(config):
            metadata["pixelwise_config"] = json.dumps(config())
        save_file(state, str(path), metadata=metadata or None)
    else:
        torch.save(state, path)
    return path
