"""The semantic-segmentation trainer: one function, :func:`train`, from config to run folder.

A run folder holds::

    config.yaml     the resolved TrainConfig (re-run with --config RUN_DIR/config.yaml)
    best.pt         checkpoint with the best validation mIoU (weights, taxonomy, preprocessing)
    last.pt         checkpoint after the latest epoch, plus the full resume state
    history.csv     one row per epoch (losses, mIoU, pixel accuracy, lr, speed)
    curves.png      loss and metric curves, redrawn every epoch
    tb/             TensorBoard events (``tensorboard --logdir RUN_DIR/tb``)
    splits.json     the training and validation image ids
    issues.txt      samples skipped or changed while reading (only when there are some)

Every epoch: training (tqdm bar with loss, lr and images/s), validation at network
resolution (:class:`~pixelwise.metrics.ConfusionMatrix`), logs, ``best.pt`` when the
validation mIoU improved, and ``last.pt`` (written atomically, so a Ctrl-C or a kill at
any moment leaves the previous one intact). ``train(config, resume=RUN_DIR)`` continues
from ``last.pt`` and produces the same weights as an uninterrupted run: the data order
and augmentation of epoch ``e`` depend only on ``(seed, e)``, and the optimiser,
scheduler, RNG and early-stopping states are restored.

Example:
    >>> from pixelwise.training import TrainConfig, train
    >>> result = train(TrainConfig(data="data/shapes", epochs=2, input_size=128))  # doctest: +SKIP
    >>> result.best_metrics["val_miou"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelwise.core.errors import PixelwiseError
from pixelwise.data.dataset import DataIssue
from pixelwise.data.loader import SemanticTorchDataset, build_loader
from pixelwise.losses import build_loss, class_weights_from_pixel_counts
from pixelwise.metrics import ConfusionMatrix
from pixelwise.models import create_model, load_weights
from pixelwise.models.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.models.semantic import padded_size
from pixelwise.training.config import ConfigError, TrainConfig, save_config
from pixelwise.training.data import read_training_data
from pixelwise.training.pipeline import SemanticPreprocessor
from pixelwise.training.distributed import (
    DistContext,
    all_reduce_sum,
    broadcast_flag,
    cleanup_distributed,
    convert_sync_batchnorm,
    init_distributed,
)
from pixelwise.transforms.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

__all__ = [
    "HISTORY_COLUMNS",
    "TrainResult",
    "TrainingError",
    "measure_amp_speed",
    "resolve_amp",
    "resolve_device",
    "train",
]

#: Columns of ``history.csv`` (and keys of :attr:`TrainResult.history`).
HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_miou",
    "val_pixel_accuracy",
    "val_mean_dice",
    "lr",
    "train_img_per_s",
    "epoch_seconds",
)
_LOG_EVERY = 10  # steps between TensorBoard step scalars and progress-bar postfix updates
#: curves.png is redrawn after an epoch when the last drawing is at least this old (a
#: drawing costs ~0.3-0.7 s on 2 cores, too much after every 2-second epoch), and always
#: at the end of the run.
_PLOT_EVERY_S = 15.0


class TrainingError(PixelwiseError, RuntimeError):
    """Training cannot go on (non-finite loss, nothing to train on, incompatible resume)."""


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        run_dir: the run folder.
        best_metrics: metrics of the best epoch (``epoch``, ``val_miou``, ``val_loss``,
            ``val_pixel_accuracy``, ``val_mean_dice``, ``train_loss``, ``per_class_iou``).
        history: ``column -> values per epoch`` (see :data:`HISTORY_COLUMNS`).
        epochs_run: epochs completed in total (including those before a resume).
        stop_reason: ``"completed"``, ``"early_stopping"`` or ``"time_budget"``.
        amp: whether bf16 autocast was used.
        seconds: wall time of this call.
    """

    run_dir: Path
    best_metrics: dict[str, Any]
    history: dict[str, list[Any]]
    epochs_run: int
    stop_reason: str
    amp: bool = False
    seconds: float = 0.0
    issues: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "run_dir": str(self.run_dir),
            "best_metrics": self.best_metrics,
            "history": self.history,
            "epochs_run": self.epochs_run,
            "stop_reason": self.stop_reason,
            "amp": self.amp,
            "seconds": self.seconds,
            "issues": list(self.issues),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "run_dir": Path(data["run_dir"])})


