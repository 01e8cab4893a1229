"""ONNX Runtime backend: an exported ``.onnx`` model behind the
:class:`~pixelwise.runtime.predictor.Predictor` interface (CPU provider by default).

Like every backend, :class:`OnnxBackend` receives the *normalised* ``(B, 3, h, w)`` batch
the shared :class:`~pixelwise.runtime.Segmenter` produces and returns logits-like scores
``(B, K, h, w)``. Differences between exported graphs are absorbed here, from the sidecar
(:mod:`pixelwise.runtime.sidecar`):

- normalisation inside the graph (input range ``0..255``): the batch is converted back
  with ``(x * std + mean) * 255`` before the run;
- a probabilities output is returned as ``log(p)`` (so the pipeline's softmax gives back
  ``p`` exactly and the argmax is unchanged);
- a labels output ``(B, h, w)`` becomes one-hot log-scores (probabilities 1 / 0);
- a graph with a fixed batch of 1 is run image by image.

Exporting *without* normalisation (the default of
:func:`~pixelwise.runtime.onnx_export.export_onnx`) avoids the round trip.

Example:
    >>> from pixelwise.runtime.onnx_backend import load_onnx  # doctest: +SKIP
    >>> segmenter = load_onnx("best.onnx", num_threads=2)  # doctest: +SKIP
    >>> segmenter.predict("img.png").labels.shape  # doctest: +SKIP
    (480, 640)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.errors import DataError, ShapeError
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.runtime.predictor import Segmenter
from pixelwise.runtime.sidecar import Sidecar, SidecarError, find_sidecar, read_sidecar, sidecar_path
from pixelwise.transforms.preprocess import PreprocessConfig

__all__ = ["OnnxBackend", "OnnxModelError", "load_onnx"]

_LOG_FLOOR = 1e-30
_INSTALL_HINT = "install ONNX Runtime: pip install onnxruntime"


class OnnxModelError(DataError):
    """An ``.onnx`` file that ONNX Runtime cannot load, or whose inputs/outputs do not fit."""


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"the ONNX backend needs onnxruntime ({_INSTALL_HINT})") from exc
    return onnxruntime


def _dim(value: Any) -> int | str:
    """An ONNX Runtime shape entry as int (fixed) or str (symbolic / unknown)."""
    return int(value) if isinstance(value, (int, np.integer)) and value > 0 else str(value or "?")


class OnnxBackend:
    """Run an exported model with ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads of the session (None: ONNX Runtime's default,
            one per physical core).
        providers: execution providers, e.g. ``("CPUExecutionProvider",)``.
        sidecar: the model's contract; None reads ``<path>.json`` when present and
            otherwise assumes a plain logits graph ``(B, 3, H, W) -> (B, K, H, W)`` taking
            normalised input.

    Attributes:
        name: ``"onnxruntime"``.
        num_classes: K.
        input_name, output_name: graph tensor names used.
        input_shape: graph input shape (ints for fixed axes, strings for dynamic ones).
        output_kind: ``"logits"``, ``"probabilities"`` or ``"labels"``.
        sidecar: the contract in use (None when running without one).

    Raises:
        OnnxModelError: missing, corrupt or non-ONNX file; an input that is not
            ``(B, 3, H, W)`` float; a sidecar whose input/output names, rank, channels or
            fixed size contradict the graph.
        SidecarError: an unreadable or invalid sidecar file.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        num_threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        sidecar: Sidecar | None = None,
    ) -> None:
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(self.path, "ONNX model file not found")
        if sidecar is None:
            found = find_sidecar(self.path)
            sidecar = read_sidecar(found) if found is not None else None
        self.sidecar = sidecar
        self.num_threads = num_threads
        ort = _import_ort()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=list(providers))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise OnnxModelError(
                self.path,
                f"ONNX Runtime cannot load this file as an ONNX model ({first})",
                "the file is corrupt, truncated or not ONNX; re-export it with `pixelwise export`",
            ) from exc
        self._bind()

    # ----------------------------------------------------------------- setup
    def _bind(self) -> None:
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        side = self.sidecar
        by_in = {i.name: i for i in inputs}
        by_out = {o.name: o for o in outputs}
        fix = f"re-export the model or fix {sidecar_path(self.path).name}"
        if side is not None:
            if side.input_layout != "NCHW":
                raise OnnxModelError(self.path, f"sidecar input layout {side.input_layout!r} is not supported by the ONNX backend", "export NCHW")
            if side.input_name not in by_in:
                raise OnnxModelError(
                    self.path, f"the sidecar names input {side.input_name!r} but the graph has {sorted(by_in)}", fix
                )
            if side.output_name not in by_out:
                raise OnnxModelError(
                    self.path, f"the sidecar names output {side.output_name!r} but the graph has {sorted(by_out)}", fix
                )
            graph_in, graph_out = by_in[side.input_name], by_out[side.output_name]
            self.output_kind = side.output_kind
        else:
            graph_in, graph_out = inputs[0], outputs[0]
            self.output_kind = "logits"
        if len(inputs) != 1:
            raise OnnxModelError(self.path, f"the graph has {len(inputs)} inputs ({sorted(by_in)}); one image input is expected")
        shape = tuple(_dim(d) for d in graph_in.shape)
        if len(shape) != 4 or shape[1] != 3:
            raise OnnxModelError(
                self.path,
                f"graph input {graph_in.name!r} has shape {list(shape)}; expected (B, 3, H, W) NCHW RGB",
                "export with pixelwise export (NCHW, 3 channels)",
            )
        if graph_in.type != "tensor(float)":
            raise OnnxModelError(self.path, f"graph input {graph_in.name!r} is {graph_in.type}; expected tensor(float)")
        if side is not None:
            declared = tuple(side.input_shape)
            for axis, (have, want) in enumerate(zip(shape, declared)):
                if isinstance(want, int) and isinstance(have, int) and have != want:
                    raise OnnxModelError(
                        self.path,
                        f"graph input shape {list(shape)} does not match the sidecar's {list(declared)} (axis {axis})",
                        f"{fix}: the sidecar belongs to another export",
                    )
                if axis > 0 and isinstance(want, int) != isinstance(have, int):
                    raise OnnxModelError(
                        self.path,
                        f"graph input shape {list(shape)} does not match the sidecar's {list(declared)} (axis {axis} fixed in one, dynamic in the other)",
                        fix,
                    )
        out_shape = tuple(_dim(d) for d in graph_out.shape)
        rank = 3 if self.output_kind == "labels" else 4
        if len(out_shape) != rank:
            raise OnnxModelError(
                self.path,
                f"graph output {graph_out.name!r} has shape {list(out_shape)}; a {self.output_kind} output has {rank} axes",
                fix if side is not None else "add a sidecar (<model>.onnx.json) describing the output",
            )
        if self.output_kind == "labels":
            if side is None or side.taxonomy.num_classes < 1:
                raise OnnxModelError(self.path, "a labels output needs the class list from the sidecar")
            self.num_classes = int(side.taxonomy.num_classes)
        else:
            k = out_shape[1]
            if not isinstance(k, int):
                if side is None or side.num_classes is None:
                    raise OnnxModelError(self.path, f"graph output {list(out_shape)} has no fixed class axis", "add a sidecar")
                k = side.num_classes
            if side is not None and side.num_classes is not None and side.num_classes != k:
                raise OnnxModelError(
                    self.path, f"the graph outputs {k} classes but the sidecar says {side.num_classes}", fix
                )
            self.num_classes = int(k)
        self.input_name = graph_in.name
        self.output_name = graph_out.name
        self.input_shape = shape
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.fixed_hw = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
        self.normalization_in_graph = bool(side.normalization_in_graph) if side is not None else False
        if self.normalization_in_graph:
            assert side is not None
            self._std = np.asarray(side.preprocess.std, np.float32).reshape(1, 3, 1, 1)
            self._mean = np.asarray(side.preprocess.mean, np.float32).reshape(1, 3, 1, 1)

    # -------------------------------------------------------------- inference
    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        """Scores of a preprocessed batch.

        Args:
            batch: ``(B, 3, h, w) float32`` normalised images (NCHW, RGB).

        Returns:
            ``(B, K, h, w) float32``: logits, or ``log(p)`` for graphs that output
            probabilities or labels (softmax of these gives the probabilities back).

        Raises:
            ShapeError: wrong rank, channels or dtype, or ``h, w`` that differ from the
                graph's fixed input size (the message gives the size to preprocess to).
        """
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ShapeError(f"batch must be (B, 3, h, w) float32, got shape {batch.shape}")
        if batch.dtype.kind != "f":
            raise ShapeError(f"batch must be float32 (normalised), got dtype {batch.dtype}")
        if self.fixed_hw is not None and tuple(batch.shape[2:]) != self.fixed_hw:
            raise ShapeError(
                f"{self.path.name} takes {self.fixed_hw[0]}x{self.fixed_hw[1]} inputs, got "
                f"{batch.shape[2]}x{batch.shape[3]}; set preprocess input_size={self.fixed_hw} "
                "(the sidecar's preprocess does) or re-export at another --input-size"
            )
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.normalization_in_graph:
            x = np.ascontiguousarray((x * self._std + self._mean) * np.float32(255.0), dtype=np.float32)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            if self.fixed_batch != 1:
                raise ShapeError(f"{self.path.name} takes batches of exactly {self.fixed_batch}, got {x.shape[0]}")
            out = np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        else:
            out = self._run(x)
        return self._to_scores(out)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], {self.input_name: x})[0])

    def _to_scores(self, out: np.ndarray) -> np.ndarray:
        if self.output_kind == "logits":
            return out.astype(np.float32, copy=False)
        if self.output_kind == "probabilities":
            return np.log(np.maximum(out.astype(np.float32, copy=False), np.float32(_LOG_FLOOR)))
        one_hot = np.eye(self.num_classes, dtype=np.float32)[out.astype(np.int64)]  # (B, h, w, K)
        return np.log(np.maximum(one_hot, np.float32(_LOG_FLOOR))).transpose(0, 3, 1, 2).copy()

    def __repr__(self) -> str:
        return (
            f"OnnxBackend(path={str(self.path)!r}, classes={self.num_classes}, input={list(self.input_shape)}, "
            f"output={self.output_kind!r}, num_threads={self.num_threads})"
        )


