"""Static int8 quantization of an exported ONNX model, gated on mask metrics.

:func:`quantize_static_int8` turns a float32 ``.onnx`` written by
:func:`~pixelwise.runtime.onnx_export.export_onnx` into an int8 QDQ model (ONNX Runtime
``quantize_static``, per-channel int8 weights, uint8 activations calibrated on real
images). The calibration images are preprocessed exactly as the
:class:`~pixelwise.runtime.Segmenter` does it at inference (the sidecar's
:class:`~pixelwise.transforms.preprocess.PreprocessConfig` through
:func:`~pixelwise.transforms.preprocess.preprocess_image`), so the calibrated ranges
are the ranges the model sees in deployment.

When a validation set is given, both models are evaluated with
:func:`~pixelwise.evaluation.evaluate.evaluate`; an int8 model that loses more than
``max_drop`` mIoU points (mIoU x 100) is refused with :class:`QuantizationRejected` and
never written (the work happens in a temporary folder; the file is moved into place only
once accepted). The int8 model gets its own sidecar (``<out>.json``) with a
``quantization`` entry in ``extra``.

Why static QDQ and not dynamic: dynamic int8 quantizes activations on the fly per
operator and ONNX Runtime has no fast dynamic ``ConvInteger`` kernel, so conv nets get
4-8x *slower* than float32. Static QDQ models are fused by ONNX Runtime into
``QLinearConv`` kernels (VNNI on recent x86 CPUs).

Why uint8 activations and int8 weights (U8S8) by default: it is the pair ONNX Runtime's
x86 int8 GEMM kernels are built around (VNNI multiplies unsigned by signed bytes). Measured
here (Xeon with AVX512-VNNI, ONNX Runtime 1.31, unet-mobilenet_v2 at 256x256, machine
heavily loaded) U8S8 ran 1.05-2x faster than S8S8 (int8 activations) at the same mIoU;
only a 64x64 toy input showed S8S8 ahead. ``benchmarks/runtime.py`` times both;
``activation_type="int8"`` stays available.

Example:
    >>> from pixelwise.evaluation.quantize import quantize_static_int8  # doctest: +SKIP
    >>> report = quantize_static_int8("best.onnx", "best.int8.onnx", "calib/", val_dataset=val)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.errors import DataError
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.image_io import list_images, read_image
from pixelwise.runtime.onnx_backend import OnnxBackend
from pixelwise.runtime.predictor import Segmenter
from pixelwise.runtime.sidecar import Sidecar, find_sidecar, read_sidecar, sidecar_path
from pixelwise.transforms.preprocess import preprocess_image

__all__ = [
    "ACTIVATION_TYPES",
    "CalibrationError",
    "QuantizationError",
    "QuantizationRejected",
    "QuantizeReport",
    "default_int8_path",
    "measure_latency",
    "quantize_static_int8",
]

logger = logging.getLogger(__name__)

#: Accepted ``activation_type`` / ``weight_type`` names.
ACTIVATION_TYPES = ("uint8", "int8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_ONNX_INSTALL_HINT = "install the runtime extras: pip install onnx onnxruntime"


class QuantizationError(DataError):
    """The model cannot be quantized (not ONNX, no sidecar, quantizer failure)."""


class CalibrationError(QuantizationError):
    """No usable calibration images (empty folder, nothing readable)."""


class QuantizationRejected(QuantizationError):
    """The int8 model lost more mIoU than allowed; nothing was written.

    Attributes:
        fp32_miou: mIoU of the float32 model on the validation set (0..1).
        int8_miou: mIoU of the int8 model (0..1).
        drop_points: ``(fp32_miou - int8_miou) * 100``.
        max_drop: the gate, in mIoU points.
        report: the full :class:`QuantizeReport` (``int8_path`` is None).
    """

    def __init__(self, path: Path | None, reason: str, hint: str | None, report: QuantizeReport) -> None:
        super().__init__(path, reason, hint)
        self.report = report
        self.fp32_miou = report.fp32_miou
        self.int8_miou = report.int8_miou
        self.drop_points = report.drop_points
        self.max_drop = report.max_drop


@dataclass
class QuantizeReport:
    """What :func:`quantize_static_int8` did and measured.

    Attributes:
        fp32_path: the float32 input model.
        int8_path: the written int8 model (None when rejected).
        sidecar_path: the int8 model's sidecar (None when rejected).
        activation_type, weight_type: ``"uint8"`` / ``"int8"``.
        per_channel: per-output-channel weight scales.
        calibrate_method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        num_calib: calibration images used.
        calib_skipped: calibration files that could not be read.
        preprocessed: ``quant_pre_process`` (shape inference + graph optimisation) ran.
        fp32_miou, int8_miou: validation mIoU (0..1), None without a validation set.
        drop_points: ``(fp32 - int8) * 100`` mIoU points, None without a validation set.
        max_drop: the gate in points.
        fp32_ms, int8_ms: median backend latency per image (batch 1, preprocessed input).
        fp32_bytes, int8_bytes: file sizes.
        val_images: images scored in the validation.
        seconds: wall time.
        notes: anything the user should know.
    """

    fp32_path: Path
    int8_path: Path | None
    sidecar_path: Path | None
    activation_type: str
    weight_type: str
    per_channel: bool
    calibrate_method: str
    num_calib: int
    calib_skipped: int
    preprocessed: bool
    fp32_miou: float | None
    int8_miou: float | None
    drop_points: float | None
    max_drop: float
    fp32_ms: float
    int8_ms: float
    fp32_bytes: int
    int8_bytes: int
    val_images: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        """fp32 latency / int8 latency."""
        return self.fp32_ms / self.int8_ms if self.int8_ms > 0 else float("nan")

    @property
    def accepted(self) -> bool:
        """True when the int8 file was written."""
        return self.int8_path is not None

    def summary(self) -> str:
        """Multi-line human summary (what the CLI prints)."""

        def miou(value: float | None) -> str:
            return "n/a" if value is None else f"{value * 100:.2f}"

        lines = [
            f"{'model':<6} {'mIoU':>7} {'ms/img':>8} {'MB':>7}",
            f"{'fp32':<6} {miou(self.fp32_miou):>7} {self.fp32_ms:>8.2f} {self.fp32_bytes / 1e6:>7.2f}",
            f"{'int8':<6} {miou(self.int8_miou):>7} {self.int8_ms:>8.2f} {self.int8_bytes / 1e6:>7.2f}",
            f"speedup {self.speedup:.2f}x; "
            + (
                f"mIoU drop {self.drop_points:+.2f} points (gate {self.max_drop:g}) on {self.val_images} images"
                if self.drop_points is not None
                else "no validation set: mIoU not checked"
            ),
            f"static QDQ, activations {self.activation_type}, weights {self.weight_type} "
            f"({'per-channel' if self.per_channel else 'per-tensor'}), {self.calibrate_method} calibration on "
            f"{self.num_calib} images" + (f" ({self.calib_skipped} unreadable skipped)" if self.calib_skipped else ""),
        ]
        if self.int8_path is not None:
            lines.append(f"wrote {self.int8_path} and {self.sidecar_path}")
        else:
            lines.append("rejected: no file written")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "fp32_path": str(self.fp32_path),
            "int8_path": None if self.int8_path is None else str(self.int8_path),
            "activation_type": self.activation_type,
            "weight_type": self.weight_type,
            "per_channel": self.per_channel,
            "calibrate_method": self.calibrate_method,
            "num_calib": self.num_calib,
            "fp32_miou": self.fp32_miou,
            "int8_miou": self.int8_miou,
            "drop_points": self.drop_points,
            "max_drop": self.max_drop,
            "fp32_ms": round(self.fp32_ms, 3),
            "int8_ms": round(self.int8_ms, 3),
            "speedup": round(self.speedup, 3),
            "fp32_bytes": self.fp32_bytes,
            "int8_bytes": self.int8_bytes,
            "val_images": self.val_images,
            "seconds": round(self.seconds, 3),
        }


def default_int8_path(model_onnx: str | Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` (same folder)."""
    model_onnx = Path(model_onnx)
    return model_onnx.with_name(model_onnx.stem + ".int8.onnx")


