"""The training run configuration: one dataclass, loaded from YAML and merged with flags.

A run is fully described by a :class:`TrainConfig`. The CLI builds it with
:func:`load_config` (``--config run.yaml`` first, then every flag that was given on the
command line wins) and the trainer writes the resolved version to ``config.yaml`` in the
run folder, so ``pixelwise train --config RUN_DIR/config.yaml`` repeats a run.

Example:
    >>> cfg = load_config(None, {"data": "data/shapes", "epochs": 5, "input_size": 128})
    >>> cfg.input_size, cfg.epochs
    ((128, 128), 5)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixelwise.core.errors import PixelwiseError

__all__ = [
    "AMP_MODES",
    "CLASS_WEIGHTS",
    "DEVICES",
    "NORMALIZATIONS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "ConfigError",
    "TrainConfig",
    "load_config",
    "save_config",
]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "onecycle", "none")
CLASS_WEIGHTS = ("none", "inverse_sqrt", "median_freq")
NORMALIZATIONS = ("imagenet", "dataset")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "on", "off")


class ConfigError(PixelwiseError, ValueError):
    """A training configuration value is unknown, out of range or contradicts another."""


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).lower()
    if text not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return text


def _size(value: Any) -> tuple[int, int] | None:
    """``128`` -> (128, 128); ``[96, 128]`` / ``"96x128"`` -> (96, 128); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"input_size must be N or HxW, got {value!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        numbers = [int(value)]
    else:
        numbers = [int(v) for v in value]
    if len(numbers) == 1:
        numbers = numbers * 2
    if len(numbers) != 2 or min(numbers) < 1:
        raise ConfigError(f"input_size must be N or (height, width) with positive sides, got {value!r}")
    return numbers[0], numbers[1]