# ------------------------------------------------------------------------ devices, AMP
def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; explicit names are checked.

    Raises:
        ConfigError: the device asked for is not available.
    """
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        name = "cuda" if cuda else ("mps" if mps else "cpu")
    if name == "cuda":
        if not cuda:
            raise ConfigError("device cuda asked for but torch sees no CUDA device; use --device cpu or auto")
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not mps:
            raise ConfigError("device mps asked for but it is not available; use --device cpu or auto")
        return torch.device("mps")
    return torch.device("cpu")


def _autocast(device: torch.device, enabled: bool) -> Any:
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def measure_amp_speed(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: nn.Module,
    steps: int = 3,
) -> dict[str, float]:
    """Time forward + backward passes of a copy of ``model`` in float32 and in bf16 autocast.

    The model itself is untouched (a deep copy is timed, no optimiser step).

    Args:
        model: the network, on its device.
        images: one ``(B, 3, H, W)`` float batch on that device.
        targets: ``(B, H, W)`` int64 on that device.
        loss_fn: the training loss.
        steps: timed passes per mode (after one warm-up pass each).

    Returns:
        ``{"fp32_s": seconds per pass, "bf16_s": seconds per pass}``.
    """
    probe = copy.deepcopy(model).train()
    device = images.device
    out: dict[str, float] = {}
    for name, enabled in (("fp32_s", False), ("bf16_s", True)):
        times = []
        for step in range(steps + 1):
            start = time.perf_counter()
            with _autocast(device, enabled):
                logits = probe(images)
            loss = loss_fn(logits.float(), targets)
            loss.backward()
            probe.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step:
                times.append(time.perf_counter() - start)
        out[name] = float(np.median(times))
    return out


def resolve_amp(mode: str, device: torch.device, probe: Callable[[], dict[str, float]] | None = None) -> tuple[bool, str]:
    """Decide on bf16 autocast.

    ``on`` / ``off`` are obeyed. ``auto``: CUDA uses bf16 when the GPU supports it; MPS does
    not; CPU uses it only when ``probe()`` (see :func:`measure_amp_speed`) finds bf16 at
    least 15 % faster. On CPUs without native bf16 units bf16 is several times slower; on
    this project's 2-core reference machine (AMX-capable) ``benchmarks/bf16_speed.py``
    reports the figures for each model.

    Returns:
        ``(enabled, reason)``.
    """
    if mode == "on":
        return True, "amp=on"
    if mode == "off":
        return False, "amp=off"
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "cuda bf16 supported" if ok else "cuda without bf16"
    if device.type != "cpu" or probe is None:
        return False, f"auto: off on {device.type}"
    try:
        timing = probe()
    except (RuntimeError, NotImplementedError) as exc:  # bf16 kernels missing on this CPU
        return False, f"auto: bf16 failed ({type(exc).__name__})"
    speedup = timing["fp32_s"] / max(timing["bf16_s"], 1e-9)
    enabled = speedup >= 1.15
    return enabled, f"auto: bf16 {speedup:.2f}x fp32 speed on this CPU -> {'on' if enabled else 'off'}"


# ------------------------------------------------------------------------ RNG state
def _rng_state() -> dict[str, Any]:
    """Torch, CUDA, NumPy and Python RNG states in a ``weights_only``-loadable form."""
    np_name, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {"name": np_name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [py_version, list(py_state), py_gauss],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------ run folder
def _default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = config.model if not config.encoder else f"{config.model}-{config.encoder}"
    return Path("runs") / f"{name}-{stamp}"


def _write_history(history: dict[str, list[Any]], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HISTORY_COLUMNS)
        for row in zip(*(history[c] for c in HISTORY_COLUMNS)):
            writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
    tmp.replace(path)


def _plot(history: dict[str, list[Any]], path: Path) -> None:
    from pixelwise.viz.plots import plot_curves

    series = {k: history[k] for k in ("train_loss", "val_loss", "val_miou", "val_pixel_accuracy") if any(v is not None for v in history[k])}
    plot_curves(series, path, title=path.parent.name)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (main thread only) so a kill stops between steps."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _echo_default(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


# ------------------------------------------------------------------------ building blocks
def _preprocess_config(config: TrainConfig, train_ds: Any, divisor: int) -> PreprocessConfig:
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if config.normalization == "dataset":
        from pixelwise.data.stats import dataset_statistics

        stats = dataset_statistics(train_ds, progress=False, compute_mean=True, max_images_for_mean=200)
        if stats.channel_mean is None or stats.channel_std is None:
            raise TrainingError("normalization=dataset: no training image could be read for the mean/std")
        mean = stats.channel_mean
        std = tuple(max(s, 1e-3) for s in stats.channel_std)  # type: ignore[assignment]
    return PreprocessConfig(
        input_size=config.input_size,
        resize_policy=config.resize_policy,
        divisor=divisor,
        mean=mean,
        std=std,
        denoise=config.denoise,
        denoise_strength=config.denoise_strength,
    )


def _check_input_size(config: TrainConfig, divisor: int) -> None:
    if config.resize_policy in ("resize", "letterbox"):
        if config.input_size is None:
            raise ConfigError(f"resize_policy {config.resize_policy} needs an input_size")
        h, w = config.input_size
        if h % divisor or w % divisor:
            ph, pw = padded_size(h, w, divisor)
            raise ConfigError(f"input_size {h}x{w} must be a multiple of {divisor} for model {config.model}; use {ph}x{pw}")


def _build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation parameters (1-D tensors).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    return torch.optim.AdamW(groups, lr=config.lr)


def _build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1), eta_min=config.lr * 0.01)
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(total_steps, 1), pct_start=0.15)
    return None


def _class_weights(config: TrainConfig, train_torch: SemanticTorchDataset) -> torch.Tensor | None:
    if config.class_weights == "none":
        return None
    counts = train_torch.pixel_counts()
    return class_weights_from_pixel_counts(counts, method=config.class_weights)


@dataclass
class _EarlyStopping:
    patience: int | None
    min_delta: float = 0.0
    best: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, score: float, epoch: int) -> bool:
        """Record an epoch's score; True if it is the best so far."""
        if score > self.best + self.min_delta or self.best_epoch < 0:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}


