"""Structured channel pruning of a Pixelwise checkpoint, with a short fine-tune.

:func:`prune_checkpoint` removes whole channels (L1-magnitude importance, torch-pruning's
dependency graph keeps every connected layer consistent: skip connections, concatenations,
depthwise convolutions), so the model really gets smaller and faster. The segmentation
head's output layer is never pruned, so the class count is kept. The pruned checkpoint
records the new tensor shapes in ``model["pruned_shapes"]`` and loads again through
:func:`pixelwise.models.pruned.create_model_from_config` (``weights_only`` stays safe).

Supported: the CNN encoders (unet, fpn, deeplabv3plus with mobilenet_v2, efficientnet-b0,
resnet18/34). SegFormer's attention layers are not supported.

Example:
    >>> report = prune_checkpoint("best.pt", amount=0.3, data="val_dir", finetune_steps=200)  # doctest: +SKIP
    >>> report.after.params < report.before.params  # doctest: +SKIP
    True
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelwise.core.errors import PixelwiseError
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.losses import build_loss
from pixelwise.metrics import ConfusionMatrix
from pixelwise.models.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from pixelwise.models.pruned import PRUNED_SHAPES_KEY, create_model_from_config, pruned_shapes
from pixelwise.models.registry import create_model
from pixelwise.models.semantic import SegmentationModel
from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image, preprocess_labels

__all__ = [
    "ModelStats",
    "PruneError",
    "PruneReport",
    "build_checkpoint_model",
    "count_params",
    "evaluate_miou",
    "finetune",
    "load_arrays",
    "measure_latency",
    "prune_checkpoint",
    "prune_model",
    "state_dict_bytes",
]


class PruneError(PixelwiseError, ValueError):
    """Pruning cannot run: bad amount, unsupported architecture or unusable data."""


@dataclass
class ModelStats:
    """Size, speed and quality of one model.

    Attributes:
        params: number of parameters.
        size_bytes: size of the serialised state dict (what a weights file costs).
        ms_1_thread: median CPU latency of one forward pass at the input size, 1 thread.
        ms_2_threads: same with 2 threads (None when not measured).
        miou: mean IoU on the validation arrays (None without data).
    """

    params: int
    size_bytes: int
    ms_1_thread: float
    ms_2_threads: float | None
    miou: float | None = None


@dataclass
class PruneReport:
    """What :func:`prune_checkpoint` did.

    Attributes:
        amount: fraction of channels removed per prunable group.
        before: stats of the input model.
        after: stats of the pruned (and fine-tuned) model.
        finetune_steps: optimiser steps run after pruning.
        out_path: the pruned checkpoint.
        input_size: ``(H, W)`` used for the latency figures.
        losses: fine-tune loss every step.
    """

    amount: float
    before: ModelStats
    after: ModelStats
    finetune_steps: int
    out_path: Path
    input_size: tuple[int, int]
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (without the per-step losses)."""
        out = asdict(self)
        out["out_path"] = str(self.out_path)
        out["input_size"] = list(self.input_size)
        out.pop("losses")
        return out