@dataclass
class TrainConfig:
    """Everything a semantic-segmentation training run needs.

    Data:
        data: dataset folder or annotation file (any format :mod:`pixelwise.data.formats` reads).
        format: dataset format name; None detects it from the layout.
        val_data: a separate validation dataset (same format); when given, ``val_fraction``
            and the split files are not used and all of ``data`` trains.
        val_fraction: share of images held out for validation when no split is given
            (seeded shuffle of the image ids).
        train_split: text file of training image ids, one per line (optional).
        val_split: text file of validation image ids, one per line (optional; with only
            ``train_split`` the rest validates, with only ``val_split`` the rest trains).
        cache: keep the resized uint8 images and labels in RAM after the first read.

    Model:
        model: architecture or ``"<arch>-<encoder>"`` (see ``pixelwise.models.list_models``).
        encoder: encoder name (None: the architecture's default).
        weights: weights file for transfer learning (full model, encoder only or a
            Pixelwise checkpoint); a head with another class count is re-initialised.

    Optimisation:
        epochs, batch_size (per process: the global batch is ``batch_size * nproc``), lr,
        weight_decay, momentum (SGD), optimizer ``adamw|sgd``, scheduler
        ``cosine|onecycle|none`` (stepped every iteration), grad_clip (max gradient norm).
        loss: spec for :func:`pixelwise.losses.build_loss` (``"ce+dice"``, ``"ce+0.5*dice"``).
        class_weights: ``none|inverse_sqrt|median_freq`` from the training pixel counts.
        ignore_index: label excluded from loss and metrics (None: the taxonomy's).
        augment: augmentation preset name for
            :func:`pixelwise.transforms.augment.build_augmentation`, or ``"none"``.

    Preprocessing (saved in every checkpoint, repeated at inference):
        input_size: ``(height, width)`` network input (multiples of the model's divisor).
        resize_policy: ``resize|letterbox|pad|none`` (see ``PreprocessConfig``).
        normalization: ``imagenet`` mean/std, or ``dataset`` (measured on training images).
        denoise: None or ``median|bilateral|nlmeans``; denoise_strength its parameter.

    Run control:
        patience: stop after this many epochs without a better validation mIoU (None: never).
        min_delta: smallest mIoU gain counted as better.
        seed: seeds model init, data order and augmentation.
        device: ``auto`` (cuda > mps > cpu), ``cpu``, ``cuda``, ``mps``.
        amp: bf16 autocast: ``on``, ``off`` or ``auto`` (on for CUDA with bf16 support;
            on CPU only when the processor has native bf16 matrix units, see
            ``training.trainer.resolve_amp``).
        channels_last: use channels-last memory format.
        num_workers: data-loading processes per training process (None: automatic).
        nproc: local training processes (DDP; gloo on CPU, nccl on CUDA).
        out: run folder (None: ``runs/<model>-<timestamp>``).
        overwrite: allow ``out`` to hold an earlier run (its files are replaced).
        max_minutes: time budget; the run stops cleanly after the epoch that crosses it.
        progress: show tqdm progress bars.
    """

    data: str | None = None
    format: str | None = None
    val_data: str | None = None
    val_fraction: float = 0.2
    train_split: str | None = None
    val_split: str | None = None
    cache: bool = True
    model: str = "unet"
    encoder: str | None = None
    weights: str | None = None
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    grad_clip: float | None = None
    loss: str | dict[str, Any] = "ce+dice"
    class_weights: str = "none"
    ignore_index: int | None = None
    augment: str = "none"
    input_size: tuple[int, int] | None = (256, 256)
    resize_policy: str = "resize"
    normalization: str = "imagenet"
    denoise: str | None = None
    denoise_strength: float = 5.0
    patience: int | None = None
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = False
    num_workers: int | None = None
    nproc: int = 1
    out: str | None = None
    overwrite: bool = False
    max_minutes: float | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.optimizer = _choice("optimizer", self.optimizer, OPTIMIZERS)
        self.scheduler = _choice("scheduler", self.scheduler, SCHEDULERS)
        self.class_weights = _choice("class_weights", self.class_weights or "none", CLASS_WEIGHTS)
        self.normalization = _choice("normalization", self.normalization, NORMALIZATIONS)
        self.device = _choice("device", self.device, DEVICES)
        self.amp = _choice("amp", {True: "on", False: "off"}.get(self.amp, self.amp), AMP_MODES)  # type: ignore[call-overload]
        self.input_size = _size(self.input_size)
        self.augment = str(self.augment or "none").lower()
        for name in ("data", "val_data", "train_split", "val_split", "weights", "out"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))
        for name, low in (("epochs", 1), ("batch_size", 1), ("nproc", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not float(self.lr) > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience}")
        if self.max_minutes is not None and not float(self.max_minutes) > 0:
            raise ConfigError(f"max_minutes must be > 0 or None, got {self.max_minutes}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0 or None, got {self.num_workers}")
        if self.grad_clip is not None and not float(self.grad_clip) > 0:
            raise ConfigError(f"grad_clip must be > 0 or None, got {self.grad_clip}")

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """YAML-friendly dict (tuples become lists); :meth:`from_dict` reads it back."""
        data = dataclasses.asdict(self)
        if self.input_size is not None:
            data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a dict; ``-`` in keys is read as ``_``.

        Raises:
            ConfigError: unknown keys (the message lists the valid ones) or bad values.
        """
        values = {str(k).replace("-", "_"): v for k, v in data.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; valid: {', '.join(sorted(known))}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"bad training options: {exc}") from exc

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config and apply overrides on top (overrides whose value is None are skipped).

    Args:
        path: YAML file with a mapping of :class:`TrainConfig` fields, or None for defaults.
        overrides: field values that win over the file (typically the CLI flags given).

    Returns:
        The merged, validated config.

    Raises:
        ConfigError: unreadable YAML, not a mapping, unknown keys or bad values.

    Example:
        >>> load_config(None, {"data": "d", "lr": 0.01, "epochs": None}).lr
        0.01
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of training options, got {type(loaded).__name__}")
        values.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    for key, value in (overrides or {}).items():
        if value is not None:
            values[str(key).replace("-", "_")] = value
    return TrainConfig.from_dict(values)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    tmp.replace(path)
    return path
