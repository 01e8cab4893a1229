"""The model sidecar: a JSON file next to an exported model that states its contract.

An exported graph (``.onnx``, ``.tflite``) holds only tensors. Everything else a user needs
to run it correctly, from C++, JavaScript or Python, lives in ``<model file>.json``
(``model.onnx`` -> ``model.onnx.json``):

``format`` / ``version``   ``"pixelwise-sidecar"`` / 1
``task``                   ``"semantic"``
``model_file``             the model file name (same folder)
``classes``                :meth:`Taxonomy.to_dict`: channel ``k`` of the output is class id ``k``
``input``                  name, shape (``"batch"`` marks a dynamic axis), layout
                           (``"NCHW"`` or ``"NHWC"``), dtype, colour order (RGB) and value
                           ``range``: ``"normalized"`` (``(rgb / 255 - mean) / std``) or
                           ``"0..255"`` (raw RGB values as float; normalisation is inside the
                           graph) or ``"0..1"`` (``rgb / 255``)
``normalization``          ``mean`` / ``std`` on the 0..1 scale and ``in_graph``
``preprocess``             :meth:`PreprocessConfig.to_dict` (resize policy, input size, ...)
``output``                 name, shape, dtype, ``kind`` (``"logits"``, ``"probabilities"``,
                           ``"labels"``) and a plain-words ``meaning``
``opset`` / ``exporter``   ONNX opset of the file and the exporter that wrote it
``source``                 checkpoint file name, its sha256 and the model config
``check``                  the export equality check (max abs diff, label agreement, ...)

Example:
    >>> from pixelwise.core.taxonomy import Taxonomy
    >>> from pixelwise.transforms.preprocess import PreprocessConfig
    >>> car = Sidecar(Taxonomy.from_names(["bg", "cell"]), PreprocessConfig(input_size=(64, 64)),
    ...               input_shape=(1, 3, 64, 64), output_shape=(1, 2, 64, 64))
    >>> Sidecar.from_dict(car.to_dict()) == car
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pixelwise.core.errors import DataError, TaxonomyError
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.transforms.preprocess import PreprocessConfig

__all__ = [
    "INPUT_RANGES",
    "LAYOUTS",
    "OUTPUT_KINDS",
    "SIDECAR_FORMAT",
    "SIDECAR_VERSION",
    "Sidecar",
    "SidecarError",
    "find_sidecar",
    "read_sidecar",
    "sidecar_path",
]

SIDECAR_FORMAT = "pixelwise-sidecar"
SIDECAR_VERSION = 1
LAYOUTS = ("NCHW", "NHWC")
INPUT_RANGES = ("normalized", "0..255", "0..1")
OUTPUT_KINDS = ("logits", "probabilities", "labels")
#: Name of a dynamic axis in ``input_shape`` / ``output_shape``.
DYNAMIC = "batch"

Dim = int | str


class SidecarError(DataError):
    """A sidecar file is missing, unreadable, malformed, or contradicts its model."""


_MEANINGS = {
    "logits": "float32 (B, K, H, W) class scores before softmax; channel k = class id k; label = argmax over axis 1",
    "probabilities": "float32 (B, K, H, W) softmax probabilities (sum to 1 over axis 1); channel k = class id k",
    "labels": "int64 (B, H, W) class id per pixel (argmax of the logits)",
}

_BINARY_MEANING = "float32 probability of class 1 (one channel); class 0 has probability 1 - p"

_RANGE_TEXT = {
    "normalized": "float32 RGB, x = (value / 255 - mean) / std per channel",
    "0..255": "float32 RGB values 0..255 (the graph normalises with mean/std itself)",
    "0..1": "float32 RGB, x = value / 255",
}


def _dims(shape: Any, what: str, path: Path | None) -> tuple[Dim, ...]:
    if not isinstance(shape, (list, tuple)):
        raise SidecarError(path, f"{what} shape must be a list, got {shape!r}")
    out: list[Dim] = []
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, (int, str)) or (isinstance(dim, int) and dim < 1):
            raise SidecarError(path, f"{what} shape {list(shape)} has an invalid axis {dim!r}", "axes are positive ints or a name such as 'batch'")
        out.append(dim)
    return tuple(out)


@dataclass(frozen=True)
class Sidecar:
    """Contract of an exported model (see the module docstring for the JSON layout).

    Attributes:
        taxonomy: classes; output channel ``k`` is class id ``k``.
        preprocess: how images become inputs (geometry and normalisation).
        input_shape: e.g. ``(1, 3, 256, 256)`` or ``("batch", 3, 256, 256)``.
        output_shape: e.g. ``(1, K, 256, 256)`` (logits / probabilities) or ``(1, 256, 256)``
            (labels).
        input_name: graph input name.
        input_layout: ``"NCHW"`` or ``"NHWC"``.
        input_dtype: numpy dtype name of the input (``"float32"``).
        input_range: ``"normalized"``, ``"0..255"`` or ``"0..1"``.
        normalization_in_graph: True when the graph applies mean/std itself.
        output_name: graph output name.
        output_kind: ``"logits"``, ``"probabilities"`` or ``"labels"``. A one-channel
            ``"probabilities"`` output is the probability of class 1 of a binary model.
        output_dtype: numpy dtype name of the output.
        task: ``"semantic"``.
        model_file: model file name (relative to the sidecar's folder), or None.
        opset: ONNX opset (None for other formats).
        exporter: what wrote the model (``"torch.onnx dynamo"``, ``"torch.onnx torchscript"``).
        source: provenance: ``checkpoint`` name, ``sha256``, ``model`` config.
        check: export equality check figures, or None when not checked.
        extra: anything else worth keeping (free-form, JSON-friendly).
    """

    taxonomy: Taxonomy
    preprocess: PreprocessConfig
    input_shape: tuple[Dim, ...]
    output_shape: tuple[Dim, ...]
    input_name: str = "input"
    input_layout: str = "NCHW"
    input_dtype: str = "float32"
    input_range: str = "normalized"
    normalization_in_graph: bool = False
    output_name: str = "logits"
    output_kind: str = "logits"
    output_dtype: str = "float32"
    task: str = "semantic"
    model_file: str | None = None
    opset: int | None = None
    exporter: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------- validation
    def validate(self, path: str | Path | None = None) -> None:
        """Check internal consistency.

        Raises:
            SidecarError: unknown layout / range / output kind, input not rank 4 with 3
                channels, a normalised range flagged as in-graph (or the reverse), an
                output shape that does not fit its kind, fewer output channels than
                classes, or a fixed input size that differs from ``preprocess.input_size``.
        """
        where = Path(path) if path is not None else None
        if self.input_layout not in LAYOUTS:
            raise SidecarError(where, f"input layout {self.input_layout!r} is not one of {LAYOUTS}")
        if self.input_range not in INPUT_RANGES:
            raise SidecarError(where, f"input range {self.input_range!r} is not one of {INPUT_RANGES}")
        if self.output_kind not in OUTPUT_KINDS:
            raise SidecarError(where, f"output kind {self.output_kind!r} is not one of {OUTPUT_KINDS}")
        if self.normalization_in_graph != (self.input_range == "0..255"):
            raise SidecarError(
                where,
                f"input range {self.input_range!r} contradicts normalization in_graph={self.normalization_in_graph}",
                "a graph that normalises takes '0..255' input; otherwise the input is 'normalized' or '0..1'",
            )
        if self.input_range == "0..1" and (any(self.preprocess.mean) or any(v != 1.0 for v in self.preprocess.std)):
            raise SidecarError(
                where,
                f"input range '0..1' needs preprocess mean (0, 0, 0) and std (1, 1, 1), got "
                f"{list(self.preprocess.mean)} / {list(self.preprocess.std)}",
            )
        if len(self.input_shape) != 4:
            raise SidecarError(where, f"input shape {list(self.input_shape)} must have 4 axes ({self.input_layout})")
        channels = self.input_shape[1] if self.input_layout == "NCHW" else self.input_shape[3]
        if channels != 3:
            raise SidecarError(where, f"input shape {list(self.input_shape)} must have 3 (RGB) channels in {self.input_layout} order")
        rank = 3 if self.output_kind == "labels" else 4
        if len(self.output_shape) != rank:
            raise SidecarError(
                where, f"output {self.output_kind} must have {rank} axes, got shape {list(self.output_shape)}"
            )
        k = self.num_classes
        if k == 1 and (self.output_kind != "probabilities" or self.taxonomy.num_classes > 2):
            raise SidecarError(
                where,
                f"a one-channel output must be kind 'probabilities' of a 2-class taxonomy "
                f"(got kind {self.output_kind!r} with {self.taxonomy.num_classes} classes)",
                "a single channel is the probability of class 1; class 0 is 1 - p",
            )
        if k is not None and k > 1 and self.taxonomy.num_classes > k:
            raise SidecarError(
                where,
                f"classes need {self.taxonomy.num_classes} output channels but the output has {k}",
                "the class list and the model do not belong together",
            )
        size = self.input_hw
        if (
            size is not None
            and self.preprocess.resize_policy in ("resize", "letterbox")
            and self.preprocess.input_size is not None
            and tuple(self.preprocess.input_size) != size
        ):
            raise SidecarError(
                where,
                f"the model input is {size[0]}x{size[1]} but preprocess.input_size is "
                f"{self.preprocess.input_size[0]}x{self.preprocess.input_size[1]}",
                "set preprocess.input_size to the model's input size",
            )

    # -------------------------------------------------------------- queries
    @property
    def num_classes(self) -> int | None:
        """K from the output shape (None for labels output or a dynamic axis)."""
        if self.output_kind == "labels":
            return None
        k = self.output_shape[1] if self.input_layout == "NCHW" else self.output_shape[-1]
        return k if isinstance(k, int) else None

    @property
    def input_hw(self) -> tuple[int, int] | None:
        """Fixed ``(H, W)`` of the input, or None when either axis is dynamic."""
        if self.input_layout == "NCHW":
            h, w = self.input_shape[2], self.input_shape[3]
        else:
            h, w = self.input_shape[1], self.input_shape[2]
        return (h, w) if isinstance(h, int) and isinstance(w, int) else None

    @property
    def dynamic_batch(self) -> bool:
        """True when the batch axis is not fixed."""
        return not isinstance(self.input_shape[0], int)

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, nested form (round-trips through :meth:`from_dict`)."""
        return {
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "task": self.task,
            "model_file": self.model_file,
            "classes": self.taxonomy.to_dict(),
            "input": {
                "name": self.input_name,
                "shape": list(self.input_shape),
                "layout": self.input_layout,
                "dtype": self.input_dtype,
                "color_order": "RGB",
                "range": self.input_range,
                "description": _RANGE_TEXT[self.input_range],
            },
            "normalization": {
                "mean": list(self.preprocess.mean),
                "std": list(self.preprocess.std),
                "scale": "0..1",
                "in_graph": self.normalization_in_graph,
            },
            "preprocess": self.preprocess.to_dict(),
            "output": {
                "name": self.output_name,
                "shape": list(self.output_shape),
                "dtype": self.output_dtype,
                "kind": self.output_kind,
                "meaning": _BINARY_MEANING if self.num_classes == 1 else _MEANINGS[self.output_kind],
            },
            "opset": self.opset,
            "exporter": self.exporter,
            "source": dict(self.source),
            "check": dict(self.check) if self.check is not None else None,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path | None = None) -> Sidecar:
        """Parse and validate the nested form.

        Args:
            data: as written by :meth:`to_dict`.
            path: the file it came from, for error messages.

        Raises:
            SidecarError: wrong format marker, newer version, missing or malformed entries.
        """
        where = Path(path) if path is not None else None
        if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
            raise SidecarError(where, f"not a Pixelwise sidecar (no 'format': '{SIDECAR_FORMAT}' entry)")
        version = data.get("version")
        if not isinstance(version, int) or version > SIDECAR_VERSION:
            raise SidecarError(where, f"sidecar version {version!r} is not supported (this Pixelwise reads <= {SIDECAR_VERSION})")
        try:
            inp, out, norm = data["input"], data["output"], data["normalization"]
            preprocess = PreprocessConfig.from_dict(data["preprocess"])
            if tuple(preprocess.mean) != tuple(float(v) for v in norm["mean"]) or tuple(preprocess.std) != tuple(
                float(v) for v in norm["std"]
            ):
                raise SidecarError(
                    where,
                    f"normalization mean/std {norm['mean']}/{norm['std']} differ from the preprocess entry "
                    f"{list(preprocess.mean)}/{list(preprocess.std)}",
                    "keep both in sync (the preprocess entry is what Pixelwise uses)",
                )
            sidecar = cls(
                taxonomy=Taxonomy.from_dict(data["classes"]),
                preprocess=preprocess,
                input_shape=_dims(inp["shape"], "input", where),
                output_shape=_dims(out["shape"], "output", where),
                input_name=str(inp["name"]),
                input_layout=str(inp.get("layout", "NCHW")),
                input_dtype=str(inp.get("dtype", "float32")),
                input_range=str(inp.get("range", "normalized")),
                normalization_in_graph=bool(norm.get("in_graph", False)),
                output_name=str(out["name"]),
                output_kind=str(out.get("kind", "logits")),
                output_dtype=str(out.get("dtype", "float32")),
                task=str(data.get("task", "semantic")),
                model_file=data.get("model_file"),
                opset=data.get("opset"),
                exporter=data.get("exporter"),
                source=dict(data.get("source") or {}),
                check=dict(data["check"]) if data.get("check") else None,
                extra=dict(data.get("extra") or {}),
            )
        except SidecarError as exc:
            if exc.path is None and where is not None:
                raise SidecarError(where, exc.reason, exc.hint) from exc
            raise
        except (KeyError, TypeError, ValueError, TaxonomyError) as exc:
            raise SidecarError(where, f"sidecar entry missing or malformed: {exc!r}", "re-export the model with `pixelwise export`") from exc
        return sidecar

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, path: str | Path | None = None) -> Sidecar:
        """Parse JSON text (see :meth:`from_dict`).

        Raises:
            SidecarError: invalid JSON or contents.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SidecarError(path, f"sidecar is not valid JSON ({exc})") from exc
        return cls.from_dict(data, path)

    def write(self, path: str | Path) -> Path:
        """Write the JSON file (atomically: temporary file, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    def with_updates(self, **changes: Any) -> Sidecar:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


def sidecar_path(model_path: str | Path) -> Path:
    """Where the sidecar of ``model_path`` lives: ``model.onnx`` -> ``model.onnx.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def find_sidecar(model_path: str | Path) -> Path | None:
    """The sidecar of a model file if one exists: ``<name>.json`` first, then ``<stem>.json``."""
    model_path = Path(model_path)
    for candidate in (sidecar_path(model_path), model_path.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(path: str | Path) -> Sidecar:
    """Read and validate a sidecar file.

    Raises:
        SidecarError: missing, unreadable or invalid file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SidecarError(path, "sidecar file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SidecarError(path, f"cannot read sidecar ({exc})") from exc
    return Sidecar.from_json(text, path)