# --------------------------------------------------------------------- measuring
def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return int(sum(p.numel() for p in model.parameters()))


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` (the weights-file size)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def measure_latency(
    model: nn.Module, input_size: tuple[int, int], threads: int = 1, repeats: int = 5, warmup: int = 2
) -> float:
    """Median milliseconds of one eval forward pass on a ``(1, C, H, W)`` random input.

    Args:
        model: model to time (put in eval mode; the mode is restored).
        input_size: ``(H, W)``, multiples of the model's divisor.
        threads: ``torch.set_num_threads`` during the timing (restored afterwards).
        repeats: timed runs; the median is returned.
        warmup: untimed runs first.
    """
    in_channels = int(getattr(model, "in_channels", 3))
    x = torch.rand(1, in_channels, *input_size)
    previous = torch.get_num_threads()
    was_training = model.training
    model.eval()
    torch.set_num_threads(max(1, int(threads)))
    try:
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
        return float(np.median(times))
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)


def load_arrays(
    data: SegmentationDataset | str | Path, preprocess: PreprocessConfig, ignore_index: int = 255
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read a labelled dataset into network-ready arrays.

    Args:
        data: a dataset, or a folder / annotation file in any readable format (detected).
        preprocess: the checkpoint's preprocessing (geometry and normalisation).
        ignore_index: label written into padding.

    Returns:
        Per sample ``((3, h, w) float32 input, (h, w) int64 labels)``. Samples whose image
        or annotation cannot be read are skipped.

    Raises:
        PruneError: no usable sample.
    """
    from pixelwise.core.errors import DataError
    from pixelwise.data.image_io import read_image

    if not isinstance(data, SegmentationDataset):
        from pixelwise.data.formats import detect_format, read_dataset

        data = read_dataset(data, detect_format(data))
    arrays = []
    for sample in data.samples:
        try:
            image = read_image(sample.image_path)
            semantic = sample.annotation().semantic
        except (DataError, OSError, ValueError):
            continue
        if semantic is None:
            continue
        chw, geometry = preprocess_image(image, preprocess)
        labels = preprocess_labels(np.asarray(semantic.labels), geometry, ignore_index)
        arrays.append((chw, labels.astype(np.int64)))
    if not arrays:
        raise PruneError(f"dataset {data.name!r} has no sample with readable image and semantic labels")
    return arrays


def evaluate_miou(model: SegmentationModel, arrays: Sequence[tuple[np.ndarray, np.ndarray]], ignore_index: int = 255) -> float:
    """Mean IoU of ``model`` on preprocessed ``(input, labels)`` pairs (network resolution)."""
    cm = ConfusionMatrix(model.num_classes, ignore_index=ignore_index)
    for chw, labels in arrays:
        logits = model.predict(torch.from_numpy(chw)[None])
        cm.update(logits.argmax(1)[0].numpy(), labels)
    return float(cm.compute().miou)


# ---------------------------------------------------------------------- pruning
def prune_model(model: SegmentationModel, amount: float, example_size: tuple[int, int] = (64, 64)) -> SegmentationModel:
    """Remove ``amount`` of the channels of every prunable layer group, in place.

    Importance is the L1 norm of each channel's weights; the segmentation head's output
    convolution is ignored so the number of classes stays.

    Args:
        model: a CNN segmentation model.
        amount: fraction in (0, 1) of channels to remove per group.
        example_size: ``(H, W)`` of the trace input (multiple of the divisor).

    Returns:
        The same (now narrower) model, with ``model.pruned_shapes`` unset (see
        :func:`pixelwise.models.pruned.pruned_shapes`).

    Raises:
        PruneError: ``amount`` out of range or an architecture torch-pruning cannot handle.
    """
    if not 0.0 < float(amount) < 1.0:
        raise PruneError(f"amount must be in (0, 1), got {amount}")
    try:
        import torch_pruning as tp
    except ImportError as exc:  # pragma: no cover - dependency of this module
        raise PruneError("pruning needs torch-pruning: pip install torch-pruning") from exc
    if model.name == "segformer" or model.encoder_name.startswith("mit_"):
        raise PruneError(
            f"{model.name}-{model.encoder_name}: transformer encoders are not supported for channel pruning; "
            "use a CNN encoder (mobilenet_v2, efficientnet-b0, resnet18, resnet34)"
        )
    was_training = model.training
    model.eval()
    size = tuple(int(math.ceil(s / model.required_divisor) * model.required_divisor) for s in example_size)
    example = torch.rand(1, model.in_channels, *size)
    head_layers = [m for m in model.segmentation_head.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        pruner = tp.pruner.MagnitudePruner(
            model,
            example,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=float(amount),
            ignored_layers=head_layers,
        )
        pruner.step()
    except (RuntimeError, IndexError, ValueError) as exc:
        raise PruneError(f"torch-pruning failed on {model.name}-{model.encoder_name}: {exc}") from exc
    model.train(was_training)
    return model


def build_checkpoint_model(checkpoint: Checkpoint) -> SegmentationModel:
    """Rebuild a (possibly pruned) checkpoint's model with its weights, in eval mode.

    Equivalent to ``checkpoint.build_model()`` once that method re-applies pruned shapes.

    Raises:
        CheckpointError: the weights do not fit the architecture.
    """
    model = create_model_from_config(checkpoint.model_config)
    try:
        model.load_state_dict(checkpoint.model_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(checkpoint.path, f"weights do not fit the (pruned) architecture: {exc}") from exc
    return model.eval()


def _save_pruned(
    path: Path, model: SegmentationModel, checkpoint: Checkpoint, shapes: dict[str, list[int]], metrics: dict[str, Any]
) -> Path:
    save_checkpoint(path, model, checkpoint.taxonomy, checkpoint.preprocess, task=checkpoint.task, metrics=metrics)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["model"][PRUNED_SHAPES_KEY] = shapes
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------- fine-tune
def finetune(
    model: SegmentationModel,
    arrays: Sequence[tuple[np.ndarray, np.ndarray]],
    steps: int,
    *,
    lr: float = 5e-4,
    batch_size: int = 4,
    loss: str = "ce+dice",
    ignore_index: int = 255,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` for ``steps`` optimiser steps on ``(input, labels)`` arrays (AdamW, flips).

    Images of different sizes are batched one at a time. Afterwards BatchNorm statistics
    are re-estimated on the training inputs (when they share one size). Returns the loss
    of every step.
    """
    if steps <= 0 or not arrays:
        return []
    loss_fn = build_loss(loss, model.num_classes, ignore_index=ignore_index)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    same_size = len({a.shape for a, _ in arrays}) == 1
    bs = max(min(batch_size, len(arrays)), model.min_train_batch) if same_size else 1
    rng = np.random.default_rng(seed)
    history = []
    model.train()
    for _ in range(steps):
        idx = rng.choice(len(arrays), size=bs, replace=len(arrays) < bs)
        xs, ys = [], []
        for i in idx:
            x, y = arrays[int(i)]
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(torch.from_numpy(np.ascontiguousarray(x)))
            ys.append(torch.from_numpy(np.ascontiguousarray(y)))
        x_batch, y_batch = torch.stack(xs), torch.stack(ys)
        from pixelwise.models.semantic import pad_to_divisor

        x_batch, _ = pad_to_divisor(x_batch, model.required_divisor)
        y_batch, _ = pad_to_divisor(y_batch, model.required_divisor, value=ignore_index)
        optimizer.zero_grad(set_to_none=True)
        value = loss_fn(model(x_batch), y_batch)
        value.backward()
        optimizer.step()
        scheduler.step()
        history.append(float(value.detach()))
    if same_size:
        from pixelwise.training.distill import recalibrate_batchnorm

        recalibrate_batchnorm(model, [x for x, _ in arrays], batch_size=max(2, batch_size))
    model.eval()
    return history


# --------------------------------------------------------------------- top level
def _stats(
    model: SegmentationModel, size: tuple[int, int], val: Sequence[Any] | None, ignore: int, repeats: int, two_threads: bool
) -> ModelStats:
    return ModelStats(
        params=count_params(model),
        size_bytes=state_dict_bytes(model),
        ms_1_thread=measure_latency(model, size, threads=1, repeats=repeats),
        ms_2_threads=measure_latency(model, size, threads=2, repeats=repeats) if two_threads else None,
        miou=evaluate_miou(model, val, ignore) if val else None,
    )


def prune_checkpoint(
    ckpt_path: str | Path,
    amount: float = 0.3,
    *,
    finetune_steps: int | None = None,
    finetune_epochs: int | None = None,
    data: SegmentationDataset | str | Path | None = None,
    val_data: SegmentationDataset | str | Path | None = None,
    out_path: str | Path | None = None,
    lr: float = 5e-4,
    batch_size: int = 4,
    speed_repeats: int = 5,
    two_threads: bool = True,
    seed: int = 0,
) -> PruneReport:
    """Prune a checkpoint's channels, fine-tune, and report size, speed and mIoU before and after.

    Args:
        ckpt_path: Pixelwise checkpoint (may already be pruned).
        amount: fraction in (0, 1) of channels removed per layer group (parameters shrink
            roughly by ``1 - (1 - amount)^2``, as both sides of a convolution lose channels).
        finetune_steps: optimiser steps after pruning (CE + Dice).
        finetune_epochs: alternatively, passes over the training arrays (steps =
            epochs x ceil(n / batch_size)); ignored when ``finetune_steps`` is given.
        data: labelled dataset (or folder) for fine-tuning and validation. Without
            ``val_data`` the last 20 % (at least 1 image) are held out for mIoU.
            None: no fine-tune and no mIoU.
        val_data: separate labelled validation set.
        out_path: where to write the pruned checkpoint (default ``<stem>-pruned.pt``).
        lr: fine-tune learning rate (AdamW, cosine decay).
        batch_size: fine-tune batch size.
        speed_repeats: timed forward passes per latency figure.
        two_threads: also time with 2 threads (1 thread always).
        seed: random seed (sampling, flips).

    Returns:
        A :class:`PruneReport`.

    Raises:
        CheckpointError: unreadable checkpoint.
        PruneError: bad ``amount``, unsupported architecture or unusable data.
    """
    torch.manual_seed(seed)
    ckpt_path = Path(ckpt_path)
    checkpoint = load_checkpoint(ckpt_path)
    out = Path(out_path) if out_path is not None else ckpt_path.with_name(f"{ckpt_path.stem}-pruned.pt")
    model = build_checkpoint_model(checkpoint)
    ignore = checkpoint.taxonomy.ignore_index
    size = checkpoint.preprocess.input_size or (256, 256)
    size = tuple(int(math.ceil(s / model.required_divisor) * model.required_divisor) for s in size)

    train_arrays: list[Any] = []
    val_arrays: list[Any] | None = None
    if val_data is not None:
        val_arrays = load_arrays(val_data, checkpoint.preprocess, ignore)
    if data is not None:
        arrays = load_arrays(data, checkpoint.preprocess, ignore)
        if val_arrays is None:
            n_val = max(1, len(arrays) // 5) if len(arrays) > 1 else 0
            train_arrays, val_arrays = arrays[: len(arrays) - n_val], arrays[len(arrays) - n_val :] or arrays
        else:
            train_arrays = arrays

    before = _stats(model, size, val_arrays, ignore, speed_repeats, two_threads)

    config = {k: v for k, v in checkpoint.model_config.items() if k != PRUNED_SHAPES_KEY}
    reference = create_model(**config)
    prune_model(model, amount)
    shapes = pruned_shapes(reference, model)
    model.pruned_shapes = shapes  # type: ignore[assignment]

    if finetune_steps is None:
        epochs = finetune_epochs or 0
        finetune_steps = epochs * math.ceil(len(train_arrays) / max(1, batch_size)) if train_arrays else 0
    losses = finetune(model, train_arrays, finetune_steps, lr=lr, batch_size=batch_size, ignore_index=ignore, seed=seed)
    steps_run = len(losses)

    after = _stats(model, size, val_arrays, ignore, speed_repeats, two_threads)
    metrics = dict(checkpoint.metrics)
    metrics["pruning"] = {"amount": float(amount), "finetune_steps": steps_run, "params_before": before.params}
    if after.miou is not None:
        metrics["val_miou_after_pruning"] = after.miou
    _save_pruned(out, model, checkpoint, shapes, metrics)
    return PruneReport(
        amount=float(amount),
        before=before,
        after=after,
        finetune_steps=steps_run,
        out_path=out,
        input_size=(int(size[0]), int(size[1])),
        losses=losses,
    )