# ------------------------------------------------------------------------ the loop
class _Run:
    """State of one training process; :func:`train` drives it."""

    def __init__(self, config: TrainConfig, resume: Path | None, echo: Callable[[str], None]) -> None:
        self.started = time.monotonic()
        self.config = config
        self.resume = resume
        self.ctx: DistContext = init_distributed(resolve_device(config.device).type)
        self.device = resolve_device(config.device, self.ctx.local_rank)
        self.echo = echo if self.ctx.is_main else (lambda message: None)
        self.run_dir = Path(resume) if resume is not None else Path(config.out) if config.out else _default_run_dir(config)
        self.writer: Any = None
        self.issues: list[DataIssue] = []
        self._last_plot = -math.inf
        self._plotted_epochs = 0
        self.history: dict[str, list[Any]] = {c: [] for c in HISTORY_COLUMNS}
        self.best_metrics: dict[str, Any] = {}
        self.amp = False

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        config = self.config
        resume_state = self._load_resume() if self.resume is not None else None
        if resume_state is None:
            self._prepare_run_dir()
        _seed_everything(config.seed)

        train_ds, val_ds, reader_issues = read_training_data(config)
        self.issues += reader_issues
        self.taxonomy = train_ds.taxonomy
        self.num_classes = self.taxonomy.num_classes
        self.ignore_index = int(self.taxonomy.ignore_index if config.ignore_index is None else config.ignore_index)

        self.model = create_model(config.model, num_classes=self.num_classes, encoder=config.encoder)
        divisor = self.model.required_divisor
        _check_input_size(config, divisor)
        if resume_state is not None:
            self.preprocess = resume_state["preprocess"]
        else:
            self.preprocess = _preprocess_config(config, train_ds, divisor)
        if config.weights and resume_state is None:
            report = load_weights(self.model, config.weights)
            self.echo(f"weights: {report.summary()}" + (" (head re-initialised)" if report.head_reinitialised else ""))

        augmentation = None
        if config.augment != "none":
            from pixelwise.transforms.augment import build_augmentation

            size = config.input_size if config.resize_policy in ("resize", "letterbox") else None
            augmentation = build_augmentation(config.augment, size, ignore_index=self.ignore_index, resize_policy="resize")
        preprocessor = SemanticPreprocessor(self.preprocess)
        self.train_data = SemanticTorchDataset(
            train_ds, preprocessor, augmentation, cache=config.cache, ignore_index=self.ignore_index,
            num_classes=self.num_classes, progress=config.progress and self.ctx.is_main,
        )
        self.issues += self.train_data.issues
        self.val_data = None
        if val_ds is not None:
            self.val_data = SemanticTorchDataset(
                val_ds, preprocessor, None, cache=config.cache, ignore_index=self.ignore_index,
                num_classes=self.num_classes, progress=config.progress and self.ctx.is_main,
            )
            self.issues += self.val_data.issues
        self._report_issues()
        if self.ctx.is_main:
            splits = {
                "train": [s.image_id for s in self.train_data.samples],
                "val": [s.image_id for s in self.val_data.samples] if self.val_data else [],
            }
            (self.run_dir / "splits.json").write_text(json.dumps(splits, indent=1))

        weights = _class_weights(config, self.train_data)
        self.loss_fn = build_loss(config.loss, self.num_classes, self.ignore_index, weights).to(self.device)

        world, rank = self.ctx.world_size, self.ctx.rank
        self.train_loader = build_loader(
            self.train_data, config.batch_size, shuffle=True, seed=config.seed, num_workers=config.num_workers,
            rank=rank, world_size=world, pin_memory=self.device.type == "cuda", divisor=divisor,
        )
        if len(self.train_loader) == 0:
            raise TrainingError(f"no training batch: {len(self.train_data)} images for a batch of {config.batch_size}")
        if len(self.train_loader.sampler) < self.model.min_train_batch:  # type: ignore[arg-type]
            raise TrainingError(f"{config.model} needs at least {self.model.min_train_batch} images per training batch")
        self.val_loader = None
        if self.val_data is not None:
            self.val_loader = build_loader(
                self.val_data, config.batch_size, shuffle=False, seed=config.seed, num_workers=config.num_workers,
                rank=rank, world_size=world, pin_memory=self.device.type == "cuda", divisor=divisor, drop_last=False,
            )

        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.net: nn.Module = self.model
        if self.ctx.enabled:
            self.model = convert_sync_batchnorm(self.model, self.device.type)  # type: ignore[assignment]
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = _build_optimizer(config, self.model)
        self.steps_per_epoch = len(self.train_loader)
        self.scheduler = _build_scheduler(config, self.optimizer, config.epochs * self.steps_per_epoch)

        self.stopper = _EarlyStopping(config.patience, config.min_delta)
        self.start_epoch = 0
        if resume_state is not None:
            self._restore(resume_state)
        else:
            # Under DDP the probe's BatchNorm would need every rank in step: decide without it.
            probe = None if self.ctx.enabled else self._amp_probe
            self.amp, reason = resolve_amp(config.amp, self.device, probe)
            self.echo(f"bf16 autocast {'on' if self.amp else 'off'} ({reason})")
            if self.ctx.enabled:
                self.amp = broadcast_flag(self.amp, self.device if self.device.type == "cuda" else "cpu")
        self.global_step = self.start_epoch * self.steps_per_epoch
        if self.ctx.is_main:
            self._open_writer()
            n_params = sum(p.numel() for p in self.model.parameters())
            self.echo(
                f"run {self.run_dir}: {config.model}-{self.model.encoder_name} ({n_params / 1e6:.1f} M parameters), "
                f"{self.num_classes} classes, {len(self.train_data)} train / {len(self.val_data) if self.val_data else 0} val images, "
                f"input {self.preprocess.input_size}, batch {config.batch_size} x {world} process(es), device {self.device}, "
                f"{self.train_loader.num_workers} loader worker(s)"
            )

    def _amp_probe(self) -> dict[str, float]:
        images, targets = next(iter(self.train_loader))
        images, targets = self._to_device(images, targets)
        return measure_amp_speed(self.model, images, targets, self.loss_fn, steps=2)

    def _prepare_run_dir(self) -> None:
        config = self.config
        if self.ctx.is_main:
            if (self.run_dir / "last.pt").exists() and not config.overwrite:
                raise ConfigError(
                    f"{self.run_dir} already holds a training run; resume it with --resume {self.run_dir}, "
                    "choose another --out, or pass --overwrite"
                )
            if config.overwrite:
                for name in ("tb",):
                    shutil.rmtree(self.run_dir / name, ignore_errors=True)
                for name in ("best.pt", "last.pt", "history.csv", "curves.png", "issues.txt"):
                    (self.run_dir / name).unlink(missing_ok=True)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config.replace(out=str(self.run_dir)), self.run_dir / "config.yaml")

    def _load_resume(self) -> dict[str, Any]:
        path = self.run_dir / "last.pt"
        checkpoint = load_checkpoint(path)
        training = checkpoint.training
        if not training:
            raise TrainingError(f"{path} holds no resume state (was it written by an older version or copied from best.pt?)")
        saved = training.get("config", {})
        for key in ("model", "encoder", "input_size", "resize_policy", "loss", "batch_size", "seed"):
            now = self.config.to_dict().get(key)
            if key in saved and saved[key] != now:
                raise TrainingError(f"cannot resume {self.run_dir}: {key} was {saved[key]!r}, now {now!r}; start a new run instead")
        return {"checkpoint": checkpoint, "training": training, "preprocess": checkpoint.preprocess}

    def _restore(self, state: dict[str, Any]) -> None:
        checkpoint, training = state["checkpoint"], state["training"]
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(training["optimizer"])
        if self.scheduler is not None and training.get("scheduler") is not None:
            self.scheduler.load_state_dict(training["scheduler"])
        self.history = {c: list(training["history"].get(c, [])) for c in HISTORY_COLUMNS}
        early = training["early_stopping"]
        self.stopper.best, self.stopper.best_epoch, self.stopper.bad_epochs = early["best"], early["best_epoch"], early["bad_epochs"]
        self.best_metrics = dict(training.get("best_metrics") or {})
        self.start_epoch = int(training["epoch"])
        self.amp = bool(training.get("amp", False))
        _set_rng_state(training["rng"])
        self.echo(f"resumed {self.run_dir} after epoch {self.start_epoch} (best mIoU so far {self.best_metrics.get('val_miou')})")

    def _open_writer(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            self.echo("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
            return
        purge = self.global_step if self.start_epoch else None
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge)

    def _report_issues(self) -> None:
        if not self.issues or not self.ctx.is_main:
            return
        errors = sum(1 for i in self.issues if i.severity == "error")
        self.echo(f"{len(self.issues)} data issue(s) ({errors} sample(s) skipped); see {self.run_dir / 'issues.txt'}")
        for issue in self.issues[:5]:
            self.echo(f"  {issue}")
        (self.run_dir / "issues.txt").write_text("".join(f"{i}\n" for i in self.issues))

    # ---------------------------------------------------------------- epochs
    def _to_device(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, targets.to(self.device, non_blocking=True)

    def _reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a CPU tensor over the processes (on the backend's device), back on CPU."""
        if not self.ctx.enabled:
            return tensor
        moved = tensor.to(self.device) if self.device.type == "cuda" else tensor.clone()
        return all_reduce_sum(moved).cpu()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        config = self.config
        self.net.train()
        self.train_loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        from tqdm import tqdm

        bar = tqdm(
            self.train_loader,
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            leave=False,
            disable=not (config.progress and self.ctx.is_main),
            dynamic_ncols=True,
        )
        loss_sum = torch.zeros((), device=self.device)
        images_seen = 0
        start = time.perf_counter()
        for step, (images, targets) in enumerate(bar):
            images, targets = self._to_device(images, targets)
            with _autocast(self.device, self.amp):
                logits = self.net(images)
            loss = self.loss_fn(logits.float(), targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            loss_sum += loss.detach()
            images_seen += images.shape[0]
            self.global_step += 1
            if step % _LOG_EVERY == 0 or step == self.steps_per_epoch - 1:
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingError(f"loss became {value} at epoch {epoch + 1} step {step + 1}; lower --lr (now {config.lr}) or check the labels")
                lr = self.optimizer.param_groups[0]["lr"]
                speed = images_seen * self.ctx.world_size / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}", refresh=False)
                if self.writer is not None:
                    self.writer.add_scalar("train/loss_step", value, self.global_step)
                    self.writer.add_scalar("train/lr", lr, self.global_step)
        bar.close()
        seconds = time.perf_counter() - start
        totals = self._reduce(torch.stack([loss_sum.double().cpu(), torch.tensor(float(len(self.train_loader)), dtype=torch.float64)]))
        mean_loss = float(totals[0] / totals[1])
        if not math.isfinite(mean_loss):
            raise TrainingError(f"training loss is {mean_loss} in epoch {epoch + 1}; lower --lr (now {config.lr})")
        return {
            "train_loss": mean_loss,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "train_img_per_s": images_seen * self.ctx.world_size / max(seconds, 1e-9),
        }

    def validate(self) -> dict[str, Any]:
        if self.val_loader is None:
            return {}
        self.model.eval()
        matrix = ConfusionMatrix(self.num_classes, self.ignore_index)
        loss_sum, batches = 0.0, 0
        with torch.inference_mode():
            for images, targets in self.val_loader:
                images, targets = self._to_device(images, targets)
                with _autocast(self.device, self.amp):
                    logits = self.model(images)
                logits = logits.float()
                loss_sum += float(self.loss_fn(logits, targets)) * images.shape[0]
                batches += images.shape[0]
                matrix.update(logits.argmax(1).cpu(), targets.cpu())
        counts = self._reduce(torch.from_numpy(matrix.matrix))
        totals = self._reduce(torch.tensor([loss_sum, float(batches)], dtype=torch.float64))
        from pixelwise.metrics import metrics_from_matrix

        metrics = metrics_from_matrix(counts.numpy())
        return {
            "val_loss": float(totals[0] / max(float(totals[1]), 1.0)),
            "val_miou": metrics.miou,
            "val_pixel_accuracy": metrics.pixel_accuracy,
            "val_mean_dice": metrics.mean_dice,
            "per_class_iou": [None if math.isnan(v) else float(v) for v in metrics.iou.tolist()],
        }

    # ---------------------------------------------------------------- saving
    def _training_state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch + 1,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": _rng_state(),
            "early_stopping": self.stopper.state(),
            "best_metrics": self.best_metrics,
            "history": self.history,
            "config": self.config.to_dict(),
            "amp": self.amp,
        }

    def end_epoch(self, epoch: int, train_stats: dict[str, float], val_stats: dict[str, Any], seconds: float) -> bool:
        """Log, checkpoint; returns True when this is the best epoch so far."""
        row = {"epoch": epoch + 1, **train_stats, "epoch_seconds": seconds}
        row.update({k: v for k, v in val_stats.items() if k in HISTORY_COLUMNS})
        for column in HISTORY_COLUMNS:
            value = row.get(column)
            self.history[column].append(None if value is None or (isinstance(value, float) and math.isnan(value)) else value)
        if self.val_loader is not None:
            score = val_stats["val_miou"]
            score = -1.0 if score is None or math.isnan(score) else score
        else:
            score = -train_stats["train_loss"]
        is_best = self.stopper.update(score, epoch)
        metrics = {"epoch": epoch + 1, "train_loss": train_stats["train_loss"], **val_stats}
        if is_best:
            self.best_metrics = metrics
        if not self.ctx.is_main:
            return is_best
        if is_best:
            save_checkpoint(self.run_dir / "best.pt", self.model, self.taxonomy, self.preprocess, metrics=metrics)
        save_checkpoint(
            self.run_dir / "last.pt", self.model, self.taxonomy, self.preprocess, metrics=metrics, training=self._training_state(epoch)
        )
        _write_history(self.history, self.run_dir / "history.csv")
        if self.writer is not None:
            step = self.global_step
            self.writer.add_scalar("train/loss", train_stats["train_loss"], step)
            self.writer.add_scalar("perf/train_img_per_s", train_stats["train_img_per_s"], step)
            for key in ("val_loss", "val_miou", "val_pixel_accuracy", "val_mean_dice"):
                if val_stats.get(key) is not None and not math.isnan(val_stats[key]):
                    self.writer.add_scalar(key.replace("val_", "val/"), val_stats[key], step)
            for class_id, value in enumerate(val_stats.get("per_class_iou") or []):
                if value is not None and class_id in self.taxonomy:
                    self.writer.add_scalar(f"val_iou/{self.taxonomy.name_of(class_id)}", value, step)
            self.writer.flush()
        if time.monotonic() - self._last_plot >= _PLOT_EVERY_S:
            self.plot()
        return is_best

    def plot(self) -> None:
        """Redraw curves.png (rank 0; a failure is reported, never raised)."""
        self._last_plot = time.monotonic()
        if not self.ctx.is_main or not self.history["epoch"]:
            return
        try:
            _plot(self.history, self.run_dir / "curves.png")
        except (ValueError, OSError) as exc:  # a plot must never stop training
            self.echo(f"could not draw curves.png: {exc}")
        self._plotted_epochs = len(self.history["epoch"])

    def finish(self) -> None:
        """Draw the final curves if the last epochs are not on them yet."""
        if len(self.history["epoch"]) != self._plotted_epochs:
            self.plot()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a semantic-segmentation model as ``config`` says; write the run folder.

    Runs in this process, or as one rank of a DDP group when ``WORLD_SIZE`` > 1 is set
    (see :mod:`pixelwise.training.distributed`; ``launch`` spawns local ranks).

    Args:
        config: the run configuration.
        resume: a run folder to continue from its ``last.pt`` (``config`` should be that
            run's ``config.yaml``, optionally with more epochs or another time budget).
        echo: where progress messages go (default: stderr, without breaking the bars).

    Returns:
        A :class:`TrainResult` (on every rank; files are written by rank 0 only).

    Raises:
        ConfigError: inconsistent options (input size, device, existing run folder).
        DataError: unreadable dataset, no usable sample, bad split files.
        TrainingError: non-finite loss, too few images, incompatible resume.
        KeyboardInterrupt: Ctrl-C or SIGTERM; ``last.pt`` of the last finished epoch stays valid.
    """
    run = _Run(config, Path(resume) if resume is not None else None, echo or _echo_default)
    stop_reason = "completed"
    try:
        with _sigterm_as_interrupt():
            run.setup()
            for epoch in range(run.start_epoch, config.epochs):
                epoch_start = time.perf_counter()
                train_stats = run.train_epoch(epoch)
                val_stats = run.validate()
                seconds = time.perf_counter() - epoch_start
                is_best = run.end_epoch(epoch, train_stats, val_stats, seconds)
                miou = val_stats.get("val_miou")
                run.echo(
                    f"epoch {epoch + 1}/{config.epochs}: train loss {train_stats['train_loss']:.4f}"
                    + (f", val loss {val_stats['val_loss']:.4f}, mIoU {miou:.4f}" if miou is not None else "")
                    + f", {train_stats['train_img_per_s']:.1f} img/s, {seconds:.1f} s" + (" *best*" if is_best else "")
                )
                if epoch + 1 >= config.epochs:
                    break
                stop = run.stopper.should_stop
                budget = config.max_minutes is not None and time.monotonic() - run.started >= config.max_minutes * 60
                if broadcast_flag(stop):
                    stop_reason = "early_stopping"
                    run.echo(f"early stopping: no mIoU gain for {run.stopper.bad_epochs} epochs (best epoch {run.stopper.best_epoch + 1})")
                    break
                if broadcast_flag(budget):
                    stop_reason = "time_budget"
                    run.echo(f"time budget of {config.max_minutes} min reached after epoch {epoch + 1}; continue with --resume {run.run_dir}")
                    break
        run.finish()
    except KeyboardInterrupt:
        if run.ctx.is_main:
            run.echo(f"interrupted; {run.run_dir / 'last.pt'} holds the last finished epoch (continue with --resume {run.run_dir})")
        with suppress(Exception):  # the interrupt may have hit matplotlib mid-drawing
            run.finish()
        raise
    finally:
        run.close()
        cleanup_distributed()
    epochs_run = len(run.history["epoch"])
    if run.ctx.is_main:
        run.echo(f"done: {epochs_run} epoch(s), best {run.best_metrics.get('val_miou')} mIoU at epoch {run.best_metrics.get('epoch')} -> {run.run_dir}")
    return TrainResult(
        run_dir=run.run_dir,
        best_metrics=run.best_metrics,
        history=run.history,
        epochs_run=epochs_run,
        stop_reason=stop_reason,
        amp=run.amp,
        seconds=time.monotonic() - run.started,
        issues=[str(i) for i in run.issues],
    )
