"""The one-line entry point: ``pixelwise.load(...)`` returns a ready :class:`Segmenter`.

The model file's extension picks the backend: a Pixelwise checkpoint (``.pt`` / ``.pth``)
runs on PyTorch, an exported ``.onnx`` model (with its sidecar JSON) on ONNX Runtime, a
``.tflite`` model on LiteRT. A built-in name (``"person"``, ``"person-landscape"``: the
MediaPipe selfie models shipped in the package) loads without any file.
:data:`_LOADERS` / :func:`load` are the single dispatch point.

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


def _load_onnx(path: Path, num_threads: int | None, device: str, **options: Any) -> Segmenter:
    from pixelwise.runtime.onnx_backend import load_onnx

    return load_onnx(path, num_threads=num_threads, **options)


def _load_tflite(path: Path, num_threads: int | None, device: str, **options: Any) -> Segmenter:
    from pixelwise.runtime.litert_backend import load_tflite

    if num_threads is None:
        return load_tflite(path, **options)
    return load_tflite(path, num_threads=num_threads, **options)


#: Model file extension -> loader. The dispatch point for new backends.
_LOADERS: dict[str, Callable[..., Segmenter]] = {
    ".pt": _load_checkpoint,
    ".pth": _load_checkpoint,
    ".onnx": _load_onnx,
    ".tflite": _load_tflite,
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
        path_or_name: a model file or a built-in model name. ``.pt`` / ``.pth`` must be
            a Pixelwise checkpoint (model config, weights, taxonomy and preprocessing in
            one file); ``.onnx`` needs its sidecar ``.onnx.json`` from ``pixelwise export``;
            ``.tflite`` runs on LiteRT; ``"person"`` is the built-in person model.
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
    from pixelwise.runtime.builtin import is_builtin, list_builtin_models, load_builtin

    path = Path(path_or_name)
    if is_builtin(str(path_or_name)) and not path.exists():
        threads = 2 if num_threads is None else num_threads
        return load_builtin(str(path_or_name), num_threads=threads, **options)
    suffix = path.suffix.lower()
    if suffix in _LOADERS:
        return _LOADERS[suffix](path, num_threads=num_threads, device=device, **options)
    if suffix:
        raise ModelLoadError(
            path,
            f"unknown model file extension {suffix!r}",
            f"loadable extensions: {', '.join(_LOADERS)}",
        )
    raise ModelLoadError(
        path,
        "not a model file and not a known built-in model name",
        f"pass a model file ({', '.join(_LOADERS)}) or one of {', '.join(list_builtin_models())}",
    )
