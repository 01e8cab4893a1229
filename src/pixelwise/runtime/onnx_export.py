"""Export a Pixelwise checkpoint to ONNX, write its sidecar, and prove the export is faithful.

:func:`export_onnx` traces the :class:`~pixelwise.models.SegmentationModel` at a fixed
input size (the checkpoint's ``preprocess.input_size`` unless another is given), runs the
file with ONNX Runtime next to PyTorch on sample inputs, and only keeps the file when both
agree. The contract a C++ / JS user needs is written to ``<out>.json`` (see
:mod:`pixelwise.runtime.sidecar`).

Input contract of the exported graph (``NCHW``, RGB, float32):

- default (``include_normalization=False``): ``x = (rgb / 255 - mean) / std`` per channel,
  exactly what :func:`~pixelwise.transforms.preprocess.preprocess_image` produces. This is
  the recommended form: every Pixelwise backend receives the same normalised tensor.
- ``include_normalization=True``: raw RGB values ``0..255`` as float32; the graph subtracts
  ``mean * 255`` and divides by ``std * 255`` itself (handy for C++ / JS callers).
  :class:`~pixelwise.runtime.onnx_backend.OnnxBackend` undoes Pixelwise's normalisation
  (``(x * std + mean) * 255``) before feeding such a graph.

Output (``output=``): ``"logits"`` ``(B, K, H, W) float32``, ``"probabilities"`` (softmax
over axis 1) or ``"labels"`` ``(B, H, W) int64`` (argmax inside the graph).

Exporter: ``exporter="auto"`` (default) uses the ``torch.export``-based (dynamo) exporter,
PyTorch's default since 2.9, and falls back to the TorchScript exporter if the dynamo
export fails or its file does not pass the check; the report says which one wrote the file.

Example:
    >>> from pixelwise.runtime.onnx_export import export_onnx  # doctest: +SKIP
    >>> report = export_onnx("runs/exp1/best.pt", "best.onnx", dynamic_batch=True)  # doctest: +SKIP
    >>> report.max_abs_diff < 1e-3, report.label_agreement  # doctest: +SKIP
    (True, 1.0)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from pixelwise import __version__
from pixelwise.core.errors import DataError
from pixelwise.data.image_io import read_image
from pixelwise.models.checkpoint import Checkpoint, load_checkpoint
from pixelwise.models.semantic import SegmentationModel
from pixelwise.runtime.sidecar import OUTPUT_KINDS, Sidecar, sidecar_path
from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image

__all__ = [
    "EXPORTERS",
    "ExportError",
    "ExportMismatchError",
    "ExportReport",
    "export_onnx",
    "file_sha256",
]

logger = logging.getLogger(__name__)

#: ``auto`` = dynamo, falling back to torchscript.
EXPORTERS = ("auto", "dynamo", "torchscript")
_EXPORTER_NAMES = {"dynamo": "torch.onnx dynamo (torch.export)", "torchscript": "torch.onnx torchscript"}
_MAX_BATCH = 4096


class ExportError(DataError):
    """The model cannot be exported (bad arguments, exporter failure, unloadable result)."""


class ExportMismatchError(ExportError):
    """ONNX Runtime and PyTorch disagree past the tolerance; the exported file was removed.

    Attributes:
        max_abs_diff: largest absolute output difference (None for a labels output).
        label_agreement: fraction of pixels with the same label.
    """

    def __init__(self, path: str | Path | None, reason: str, hint: str | None, max_abs_diff: float | None, label_agreement: float) -> None:
        super().__init__(path, reason, hint)
        self.max_abs_diff = max_abs_diff
        self.label_agreement = label_agreement


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how well it matches PyTorch.

    Attributes:
        onnx_path: the ``.onnx`` file.
        sidecar_path: its ``.onnx.json`` sidecar.
        exporter: ``"dynamo"`` or ``"torchscript"``.
        opset: ONNX opset of the file.
        input_shape: graph input shape (``"batch"`` for a dynamic axis).
        output_shape: graph output shape.
        output_kind: ``"logits"``, ``"probabilities"`` or ``"labels"``.
        normalization_in_graph: the graph takes 0..255 input.
        max_abs_diff: largest |ORT - torch| on the check inputs (None: labels output or no check).
        label_agreement: fraction of pixels with equal labels (None: no check).
        samples: number of check inputs (random + real images).
        seconds: wall time of export plus check.
        fallback_reason: why the dynamo exporter was not used (``exporter="auto"``), or None.
        notes: anything the user should know (e.g. a changed resize policy).
    """

    onnx_path: Path
    sidecar_path: Path
    exporter: str
    opset: int
    input_shape: tuple[int | str, ...]
    output_shape: tuple[int | str, ...]
    output_kind: str
    normalization_in_graph: bool
    max_abs_diff: float | None
    label_agreement: float | None
    samples: int
    seconds: float
    fallback_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Multi-line human summary (what the CLI prints)."""
        diff = "n/a (labels output)" if self.max_abs_diff is None else f"{self.max_abs_diff:.3g}"
        agree = "not checked" if self.label_agreement is None else f"{self.label_agreement:.6f}"
        lines = [
            f"exported {self.onnx_path} ({self.exporter} exporter, opset {self.opset}, {self.seconds:.1f} s)",
            f"  input  {list(self.input_shape)} NCHW float32 "
            + ("RGB 0..255 (normalised in the graph)" if self.normalization_in_graph else "normalised RGB"),
            f"  output {list(self.output_shape)} {self.output_kind}",
            f"  check on {self.samples} inputs: max abs diff {diff}, label agreement {agree}",
            f"  sidecar {self.sidecar_path}",
        ]
        if self.fallback_reason:
            lines.append(f"  note: dynamo exporter not used: {self.fallback_reason}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


class _ExportWrapper(nn.Module):
    """The model plus optional in-graph normalisation and final softmax / argmax."""

    def __init__(self, model: SegmentationModel, preprocess: PreprocessConfig, normalize: bool, output: str) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.output = output
        self.register_buffer("mean255", torch.tensor(preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std255", torch.tensor(preprocess.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = (x - self.mean255) / self.std255
        logits = self.model(x)
        if self.output == "probabilities":
            return torch.softmax(logits, dim=1)
        if self.output == "labels":
            return torch.argmax(logits, dim=1)
        return logits


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' deprecation warnings, progress prints and info logs."""
    logs = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _parse_size(size: Sequence[int] | int | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    values = tuple(int(v) for v in size)
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"input_size must be (height, width) with positive values, got {size!r}")
    return values  # type: ignore[return-value]