def _import_quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"int8 quantization needs onnxruntime ({_ONNX_INSTALL_HINT})") from exc
    return quantization


def _check_model_file(path: Path) -> None:
    """Fail early, naming the file, when it is missing or not an ONNX model."""
    if not path.is_file():
        raise QuantizationError(path, "model file not found", "give the .onnx written by `pixelwise export`")
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"int8 quantization needs onnx ({_ONNX_INSTALL_HINT})") from exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise QuantizationError(
            path,
            f"not an ONNX model ({type(exc).__name__})",
            "quantize takes the .onnx written by `pixelwise export` (export a .pt checkpoint first)",
        ) from exc
    if len(model.graph.node) == 0:
        raise QuantizationError(
            path,
            "not an ONNX model (the file parses but has an empty graph)",
            "quantize takes the .onnx written by `pixelwise export` (export a .pt checkpoint first)",
        )
    ops = {node.op_type for node in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger"}:
        raise QuantizationError(path, "the model is already quantized", "quantize the float32 export instead")


def _calibration_files(calib: Sequence[str | Path] | str | Path, num_calib: int) -> list[Path]:
    """Calibration image paths: a folder's images or an explicit list, spread evenly to ``num_calib``."""
    if isinstance(calib, (str, Path)):
        folder = Path(calib)
        if not folder.is_dir():
            raise CalibrationError(folder, "calibration folder not found", "pass a folder of representative images")
        files = list_images(folder)
        if not files:
            raise CalibrationError(
                folder,
                "the calibration folder holds no images",
                "put 16-64 representative images (png, jpg, tif, ...) in it, e.g. part of the training set",
            )
    else:
        files = [Path(p) for p in calib]
        if not files:
            raise CalibrationError(None, "the list of calibration images is empty", "pass at least one image")
    if len(files) > num_calib:
        picks = np.linspace(0, len(files) - 1, num_calib).round().astype(int)
        files = [files[i] for i in sorted(set(picks.tolist()))]
    return files


def _model_input(rgb: np.ndarray, sidecar: Sidecar) -> np.ndarray:
    """``(H, W, 3) uint8`` -> ``(3, h, w) float32`` graph input, exactly as the Segmenter feeds it."""
    chw, _ = preprocess_image(rgb, sidecar.preprocess)
    chw = np.asarray(chw, dtype=np.float32)
    if sidecar.normalization_in_graph:  # what OnnxBackend does for 0..255 graphs
        std = np.asarray(sidecar.preprocess.std, np.float32).reshape(3, 1, 1)
        mean = np.asarray(sidecar.preprocess.mean, np.float32).reshape(3, 1, 1)
        chw = (chw * std + mean) * np.float32(255.0)
    return np.ascontiguousarray(chw, dtype=np.float32)


def _load_calibration(files: list[Path], sidecar: Sidecar) -> tuple[list[np.ndarray], int]:
    """Preprocessed calibration inputs ``(3, h, w) float32`` and the number of unreadable files."""
    inputs: list[np.ndarray] = []
    skipped = 0
    for path in files:
        try:
            rgb = read_image(path)
        except DataError as exc:
            logger.warning("calibration image skipped: %s", exc)
            skipped += 1
            continue
        inputs.append(_model_input(rgb, sidecar))
    return inputs, skipped


def _make_reader(quantization: Any, input_name: str, inputs: list[np.ndarray], batch: int) -> Any:
    """A ``CalibrationDataReader`` yielding ``{input_name: (batch, 3, h, w) float32}``."""

    class _Reader(quantization.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self._groups = [
                np.stack(inputs[i : i + batch]) for i in range(0, len(inputs) - batch + 1, batch)
            ] or [np.stack([inputs[0]] * batch)]
            self._iter: Iterator[np.ndarray] = iter(self._groups)

        def get_next(self) -> dict[str, np.ndarray] | None:
            group = next(self._iter, None)
            return None if group is None else {input_name: group}

        def rewind(self) -> None:
            self._iter = iter(self._groups)

    return _Reader()


def measure_latency(backend: OnnxBackend | Any, shape: tuple[int, int, int, int], repeats: int = 10, warmup: int = 2) -> float:
    """Median milliseconds per image of ``backend.predict_scores`` on a random normalised batch.

    Args:
        backend: any :class:`~pixelwise.runtime.Predictor`.
        shape: ``(B, 3, h, w)`` of the batch.
        repeats: timed calls (the median is taken, robust to a busy machine).
        warmup: untimed calls first.

    Returns:
        Median wall time of one call divided by ``B``, in milliseconds.
    """
    x = np.random.default_rng(0).normal(0.0, 1.0, shape).astype(np.float32)
    for _ in range(max(0, warmup)):
        backend.predict_scores(x)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        backend.predict_scores(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0 / shape[0]


@contextlib.contextmanager
def _quiet_ort() -> Iterator[None]:
    """Quantizer logs are INFO/WARNING chatter about skipped tensors; keep errors only."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _quant_type(quantization: Any, name: str, what: str) -> Any:
    if name not in ACTIVATION_TYPES:
        raise ValueError(f"{what} must be one of {ACTIVATION_TYPES}, got {name!r}")
    return quantization.QuantType.QUInt8 if name == "uint8" else quantization.QuantType.QInt8


def quantize_static_int8(
    model_onnx: str | Path,
    out_path: str | Path | None,
    calib_images: Sequence[str | Path] | str | Path,
    num_calib: int = 32,
    per_channel: bool = True,
    val_dataset: SegmentationDataset | None = None,
    max_drop: float = 0.5,
    num_threads: int | None = None,
    *,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    calibrate_method: str = "minmax",
    pre_process: bool = True,
    timing_repeats: int = 10,
    progress: bool = False,
) -> QuantizeReport:
    """Quantize an exported float32 ONNX model to static int8 (QDQ), gated on validation mIoU.

    Steps: check the file is ONNX and has a sidecar; read up to ``num_calib`` calibration
    images and preprocess them like the Segmenter; ``quant_pre_process`` (symbolic shape
    inference + graph optimisation; skipped with a note if it fails); ``quantize_static``
    (QDQ, per-channel weights); time both models; evaluate both on ``val_dataset``; keep
    the int8 file only when the mIoU drop is within ``max_drop``.

    Args:
        model_onnx: float32 ``.onnx`` from :func:`~pixelwise.runtime.onnx_export.export_onnx`
            with its sidecar ``<model>.onnx.json``.
        out_path: where the int8 model goes (None: ``<stem>.int8.onnx`` next to the input);
            its sidecar goes to ``<out_path>.json``.
        calib_images: a folder (searched recursively) or a list of image files.
        num_calib: at most this many calibration images (spread evenly over the list).
        per_channel: per-output-channel weight scales (recommended for conv nets).
        val_dataset: labelled set to compare fp32 and int8 on (None: no gate).
        max_drop: largest accepted mIoU loss in points (mIoU x 100). A negative value
            cannot be met (useful in tests).
        num_threads: ONNX Runtime intra-op threads for calibration, timing and evaluation.
        activation_type: ``"uint8"`` (default, fastest here) or ``"int8"``.
        weight_type: ``"int8"`` (default) or ``"uint8"``.
        calibrate_method: ``"minmax"`` (default), ``"entropy"`` or ``"percentile"``.
        pre_process: run ``quant_pre_process`` first.
        timing_repeats: timed calls per model for the ms/image figures.
        progress: show evaluation progress bars.

    Returns:
        A :class:`QuantizeReport` (``int8_path`` set).

    Raises:
        QuantizationError: missing, non-ONNX or already quantized model; no sidecar; the
            quantizer failed.
        CalibrationError: the calibration folder is missing or holds no (readable) images.
        QuantizationRejected: the mIoU drop exceeds ``max_drop`` (no file written).
        ValueError: bad ``num_calib``, types or calibration method.

    Example:
        >>> report = quantize_static_int8("m.onnx", None, "calib/", val_dataset=val)  # doctest: +SKIP
        >>> report.int8_path.name, report.drop_points <= 0.5  # doctest: +SKIP
        ('m.int8.onnx', True)
    """
    started = time.perf_counter()
    if num_calib < 1:
        raise ValueError(f"num_calib must be >= 1, got {num_calib}")
    if calibrate_method not in CALIBRATION_METHODS:
        raise ValueError(f"calibrate_method must be one of {CALIBRATION_METHODS}, got {calibrate_method!r}")
    quantization = _import_quantization()
    act_type = _quant_type(quantization, activation_type, "activation_type")
    w_type = _quant_type(quantization, weight_type, "weight_type")
    model_onnx = Path(model_onnx)
    out = Path(out_path) if out_path is not None else default_int8_path(model_onnx)
    if out.resolve() == model_onnx.resolve():
        raise QuantizationError(out, "the int8 output would overwrite the float32 input", "choose another --out")
    _check_model_file(model_onnx)
    found = find_sidecar(model_onnx)
    if found is None:
        raise QuantizationError(
            model_onnx,
            f"no sidecar ({sidecar_path(model_onnx).name}) next to the model, so its preprocessing is unknown",
            "export with `pixelwise export`, which writes it, or copy the .onnx.json next to the model",
        )
    sidecar = read_sidecar(found)
    files = _calibration_files(calib_images, num_calib)
    inputs, skipped = _load_calibration(files, sidecar)
    if not inputs:
        where = Path(calib_images) if isinstance(calib_images, (str, Path)) else None
        raise CalibrationError(where, f"none of the {len(files)} calibration images could be read", "check the files")

    fp32 = OnnxBackend(model_onnx, num_threads=num_threads, sidecar=sidecar)
    batch = fp32.fixed_batch or 1
    notes: list[str] = []
    if len(inputs) < 8:
        notes.append(f"only {len(inputs)} calibration images; 16-64 representative images calibrate more reliably")
    method = {
        "minmax": quantization.CalibrationMethod.MinMax,
        "entropy": quantization.CalibrationMethod.Entropy,
        "percentile": quantization.CalibrationMethod.Percentile,
    }[calibrate_method]

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".pixelwise-quantize-", dir=out.parent))
    try:
        source = model_onnx
        preprocessed = False
        if pre_process:
            prepared = work / "prepared.onnx"
            try:
                with _quiet_ort():
                    quantization.shape_inference.quant_pre_process(str(model_onnx), str(prepared), skip_symbolic_shape=False)
                source, preprocessed = prepared, True
            except Exception as exc:  # noqa: BLE001 - optional step; quantization works without it
                notes.append(f"quant_pre_process skipped ({type(exc).__name__}: {str(exc)[:120]})")
        tmp_int8 = work / "int8.onnx"
        reader = _make_reader(quantization, fp32.input_name, inputs, batch)
        try:
            with _quiet_ort():
                quantization.quantize_static(
                    str(source),
                    str(tmp_int8),
                    reader,
                    quant_format=quantization.QuantFormat.QDQ,
                    per_channel=per_channel,
                    activation_type=act_type,
                    weight_type=w_type,
                    calibrate_method=method,
                    calibration_providers=["CPUExecutionProvider"],
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                )
        except Exception as exc:  # noqa: BLE001 - the quantizer raises many kinds
            raise QuantizationError(
                model_onnx, f"ONNX Runtime's static quantizer failed ({type(exc).__name__}: {str(exc)[:300]})",
                "re-export with the torchscript exporter (`pixelwise export --exporter torchscript`) and retry",
            ) from exc

        int8_sidecar = sidecar.with_updates(
            model_file=out.name,
            extra={
                **sidecar.extra,
                "quantization": {
                    "method": "static",
                    "format": "QDQ",
                    "activation_type": activation_type,
                    "weight_type": weight_type,
                    "per_channel": bool(per_channel),
                    "calibrate_method": calibrate_method,
                    "calibration_images": len(inputs),
                    "float_model": model_onnx.name,
                },
            },
        )
        int8 = OnnxBackend(tmp_int8, num_threads=num_threads, sidecar=int8_sidecar)
        hw = fp32.fixed_hw or sidecar.preprocess.input_size or (256, 256)
        shape = (batch, 3, int(hw[0]), int(hw[1]))
        fp32_ms = measure_latency(fp32, shape, repeats=timing_repeats)
        int8_ms = measure_latency(int8, shape, repeats=timing_repeats)

        fp32_miou = int8_miou = drop = None
        val_images = 0
        if val_dataset is not None:
            from pixelwise.evaluation.evaluate import evaluate

            results = []
            for backend in (fp32, int8):
                segmenter = Segmenter(backend, sidecar.taxonomy, sidecar.preprocess, task=sidecar.task)
                results.append(evaluate(segmenter, val_dataset, slice_keys=[], progress=progress, keep_worst=0))
            fp32_miou, int8_miou = float(results[0].metrics.miou), float(results[1].metrics.miou)
            val_images = results[1].num_images
            if val_images == 0:
                raise QuantizationError(
                    None, f"the validation set {val_dataset.name!r} has no scorable images",
                    "check its labels (evaluate reports the issues)",
                )
            drop = (fp32_miou - int8_miou) * 100.0
            int8_sidecar = int8_sidecar.with_updates(
                extra={
                    **int8_sidecar.extra,
                    "quantization": {
                        **int8_sidecar.extra["quantization"],
                        "validation": {
                            "dataset": val_dataset.name,
                            "images": val_images,
                            "fp32_miou": round(fp32_miou, 6),
                            "int8_miou": round(int8_miou, 6),
                            "drop_points": round(drop, 4),
                            "max_drop": max_drop,
                        },
                    },
                }
            )
        report = QuantizeReport(
            fp32_path=model_onnx,
            int8_path=None,
            sidecar_path=None,
            activation_type=activation_type,
            weight_type=weight_type,
            per_channel=bool(per_channel),
            calibrate_method=calibrate_method,
            num_calib=len(inputs),
            calib_skipped=skipped,
            preprocessed=preprocessed,
            fp32_miou=fp32_miou,
            int8_miou=int8_miou,
            drop_points=drop,
            max_drop=float(max_drop),
            fp32_ms=fp32_ms,
            int8_ms=int8_ms,
            fp32_bytes=model_onnx.stat().st_size,
            int8_bytes=tmp_int8.stat().st_size,
            val_images=val_images,
            seconds=0.0,
            notes=notes,
        )
        del fp32, int8  # release the sessions before moving files
        if drop is not None and drop > max_drop:
            report.seconds = time.perf_counter() - started
            raise QuantizationRejected(
                model_onnx,
                f"int8 mIoU {int8_miou * 100:.2f} vs fp32 {fp32_miou * 100:.2f}: a drop of {drop:.2f} points "
                f"exceeds --max-drop {max_drop:g}; the int8 model was not written",
                "calibrate on more representative images (--num-calib, --calib), try --calibrate-method "
                "percentile or entropy, or accept a larger --max-drop",
                report,
            )
        side_out = sidecar_path(out)
        shutil.move(str(tmp_int8), str(out))
        int8_sidecar.write(side_out)
        report.int8_path, report.sidecar_path = out, side_out
        report.seconds = time.perf_counter() - started
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)
