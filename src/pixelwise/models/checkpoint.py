"""The Pixelwise checkpoint: one file that every later tool needs and nothing else.

A checkpoint is a ``torch.save`` dict of plain types and tensors, so it loads with
``torch.load(weights_only=True)`` (no pickled code is executed):

``format``         "pixelwise-checkpoint"; ``version`` 1
``task``           "semantic" (instance and panoptic tasks add their own)
``model``          ``create_model`` arguments: name, encoder, num_classes, in_channels
``model_state``    the state dict
``taxonomy``       :meth:`Taxonomy.to_dict` (class ids, names, colours, ignore index)
``preprocess``     :meth:`PreprocessConfig.to_dict` (input size, resize policy,
                   normalisation, denoising) so inference repeats training exactly
``metrics``        e.g. best validation mIoU (optional)
``training``       resume state (optional; only in ``last.pt``): epoch, optimiser,
                   scheduler, RNG states, history, run config
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pixelwise.core.errors import DataError
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.models.pruned import create_model_from_config
from pixelwise.models.semantic import SegmentationModel
from pixelwise.transforms.preprocess import PreprocessConfig

CHECKPOINT_FORMAT = "pixelwise-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(DataError):
    """A checkpoint file is missing, unreadable or not a Pixelwise checkpoint."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model_config: ``create_model`` keyword arguments.
        model_state: tensors by key.
        taxonomy: the classes the model predicts (channel k = class id k).
        preprocess: how images become inputs.
        task: "semantic", "instance" or "panoptic".
        metrics: scalar metrics recorded at save time.
        training: resume state, or None.
        path: the file it came from.
    """

    model_config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    taxonomy: Taxonomy
    preprocess: PreprocessConfig
    task: str = "semantic"
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    path: Path | None = None

    def build_model(self) -> SegmentationModel:
        """Rebuild the architecture and load the weights (strict), in eval mode."""
        model = create_model_from_config(self.model_config)  # also rebuilds pruned architectures
        missing, unexpected = model.load_state_dict(self.model_state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                self.path,
                f"weights do not fit {self.model_config['name']}: {len(missing)} missing, {len(unexpected)} unexpected keys",
                "the file may come from another Pixelwise version or architecture",
            )
        return model.eval()


def save_checkpoint(
    path: str | Path,
    model: SegmentationModel,
    taxonomy: Taxonomy,
    preprocess: PreprocessConfig,
    *,
    task: str = "semantic",
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename), so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "task": task,
        "model": model.config(),
        "model_state": state,
        "taxonomy": taxonomy.to_dict(),
        "preprocess": preprocess.to_dict(),
        "metrics": dict(metrics or {}),
    }
    if training is not None:
        payload["training"] = training
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: missing file, unreadable file, or a dict that is not a Pixelwise
            checkpoint (e.g. a bare state dict: use ``--weights`` for those).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
        raise CheckpointError(path, f"cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path,
            "not a Pixelwise checkpoint (no 'format': 'pixelwise-checkpoint' entry)",
            "a bare state dict or encoder weights load with --weights / models.load_weights",
        )
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(path, f"checkpoint version {payload['version']} is newer than this Pixelwise ({CHECKPOINT_VERSION})")
    try:
        return Checkpoint(
            model_config=dict(payload["model"]),
            model_state=payload["model_state"],
            taxonomy=Taxonomy.from_dict(payload["taxonomy"]),
            preprocess=PreprocessConfig.from_dict(payload["preprocess"]),
            task=str(payload.get("task", "semantic")),
            metrics=dict(payload.get("metrics") or {}),
            training=payload.get("training"),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(path, f"checkpoint is missing or has a malformed entry: {exc}") from exc