def _export_preprocess(
    preprocess: PreprocessConfig, size: tuple[int, int] | None, divisor: int, source: Path | None, notes: list[str]
) -> PreprocessConfig:
    """The preprocessing of the exported (fixed-size) model."""
    target = size or preprocess.input_size
    if target is None:
        raise ExportError(
            source,
            "the checkpoint has no fixed input size (preprocess.input_size is None)",
            "give one: export_onnx(..., input_size=(H, W)) / pixelwise export --input-size HxW",
        )
    if target[0] % divisor or target[1] % divisor:
        fit = (-(-target[0] // divisor) * divisor, -(-target[1] // divisor) * divisor)
        raise ExportError(
            source,
            f"input size {target[0]}x{target[1]} is not a multiple of the model's divisor {divisor}",
            f"use --input-size {fit[0]}x{fit[1]}",
        )
    if preprocess.resize_policy in ("resize", "letterbox"):
        return replace(preprocess, input_size=target)
    notes.append(
        f"the checkpoint's resize policy {preprocess.resize_policy!r} has no fixed size; the exported model "
        f"uses 'letterbox' to {target[0]}x{target[1]} (aspect ratio kept, padded)"
    )
    return replace(preprocess, resize_policy="letterbox", input_size=target)


def _random_images(count: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Half white noise, half smooth blobs (so argmax regions are image-like)."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        if index % 2 == 0:
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        else:
            small = rng.integers(0, 256, (max(2, size[0] // 16), max(2, size[1] // 16), 3), dtype=np.uint8)
            image = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        images.append(image)
    return images


def _check_inputs(
    preprocess: PreprocessConfig,
    normalize_in_graph: bool,
    sample_inputs: Sequence[str | Path | np.ndarray] | None,
    num_random: int,
    seed: int,
) -> tuple[np.ndarray, int]:
    """``(N, 3, H, W) float32`` graph inputs and how many came from real images."""
    assert preprocess.input_size is not None
    images = [read_image(s) if isinstance(s, (str, Path)) else np.asarray(s) for s in (sample_inputs or [])]
    real = len(images)
    images += _random_images(max(num_random, 0 if real else 1), preprocess.input_size, seed)
    batch = np.stack([preprocess_image(image, preprocess)[0] for image in images]).astype(np.float32)
    if normalize_in_graph:
        mean = np.asarray(preprocess.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(preprocess.std, np.float32).reshape(1, 3, 1, 1)
        batch = np.rint((batch * std + mean) * 255.0).astype(np.float32)
    return batch, real


def _run_export(
    exporter: str,
    wrapper: nn.Module,
    example: torch.Tensor,
    path: Path,
    opset: int,
    dynamic_batch: bool,
    output_name: str,
) -> None:
    kwargs: dict[str, Any] = {
        "input_names": ["input"],
        "output_names": [output_name],
        "opset_version": opset,
    }
    if exporter == "dynamo":
        kwargs.update(dynamo=True, external_data=False, verbose=False)
        if dynamic_batch:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=_MAX_BATCH)},)
    else:
        kwargs.update(dynamo=False, do_constant_folding=True)
        if dynamic_batch:
            kwargs["dynamic_axes"] = {"input": {0: "batch"}, output_name: {0: "batch"}}
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(wrapper, (example,), str(path), **kwargs)


def _ort_session(path: Path, num_threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # a check, not a benchmark
    if num_threads:
        options.intra_op_num_threads = num_threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _labels_of(output: np.ndarray, kind: str) -> np.ndarray:
    return output.astype(np.int64) if kind == "labels" else output.argmax(axis=1)


def _compare(
    path: Path,
    wrapper: nn.Module,
    inputs: np.ndarray,
    dynamic_batch: bool,
    kind: str,
    atol: float,
    rtol: float,
) -> tuple[float | None, float, bool]:
    """Run ORT and torch on ``inputs``.

    Returns:
        ``(max abs diff, label agreement, allclose)``; for a labels output the diff is
        None and allclose is True (agreement decides).
    """
    session = _ort_session(path)
    name = session.get_inputs()[0].name
    # Static graphs take one image at a time; dynamic ones the whole set as one batch.
    chunks = [inputs] if dynamic_batch else [inputs[i : i + 1] for i in range(len(inputs))]
    ort_out = np.concatenate([session.run(None, {name: chunk})[0] for chunk in chunks])
    with torch.no_grad():
        ref = wrapper(torch.from_numpy(inputs)).numpy()
    if ort_out.shape != ref.shape:
        raise ExportError(path, f"ONNX Runtime output shape {ort_out.shape} differs from PyTorch {ref.shape}")
    agreement = float((_labels_of(ort_out, kind) == _labels_of(ref, kind)).mean())
    if kind == "labels":
        return None, agreement, True
    diff = float(np.abs(ort_out.astype(np.float64) - ref).max())
    close = diff <= atol or bool(np.allclose(ort_out, ref, atol=atol, rtol=rtol))
    return diff, agreement, close


def _graph_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return int(next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def export_onnx(
    checkpoint: str | Path | Checkpoint,
    out_path: str | Path,
    *,
    opset: int = 17,
    dynamic_batch: bool = False,
    include_normalization: bool = False,
    output: str = "logits",
    input_size: Sequence[int] | int | None = None,
    check: bool = True,
    sample_inputs: Sequence[str | Path | np.ndarray] | None = None,
    num_random: int = 2,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    min_agreement: float = 0.999,
    exporter: str = "auto",
    seed: int = 0,
) -> ExportReport:
    """Export a checkpoint to ONNX, check it against PyTorch, write the sidecar.

    Args:
        checkpoint: a Pixelwise checkpoint file or a loaded :class:`Checkpoint`.
        out_path: the ``.onnx`` file to write (parent folders are created). The sidecar
            goes to ``<out_path>.json``.
        opset: ONNX opset (the dynamo exporter writes 18 and converts down when lower).
        dynamic_batch: make the batch axis dynamic (``"batch"``); otherwise it is 1.
        include_normalization: the graph takes RGB ``0..255`` float32 and normalises
            itself (see the module docstring for the input contract).
        output: ``"logits"`` ``(B, K, H, W)``, ``"probabilities"`` (softmax over K) or
            ``"labels"`` ``(B, H, W) int64``.
        input_size: ``(H, W)`` (or one int) of the exported input; default the
            checkpoint's ``preprocess.input_size``. Must be a multiple of the model's divisor.
        check: compare ONNX Runtime against PyTorch (strongly recommended).
        sample_inputs: real images (paths or ``(H, W, 3) uint8`` RGB arrays) added to the
            check; they are preprocessed like at inference.
        num_random: random images in the check (at least 1 when no sample is given).
        atol, rtol: tolerance on float outputs: ``|ort - torch| <= atol + rtol * |torch|``.
        min_agreement: smallest accepted fraction of pixels with the same label.
        exporter: ``"auto"`` (dynamo, fall back to torchscript), ``"dynamo"`` or
            ``"torchscript"``.
        seed: seed of the random check images.

    Returns:
        An :class:`ExportReport` (paths, exporter used, check figures).

    Raises:
        ValueError: unknown ``output`` / ``exporter`` or bad tolerances.
        CheckpointError: unreadable checkpoint.
        ExportError: no usable input size, the exporter failed, or ONNX Runtime cannot
            load the result.
        ExportMismatchError: ORT and PyTorch disagree past the tolerance (the file is
            deleted, nothing is left behind).

    Example:
        >>> report = export_onnx("best.pt", "out/best.onnx", output="probabilities")  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {OUTPUT_KINDS}, got {output!r}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if atol < 0 or rtol < 0 or not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"need atol, rtol >= 0 and 0 <= min_agreement <= 1, got {atol}, {rtol}, {min_agreement}")
    started = time.perf_counter()
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint)
    if checkpoint.task != "semantic":
        raise ExportError(checkpoint.path, f"task {checkpoint.task!r} cannot be exported yet (semantic only)")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    side_path = sidecar_path(out_path)
    tmp_path = out_path.with_name(out_path.name + ".tmp")

    model = checkpoint.build_model().eval()
    notes: list[str] = []
    preprocess = _export_preprocess(
        checkpoint.preprocess, _parse_size(input_size), int(model.required_divisor), checkpoint.path, notes
    )
    assert preprocess.input_size is not None
    height, width = preprocess.input_size
    wrapper = _ExportWrapper(model, preprocess, include_normalization, output).eval()
    inputs, real = _check_inputs(preprocess, include_normalization, sample_inputs, num_random, seed)
    if dynamic_batch and len(inputs) < 2:
        inputs = np.concatenate([inputs, inputs[::-1] * 0.5])  # the check must see batch > 1
    # torch.export specialises size-1 axes: trace a batch of 2 when the batch is dynamic.
    example = torch.from_numpy(inputs[:2] if dynamic_batch else inputs[:1]).clone()
    if dynamic_batch and example.shape[0] < 2:
        example = torch.cat([example, example])

    attempts = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    fallback_reason: str | None = None
    used = attempts[0]
    diff: float | None = None
    agreement: float | None = None
    for attempt_index, attempt in enumerate(attempts):
        used = attempt
        last = attempt_index == len(attempts) - 1
        try:
            _run_export(attempt, wrapper, example, tmp_path, opset, dynamic_batch, output)
            if not check:
                _ort_session(tmp_path)  # at least loadable
            else:
                diff, agreement, close = _compare(tmp_path, wrapper, inputs, dynamic_batch, output, atol, rtol)
                logger.info("ONNX check (%s): max abs diff %s, label agreement %.6f", attempt, diff, agreement)
                if not close or agreement < min_agreement:
                    raise ExportMismatchError(
                        out_path,
                        f"ONNX Runtime disagrees with PyTorch ({attempt} exporter): max abs diff "
                        f"{'n/a' if diff is None else f'{diff:.3g}'} (atol {atol}, rtol {rtol}), label agreement "
                        f"{agreement:.6f} (minimum {min_agreement}); the file was not written",
                        "try another opset (--opset 18) or exporter, or report the architecture",
                        diff,
                        agreement,
                    )
            break
        except ExportMismatchError:
            _remove(tmp_path)
            if last:
                raise
            fallback_reason = "its output did not match PyTorch"
        except Exception as exc:  # noqa: BLE001 - exporters raise many kinds
            _remove(tmp_path)
            if last:
                if isinstance(exc, ExportError):
                    raise
                raise ExportError(
                    out_path,
                    f"ONNX export failed with the {attempt} exporter ({type(exc).__name__}: {str(exc)[:500]})",
                    "try --opset 18, another --exporter, or a fixed batch",
                ) from exc
            fallback_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            logger.info("dynamo ONNX export failed (%s); falling back to the torchscript exporter", fallback_reason)

    actual_opset = _graph_opset(tmp_path)
    batch_dim: int | str = "batch" if dynamic_batch else 1
    num_classes = int(model.num_classes)
    output_shape: tuple[int | str, ...] = (
        (batch_dim, height, width) if output == "labels" else (batch_dim, num_classes, height, width)
    )
    source: dict[str, Any] = {"model": dict(checkpoint.model_config), "producer": f"pixelwise {__version__}"}
    if checkpoint.path is not None and Path(checkpoint.path).is_file():
        source.update(checkpoint=Path(checkpoint.path).name, sha256=file_sha256(checkpoint.path))
    check_record = None
    if check:
        check_record = {
            "max_abs_diff": diff,
            "label_agreement": agreement,
            "atol": atol,
            "rtol": rtol,
            "min_agreement": min_agreement,
            "samples": int(len(inputs)),
            "real_images": real,
            "passed": True,
            "compared_with": f"torch {torch.__version__}",
        }
    sidecar = Sidecar(
        taxonomy=checkpoint.taxonomy,
        preprocess=preprocess,
        input_shape=(batch_dim, 3, height, width),
        output_shape=output_shape,
        input_name="input",
        input_layout="NCHW",
        input_dtype="float32",
        input_range="0..255" if include_normalization else "normalized",
        normalization_in_graph=include_normalization,
        output_name=output,
        output_kind=output,
        output_dtype="int64" if output == "labels" else "float32",
        task=checkpoint.task,
        model_file=out_path.name,
        opset=actual_opset,
        exporter=_EXPORTER_NAMES[used],
        source=source,
        check=check_record,
        extra={"notes": notes} if notes else {},
    )
    tmp_path.replace(out_path)
    sidecar.write(side_path)
    report = ExportReport(
        onnx_path=out_path,
        sidecar_path=side_path,
        exporter=used,
        opset=actual_opset,
        input_shape=sidecar.input_shape,
        output_shape=output_shape,
        output_kind=output,
        normalization_in_graph=include_normalization,
        max_abs_diff=diff,
        label_agreement=agreement,
        samples=int(len(inputs)) if check else 0,
        seconds=time.perf_counter() - started,
        fallback_reason=fallback_reason if used != attempts[0] else None,
        notes=notes,
    )
    return report