def load_onnx(
    path: str | Path,
    num_threads: int | None = None,
    *,
    taxonomy: Taxonomy | None = None,
    preprocess: PreprocessConfig | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    **segmenter_options: Any,
) -> Segmenter:
    """A ready :class:`~pixelwise.runtime.Segmenter` for an ``.onnx`` file.

    The classes and preprocessing come from the sidecar ``<path>.json`` written by
    :func:`~pixelwise.runtime.onnx_export.export_onnx`; ``taxonomy`` / ``preprocess``
    override it, and are required for a bare ONNX file without a sidecar (which must
    then be a plain ``(B, 3, H, W)`` normalised-input, logits-output graph).

    Args:
        path: the ``.onnx`` file.
        num_threads: ONNX Runtime intra-op threads (None: its default).
        taxonomy: classes (channel ``k`` = class id ``k``).
        preprocess: how images become inputs (normalised with its mean/std).
        providers: ONNX Runtime execution providers.
        **segmenter_options: ``batch_size``, ``background_id`` for the Segmenter.

    Raises:
        OnnxModelError: see :class:`OnnxBackend`.
        SidecarError: no sidecar and no ``taxonomy`` / ``preprocess`` given, or an
            invalid sidecar.

    Example:
        >>> seg = load_onnx("best.onnx", num_threads=2)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(path, "ONNX model file not found")
    found = find_sidecar(path)
    sidecar = read_sidecar(found) if found is not None else None
    if sidecar is None and (taxonomy is None or preprocess is None):
        raise SidecarError(
            sidecar_path(path),
            "no sidecar next to the ONNX model, so its classes and preprocessing are unknown",
            "export with `pixelwise export` (writes the sidecar), copy the .onnx.json next to the model, "
            "or pass taxonomy= and preprocess= to load_onnx",
        )
    if sidecar is not None and (taxonomy is not None or preprocess is not None):
        # Overrides go through the sidecar so they are validated against the graph (and an
        # in-graph normalisation is undone with the same mean/std the Segmenter applies).
        try:
            sidecar = sidecar.with_updates(
                taxonomy=taxonomy if taxonomy is not None else sidecar.taxonomy,
                preprocess=preprocess if preprocess is not None else sidecar.preprocess,
            )
        except SidecarError as exc:
            raise SidecarError(found, f"taxonomy/preprocess override does not fit the model: {exc.reason}", exc.hint) from exc
    backend = OnnxBackend(path, num_threads=num_threads, providers=providers, sidecar=sidecar)
    if sidecar is not None:
        return Segmenter(backend, sidecar.taxonomy, sidecar.preprocess, task=sidecar.task, **segmenter_options)
    assert taxonomy is not None and preprocess is not None
    return Segmenter(backend, taxonomy, preprocess, **segmenter_options)
