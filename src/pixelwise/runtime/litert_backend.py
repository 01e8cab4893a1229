"""LiteRT (TensorFlow Lite) backend: ``.tflite`` models through ``ai_edge_litert``.

TFLite vision models usually take ``(1, H, W, 3)`` NHWC float input and know nothing of
Pixelwise's normalisation. The shared :class:`~pixelwise.runtime.Segmenter` still does all
pre- and post-processing; the model's input convention is expressed as a
:class:`~pixelwise.transforms.preprocess.PreprocessConfig`: for inputs in ``[0, 1]`` (the
MediaPipe convention) use ``mean=(0, 0, 0), std=(1, 1, 1)``, so the Segmenter's
normalised batch *is* ``rgb / 255``. :class:`LiteRTBackend` only transposes NCHW -> NHWC,
runs the interpreter image by image, and turns the output into scores:

- one output channel (a foreground probability ``p``, e.g. the MediaPipe selfie models)
  -> two classes with scores ``[log(1 - p), log(p)]``: the pipeline's softmax gives back
  exactly ``[1 - p, p]`` and the argmax equals thresholding ``p`` at 0.5;
- K channels -> logits (default) or probabilities (returned as ``log(p)``).

Example:
    >>> from pixelwise.runtime.litert_backend import load_tflite  # doctest: +SKIP
    >>> segmenter = load_tflite("selfie.tflite")  # doctest: +SKIP
    >>> segmenter.predict("me.jpg").labels.max()  # doctest: +SKIP
    1
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.errors import DataError, ShapeError
from pixelwise.core.taxonomy import ClassInfo, Taxonomy
from pixelwise.runtime.predictor import Segmenter
from pixelwise.runtime.sidecar import SidecarError, find_sidecar, read_sidecar
from pixelwise.transforms.preprocess import PreprocessConfig

__all__ = ["LITERT_OUTPUT_KINDS", "LiteRTBackend", "LiteRTModelError", "default_taxonomy", "load_tflite"]

#: ``probability``: one channel, foreground probability; ``probabilities``: K softmaxed
#: channels; ``logits``: K raw scores.
LITERT_OUTPUT_KINDS = ("probability", "probabilities", "logits")
_LOG_FLOOR = 1e-30


class LiteRTModelError(DataError):
    """A ``.tflite`` file that LiteRT cannot load, or with inputs/outputs Pixelwise cannot drive."""


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the LiteRT backend needs ai-edge-litert (pip install ai-edge-litert)") from exc
    return Interpreter


class LiteRTBackend:
    """Run a ``.tflite`` segmentation model with the LiteRT interpreter (CPU, XNNPACK).

    Args:
        path: the ``.tflite`` file (also used in messages when ``model_content`` is given).
        num_threads: interpreter threads.
        output_kind: one of :data:`LITERT_OUTPUT_KINDS`; None: ``"probability"`` for a
            one-channel output, ``"logits"`` otherwise.
        model_content: the model bytes (e.g. a packaged resource) instead of reading ``path``.

    Attributes:
        name: ``"litert"``.
        num_classes: K (2 for a one-channel probability output).
        input_hw: the fixed ``(H, W)`` of the model input.
        layout: ``"NHWC"`` or ``"NCHW"`` (of the model input).

    Raises:
        LiteRTModelError: missing, corrupt or non-TFLite file; an input that is not one
            float32 RGB image (rank 4, 3 channels); an output that does not match the input
            size; an unknown ``output_kind``.
    """

    name = "litert"

    def __init__(
        self,
        path: str | Path,
        num_threads: int = 2,
        *,
        output_kind: str | None = None,
        model_content: bytes | None = None,
    ) -> None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        if output_kind is not None and output_kind not in LITERT_OUTPUT_KINDS:
            raise ValueError(f"output_kind must be one of {LITERT_OUTPUT_KINDS} or None, got {output_kind!r}")
        self.path = Path(path)
        self.num_threads = int(num_threads)
        if model_content is None:
            if not self.path.is_file():
                raise LiteRTModelError(self.path, "TFLite model file not found")
            model_content = self.path.read_bytes()
        self._content = model_content  # the interpreter may reference this buffer
        interpreter_cls = _interpreter_class()
        try:
            self.interpreter = interpreter_cls(model_content=model_content, num_threads=self.num_threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # noqa: BLE001 - LiteRT raises ValueError/RuntimeError
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise LiteRTModelError(
                self.path,
                f"LiteRT cannot load this file as a TFLite model ({first})",
                "the file is corrupt, truncated or not a .tflite flatbuffer",
            ) from exc
        self._lock = threading.Lock()
        self._bind(output_kind)

    def _bind(self, output_kind: str | None) -> None:
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise LiteRTModelError(self.path, f"the model has {len(inputs)} inputs; one image input is expected")
        inp, out = inputs[0], outputs[0]
        shape = tuple(int(v) for v in inp["shape"])
        if len(shape) != 4 or shape[0] != 1 or 3 not in (shape[1], shape[3]):
            raise LiteRTModelError(
                self.path, f"model input shape {list(shape)} is not one RGB image (1, H, W, 3) or (1, 3, H, W)"
            )
        if inp["dtype"] != np.float32:
            raise LiteRTModelError(
                self.path,
                f"model input dtype is {np.dtype(inp['dtype']).name}; only float32 inputs are supported",
                "use the float model, or a model with float input and internal quantisation",
            )
        self.layout = "NHWC" if shape[3] == 3 else "NCHW"
        self.input_hw = (shape[1], shape[2]) if self.layout == "NHWC" else (shape[2], shape[3])
        out_shape = tuple(int(v) for v in out["shape"])
        if len(out_shape) == 3:  # (1, H, W): one channel without its axis
            out_shape = (*out_shape, 1)
            self._out_layout = "NHW"
        elif len(out_shape) == 4 and tuple(out_shape[1:3]) == self.input_hw:
            self._out_layout = "NHWC"
        elif len(out_shape) == 4 and tuple(out_shape[2:4]) == self.input_hw:
            self._out_layout = "NCHW"
        else:
            raise LiteRTModelError(
                self.path,
                f"model output shape {list(out['shape'])} does not match its input size {self.input_hw}",
                "only dense per-pixel outputs at the input resolution are supported",
            )
        channels = out_shape[3] if self._out_layout != "NCHW" else out_shape[1]
        kind = output_kind or ("probability" if channels == 1 else "logits")
        if kind == "probability" and channels != 1:
            raise LiteRTModelError(self.path, f"output_kind 'probability' needs one output channel, the model has {channels}")
        if kind != "probability" and channels < 2:
            raise LiteRTModelError(self.path, f"output_kind {kind!r} needs at least 2 output channels, the model has 1")
        self.output_kind = kind
        self.num_classes = 2 if kind == "probability" else int(channels)
        self._input_index = int(inp["index"])
        self._output_index = int(out["index"])

    def raw_output(self, image: np.ndarray) -> np.ndarray:
        """One interpreter invoke on one image in the model's own layout.

        Args:
            image: ``(H, W, 3)`` (NHWC models) or ``(3, H, W)`` (NCHW models) float32.

        Returns:
            The output tensor without its batch axis, copied.
        """
        with self._lock:
            self.interpreter.set_tensor(self._input_index, np.ascontiguousarray(image, dtype=np.float32)[None])
            self.interpreter.invoke()
            return np.array(self.interpreter.get_tensor(self._output_index)[0], copy=True)

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        """Scores of a preprocessed batch (run image by image: the models have batch 1).

        Args:
            batch: ``(B, 3, h, w) float32`` NCHW, already in the model's input range (for
                the MediaPipe models ``rgb / 255``, i.e. preprocess mean 0, std 1).

        Returns:
            ``(B, K, h, w) float32`` scores: log-probabilities for probability outputs,
            logits otherwise.

        Raises:
            ShapeError: wrong rank, channels or dtype, or ``h, w`` different from the
                model's input size.
        """
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ShapeError(f"batch must be (B, 3, h, w) float32, got shape {batch.shape}")
        if batch.dtype.kind != "f":
            raise ShapeError(f"batch must be float32, got dtype {batch.dtype}")
        if tuple(batch.shape[2:]) != self.input_hw:
            raise ShapeError(
                f"{self.path.name} takes {self.input_hw[0]}x{self.input_hw[1]} inputs, got "
                f"{batch.shape[2]}x{batch.shape[3]}; use preprocess input_size={self.input_hw}"
            )
        outputs = []
        for image in batch:
            raw = self.raw_output(image.transpose(1, 2, 0) if self.layout == "NHWC" else image)
            if self._out_layout == "NHW":
                raw = raw[None]
            elif self._out_layout == "NHWC":
                raw = raw.transpose(2, 0, 1)
            outputs.append(raw.astype(np.float32, copy=False))
        out = np.stack(outputs)  # (B, C, h, w)
        floor = np.float32(_LOG_FLOOR)
        if self.output_kind == "probability":
            p = np.clip(out[:, 0], 0.0, 1.0)
            return np.stack([np.log(np.maximum(1.0 - p, floor)), np.log(np.maximum(p, floor))], axis=1)
        if self.output_kind == "probabilities":
            return np.log(np.maximum(out, floor))
        return np.ascontiguousarray(out)

    def __repr__(self) -> str:
        return (
            f"LiteRTBackend(path={str(self.path)!r}, input={self.input_hw} {self.layout}, classes={self.num_classes}, "
            f"output={self.output_kind!r}, num_threads={self.num_threads})"
        )


def default_taxonomy(num_classes: int) -> Taxonomy:
    """Generic classes for a model without a sidecar: background/foreground, or class_0.. class_{K-1}."""
    if num_classes == 2:
        return Taxonomy((ClassInfo(0, "background", (0, 0, 0), False), ClassInfo(1, "foreground", (255, 0, 0), True)))
    return Taxonomy.from_names(["background", *[f"class_{k}" for k in range(1, num_classes)]], stuff=["background"])


def load_tflite(
    path: str | Path,
    taxonomy: Taxonomy | None = None,
    preprocess: PreprocessConfig | None = None,
    *,
    num_threads: int | None = 2,
    output_kind: str | None = None,
    model_content: bytes | None = None,
    **segmenter_options: Any,
) -> Segmenter:
    """A ready :class:`~pixelwise.runtime.Segmenter` for a ``.tflite`` model.

    Classes and preprocessing come from, in order: the arguments, a sidecar
    ``<path>.json`` (same format as for ONNX, layout ``NHWC``), or defaults: generic class
    names (``background`` / ``foreground`` for a one-channel output) and RGB scaled to
    ``[0, 1]`` (``mean=(0, 0, 0), std=(1, 1, 1)``, the MediaPipe convention), resized to the
    model's input size. Pass ``preprocess=`` for models that expect another range.

    Args:
        path: the ``.tflite`` file.
        taxonomy: classes (channel ``k`` = class id ``k``).
        preprocess: how images become inputs.
        num_threads: interpreter threads (None: 2).
        output_kind: see :class:`LiteRTBackend`.
        model_content: model bytes instead of reading ``path``.
        **segmenter_options: ``batch_size``, ``background_id`` for the Segmenter.

    Raises:
        LiteRTModelError: see :class:`LiteRTBackend`.
        SidecarError: an invalid sidecar.
    """
    path = Path(path)
    sidecar = None
    if model_content is None:
        found = find_sidecar(path)
        sidecar = read_sidecar(found) if found is not None else None
    if sidecar is not None and output_kind is None and sidecar.output_kind == "probabilities":
        output_kind = "probability" if sidecar.num_classes == 1 else "probabilities"
    backend = LiteRTBackend(path, num_threads=num_threads or 2, output_kind=output_kind, model_content=model_content)
    if sidecar is not None:
        taxonomy = taxonomy or sidecar.taxonomy
        preprocess = preprocess or sidecar.preprocess
        if sidecar.input_hw is not None and sidecar.input_hw != backend.input_hw:
            raise SidecarError(
                path, f"the sidecar says input {sidecar.input_hw} but the model takes {backend.input_hw}", "the sidecar belongs to another model"
            )
    if taxonomy is None:
        taxonomy = default_taxonomy(backend.num_classes)
    if preprocess is None:
        preprocess = PreprocessConfig(input_size=backend.input_hw, resize_policy="resize", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    elif preprocess.resize_policy in ("resize", "letterbox") and preprocess.input_size != backend.input_hw:
        raise ShapeError(
            f"{path.name} takes {backend.input_hw[0]}x{backend.input_hw[1]} inputs but preprocess.input_size is "
            f"{preprocess.input_size}; set input_size={backend.input_hw}"
        )
    return Segmenter(backend, taxonomy, preprocess, **segmenter_options)
