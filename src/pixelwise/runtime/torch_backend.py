"""PyTorch backend: a :class:`~pixelwise.models.SegmentationModel` behind the
:class:`~pixelwise.runtime.predictor.Predictor` interface (CPU or any torch device).

Example:
    >>> from pixelwise.models import create_model
    >>> backend = TorchBackend(create_model("unet", num_classes=2))
    >>> backend.predict_scores(np.zeros((1, 3, 50, 70), np.float32)).shape
    (1, 2, 50, 70)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from pixelwise.core.errors import ShapeError
from pixelwise.models.checkpoint import Checkpoint, load_checkpoint
from pixelwise.models.semantic import SegmentationModel

__all__ = ["TorchBackend"]


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, then restore the previous setting."""
    if count is None or count == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchBackend:
    """Run a segmentation model with PyTorch under :func:`torch.inference_mode`.

    Any input height and width is accepted: the model pads to its required divisor
    (reflection) and crops the scores back (:meth:`SegmentationModel.predict`).

    Args:
        model: the network; it is put in eval mode and moved to ``device``.
        num_threads: intra-op CPU threads used during :meth:`predict_scores` (the global
            torch setting is restored afterwards); None keeps torch's setting.
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.

    Attributes:
        name: ``"torch"``.
        num_classes: K, the model's output channels.
    """

    name = "torch"

    def __init__(self, model: SegmentationModel, num_threads: int | None = None, device: str = "cpu") -> None:
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.num_threads = num_threads
        self.num_classes = int(model.num_classes)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Checkpoint | str | Path, num_threads: int | None = None, device: str = "cpu"
    ) -> TorchBackend:
        """Build the model of a Pixelwise checkpoint (a loaded one or a ``.pt`` path).

        Raises:
            CheckpointError: unreadable file or weights that do not fit the architecture.
        """
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = load_checkpoint(checkpoint)
        return cls(checkpoint.build_model(), num_threads=num_threads, device=device)

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        """Logits of a preprocessed batch.

        Args:
            batch: ``(B, C, h, w) float32`` normalised images, C = the model's input channels.

        Returns:
            ``(B, K, h, w) float32`` logits on the CPU.

        Raises:
            ShapeError: wrong number of axes or channels, or a non-float array.
        """
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1] != self.model.in_channels:
            raise ShapeError(
                f"batch must be (B, {self.model.in_channels}, h, w) float32, got shape {batch.shape}"
            )
        if batch.dtype.kind != "f":
            raise ShapeError(f"batch must be float32 (normalised), got dtype {batch.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with _threads(self.num_threads), torch.inference_mode():
            logits = self.model.predict(tensor)
        return logits.float().cpu().numpy()

    def __repr__(self) -> str:
        return (
            f"TorchBackend(model={self.model.name}-{self.model.encoder_name}, classes={self.num_classes}, "
            f"device={self.device}, num_threads={self.num_threads})"
        )
