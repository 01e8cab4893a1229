"""The one-line entry point: ``pixelwise.load(...)`` returns a ready :class:`Segmenter`.

The model file's extension picks the backend. Today a Pixelwise checkpoint (``.pt`` /
``.pth``, written by training or :func:`pixelwise.models.checkpoint.save_checkpoint`)
runs on PyTorch. Exported models (``.onnx``, ``.tflite``) and named pretrained models
will be added in :data:`_LOADERS` / :func:`load` (the single dispatch point).

Example:
    >>> import pixelwise
    >>> model = pixelwise.load("best.pt")  # doctest: +SKIP
    >>> result = model.predict("img.jpg")  # doctest: +SKIP
    >>> result.regions[0].area, result.overlay().shape  # doctest: +SKIP
    (412, (480, 640, 3))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelwise.core.errors import DataError
from pixelwise.runtime.predictor import Segmenter

__all__ = ["ModelLoadError", "load"]


class ModelLoadError(DataError):
    """A model path or name that :func:`load` cannot turn into a segmenter."""


def _load_checkpoint(path: Path, num_threads: int | None, device: str, **options: Any) -> Segmenter:
    from pixelwise.models.checkpoint import load_checkpoint
    from pixelwise.runtime.torch_backend import TorchBackend

    checkpoint = load_checkpoint(path)
    backend = TorchBackend.from_checkpoint(checkpoint, num_threads=num_threads, device=device)
    return Segmenter(backend, checkpoint.taxonomy, checkpoint.preprocess, task=checkpoint.task, **options)


#: Model file extension -> loader. The dispatch point for new backends.
_LOADERS: dict[str, Callable[..., Segmenter]] = {
    ".pt": _load_checkpoint,
    ".pth": _load_checkpoint,
}

#: Extensions recognised but not loadable yet, with the reason shown to the user.
_PLANNED: dict[str, str] = {
    ".onnx": "ONNX Runtime models are not supported yet",
    ".tflite": "LiteRT (TensorFlow Lite) models are not supported yet",
}


def load(
    path_or_name: str | Path,
    *,
    num_threads: int | None = None,
    device: str = "cpu",
    **options: Any,
) -> Segmenter:
    """Load a model for inference.

    Args:
        path_or_name: a model file. ``.pt`` / ``.pth`` must be a Pixelwise checkpoint
            (model config, weights, taxonomy and preprocessing in one file).
        num_threads: CPU threads used by the backend (None: the library default).
        device: torch device for ``.pt`` models (``"cpu"``, ``"cuda:0"``).
        **options: passed to :class:`~pixelwise.runtime.Segmenter` (``batch_size``,
            ``background_id``).

    Returns:
        A :class:`~pixelwise.runtime.Segmenter`; call ``.predict(image)``.

    Raises:
        ModelLoadError: unknown extension, a format not supported yet, or a name that is
            neither a file nor a known model.
        CheckpointError: the ``.pt`` file is missing, unreadable or not a Pixelwise
            checkpoint.

    Example:
        >>> import pixelwise
        >>> seg = pixelwise.load("runs/exp1/best.pt", num_threads=2)  # doctest: +SKIP
    """
    path = Path(path_or_name)
    suffix = path.suffix.lower()
    if suffix in _LOADERS:
        return _LOADERS[suffix](path, num_threads=num_threads, device=device, **options)
    if suffix in _PLANNED:
        raise ModelLoadError(path, _PLANNED[suffix], f"use a Pixelwise .pt checkpoint; loadable: {', '.join(_LOADERS)}")
    if suffix:
        raise ModelLoadError(
            path,
            f"unknown model file extension {suffix!r}",
            f"loadable extensions: {', '.join(_LOADERS)}",
        )
    raise ModelLoadError(
        path,
        "not a model file and not a known pretrained model name (no named models are available yet)",
        f"pass a Pixelwise checkpoint file ({', '.join(_LOADERS)})",
    )
