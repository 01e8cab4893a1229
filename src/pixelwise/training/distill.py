"""Knowledge distillation: train a light Pixelwise student to copy a teacher segmenter.

The teacher is any model :func:`pixelwise.load` opens: the built-in ``"person"`` model
(MediaPipe selfie segmenter on LiteRT), a checkpoint, an ONNX or TFLite file. Its class
probabilities are computed once per training image, restored to the image size and resized
to the student's input (bilinear), then cached. The student (e.g. ``unet-mobilenet_v2``)
is trained on

``loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * hard(student, labels)``

where ``*_T`` are distributions softened with temperature ``T`` (the teacher's from its
probabilities: ``softmax(log p / T)``) and ``hard`` is CE + Dice on the labels: the given
labels where present, else the teacher's argmax (``pseudo_labels=True``), else nothing
(KD term only). Unlabelled images are therefore fine.

The student is saved as a normal checkpoint with the teacher's taxonomy, so
``pixelwise.load(out_path)`` runs it. Agreement with the teacher (IoU of the foreground
classes and pixel agreement, teacher labels as reference) is measured on held-out images.

Example:
    >>> report = distill("person", "unet-mobilenet_v2", images, steps=300)  # doctest: +SKIP
    >>> report.heldout.iou  # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pixelwise.core.errors import PixelwiseError
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.losses import build_loss
from pixelwise.metrics import ConfusionMatrix
from pixelwise.models.checkpoint import save_checkpoint
from pixelwise.models.registry import create_model
from pixelwise.models.semantic import SegmentationModel
from pixelwise.runtime.predictor import Segmenter
from pixelwise.transforms.preprocess import (
    PreprocessConfig,
    preprocess_image,
    preprocess_labels,
    restore_probabilities,
)

__all__ = [
    "Agreement",
    "DistillError",
    "DistillReport",
    "agreement",
    "distill",
    "distillation_loss",
    "load_teacher",
    "recalibrate_batchnorm",
]

ImageSource = Union[str, Path, np.ndarray]


class DistillError(PixelwiseError, ValueError):
    """Distillation cannot run: no images, bad parameters, or labels that do not fit."""


@dataclass
class Agreement:
    """How closely a student's labels match the teacher's on some images.

    Attributes:
        iou: IoU of the non-background classes (mean over those present), teacher labels
            as reference; for the person model, the IoU of ``person``.
        pixel_agreement: fraction of pixels with the same label.
        images: number of images compared.
    """

    iou: float
    pixel_agreement: float
    images: int


@dataclass
class DistillReport:
    """What :func:`distill` did.

    Attributes:
        out_path: the student checkpoint.
        student: ``"<architecture>-<encoder>"``.
        steps: optimiser steps run.
        train_images, heldout_images: image counts.
        heldout: student-vs-teacher agreement on held-out images after training.
        heldout_untrained: the same for the freshly initialised student (the baseline).
        teacher_ms, student_ms: mean ms per image of ``Segmenter.predict`` (pre- and
            post-processing included) on the held-out images.
        threads: CPU threads given to both models.
        student_params: parameters of the student.
        losses: loss at every step.
    """

    out_path: Path
    student: str
    steps: int
    train_images: int
    heldout_images: int
    heldout: Agreement | None
    heldout_untrained: Agreement | None
    teacher_ms: float | None
    student_ms: float | None
    threads: int
    student_params: int
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (first and last loss instead of the whole curve)."""
        out = asdict(self)
        out["out_path"] = str(self.out_path)
        out.pop("losses")
        out["loss_first"] = self.losses[0] if self.losses else None
        out["loss_last"] = float(np.mean(self.losses[-10:])) if self.losses else None
        return out


def load_teacher(teacher: str | Path | Segmenter, num_threads: int | None = None) -> Segmenter:
    """A teacher segmenter: pass-through, a built-in name (``"person"``) or a model file."""
    if isinstance(teacher, Segmenter):
        return teacher
    from pixelwise.api import load

    return load(teacher, num_threads=num_threads)


def _read(image: ImageSource) -> np.ndarray:
    return Segmenter.load_image(image)[0]


def _collect(images: Sequence[ImageSource] | SegmentationDataset | str | Path) -> tuple[list[ImageSource], list[np.ndarray | None]]:
    """Images and optional semantic labels from a list, a dataset or a folder of images."""
    if isinstance(images, SegmentationDataset):
        sources: list[ImageSource] = []
        labels: list[np.ndarray | None] = []
        for sample in images.samples:
            sources.append(sample.image_path)
            try:
                semantic = sample.annotation().semantic
            except (PixelwiseError, OSError, ValueError):
                semantic = None
            labels.append(None if semantic is None else np.asarray(semantic.labels))
        return sources, labels
    if isinstance(images, (str, Path)):
        from pixelwise.data.image_io import list_images

        folder = Path(images)
        if not folder.is_dir():
            raise DistillError(f"{folder}: not a folder of images; pass a folder, a dataset or a list of images")
        found = list(list_images(folder))
        return list(found), [None] * len(found)
    items = list(images)
    return items, [None] * len(items)


def _soft_targets(teacher: Segmenter, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Teacher probabilities ``(K, h, w) float32`` at the student's input size (sum to 1)."""
    probs, geometry = teacher.network_probabilities([image])[0]
    full = restore_probabilities(probs, geometry)
    hwk = cv2.resize(np.ascontiguousarray(full.transpose(1, 2, 0)), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    if hwk.ndim == 2:
        hwk = hwk[:, :, None]
    chw = np.clip(hwk.transpose(2, 0, 1), 0.0, None)
    chw = chw / np.maximum(chw.sum(axis=0, keepdims=True), 1e-8)
    return np.ascontiguousarray(chw, dtype=np.float32)


def distillation_loss(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 2.0, eps: float = 1e-6
) -> torch.Tensor:
    """``T^2 * KL(softened teacher || softened student)``, averaged over pixels.

    Args:
        student_logits: ``(B, K, H, W)`` float logits.
        teacher_probs: ``(B, K, H, W)`` float probabilities (each pixel sums to 1).
        temperature: T > 0; the teacher is softened as ``softmax(log p / T)``.

    Returns:
        Scalar tensor.
    """
    t = float(temperature)
    teacher_t = F.softmax(torch.log(teacher_probs.clamp_min(eps)) / t, dim=1)
    log_student_t = F.log_softmax(student_logits / t, dim=1)
    kl = (teacher_t * (torch.log(teacher_t.clamp_min(eps)) - log_student_t)).sum(dim=1)
    return kl.mean() * t * t


def agreement(
    student: Segmenter, teacher: Segmenter, images: Sequence[ImageSource], *, timed: bool = False
) -> tuple[Agreement, float | None, float | None]:
    """Compare student and teacher labels (argmax) on ``images`` at full resolution.

    Returns:
        ``(Agreement, teacher_ms, student_ms)``; the times (mean ms per
        ``Segmenter.predict``) are None unless ``timed``.

    Raises:
        DistillError: no images, or student and teacher with different class counts.
    """
    if not images:
        raise DistillError("no images to compare student and teacher on")
    if student.num_classes != teacher.num_classes:
        raise DistillError(f"student has {student.num_classes} classes, teacher {teacher.num_classes}")
    cm = ConfusionMatrix(teacher.num_classes)
    t_time = s_time = 0.0
    for source in images:
        image = _read(source)
        start = time.perf_counter()
        ref = teacher.predict(image, keep_probabilities=False).labels
        mid = time.perf_counter()
        pred = student.predict(image, keep_probabilities=False).labels
        end = time.perf_counter()
        t_time += mid - start
        s_time += end - mid
        cm.update(pred, ref)
    metrics = cm.compute()
    background = teacher.background_id
    fg = [float(v) for k, v in enumerate(metrics.iou) if k != background and not math.isnan(float(v))]
    iou = float(np.mean(fg)) if fg else float("nan")
    result = Agreement(iou=iou, pixel_agreement=float(metrics.pixel_accuracy), images=len(images))
    if not timed:
        return result, None, None
    n = len(images)
    return result, 1000.0 * t_time / n, 1000.0 * s_time / n


def recalibrate_batchnorm(model: torch.nn.Module, inputs: Sequence[np.ndarray], batch_size: int = 4) -> None:
    """Re-estimate BatchNorm running statistics as exact averages over ``inputs`` (no weights change).

    Short trainings leave the running means and variances far from the data's (momentum
    0.1 after a few dozen steps); one pass over the training inputs fixes that cheaply.

    Args:
        model: the network (its mode is restored).
        inputs: ``(3, H, W) float32`` network inputs of one size.
        batch_size: images per forward pass.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not inputs:
        return
    saved = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            if len(chunk) < 2 and len(inputs) >= 2:
                chunk = inputs[-2:]
            model(torch.from_numpy(np.stack(chunk)))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)


def _student_segmenter(model: SegmentationModel, teacher: Segmenter, preprocess: PreprocessConfig, threads: int) -> Segmenter:
    from pixelwise.runtime.torch_backend import TorchBackend

    return Segmenter(TorchBackend(model, num_threads=threads), teacher.taxonomy, preprocess, background_id=teacher.background_id)


def distill(
    teacher: str | Path | Segmenter,
    student_name: str,
    images: Sequence[ImageSource] | SegmentationDataset | str | Path,
    labels: Sequence[np.ndarray | None] | None = None,
    *,
    heldout: Sequence[ImageSource] | None = None,
    heldout_fraction: float = 0.25,
    temperature: float = 2.0,
    alpha: float = 0.5,
    pseudo_labels: bool = True,
    steps: int = 300,
    batch_size: int = 4,
    lr: float = 2e-3,
    input_size: tuple[int, int] = (256, 256),
    out_path: str | Path = "student.pt",
    threads: int = 2,
    seed: int = 0,
    progress: bool = False,
) -> DistillReport:
    """Distil ``teacher`` into a new ``student_name`` model and measure held-out agreement.

    Args:
        teacher: ``"person"`` (built-in), a model file, or a :class:`Segmenter`.
        student_name: registry name, e.g. ``"unet-mobilenet_v2"`` or ``"unet-resnet18"``
            (randomly initialised: no network access is assumed).
        images: training images (paths or ``(H, W, 3) uint8`` arrays), a labelled or
            unlabelled dataset, or a folder of images.
        labels: optional ``(H, W)`` int label maps (teacher class ids, 255 = ignore)
            aligned with ``images``; None entries are unlabelled. Overrides dataset labels.
        heldout: images kept out of training to measure agreement. None: the last
            ``heldout_fraction`` of ``images`` (after a seeded shuffle, at least one when
            there are 2+ images).
        heldout_fraction: see ``heldout``.
        temperature: softening temperature T (> 0).
        alpha: weight of the distillation term in [0, 1]; ``1 - alpha`` weighs the hard
            term when one is available, else the distillation term has weight 1.
        pseudo_labels: use the teacher's argmax as hard labels for unlabelled images.
        steps: optimiser steps (AdamW, linear warm-up over 10 %, cosine decay).
        batch_size: images per step.
        lr: peak learning rate.
        input_size: ``(H, W)`` student input (multiples of 32); images are resized.
        out_path: student checkpoint path.
        threads: CPU threads for the teacher and the student (training and timing).
        seed: seed of the split, the sampling and the initialisation.
        progress: show a tqdm bar.

    Returns:
        A :class:`DistillReport` (held-out figures are None without held-out images).

    Raises:
        DistillError: no training images, bad temperature / alpha / input size, labels
            not aligned with images or with a wrong shape.
    """
    if temperature <= 0:
        raise DistillError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise DistillError(f"alpha must be in [0, 1], got {alpha}")
    size = (int(input_size[0]), int(input_size[1]))
    if size[0] % 32 or size[1] % 32 or min(size) <= 0:
        raise DistillError(f"input_size must be positive multiples of 32, got {input_size}")
    sources, found_labels = _collect(images)
    if labels is not None:
        if len(labels) != len(sources):
            raise DistillError(f"{len(labels)} label maps for {len(sources)} images; pass one per image (None = unlabelled)")
        found_labels = list(labels)
    rng = np.random.default_rng(seed)
    if heldout is None and len(sources) >= 2 and heldout_fraction > 0:
        order = rng.permutation(len(sources))
        n_held = max(1, int(round(len(sources) * heldout_fraction)))
        held_idx, train_idx = order[:n_held], order[n_held:]
        heldout = [sources[i] for i in held_idx]
        sources = [sources[i] for i in train_idx]
        found_labels = [found_labels[i] for i in train_idx]
    heldout = list(heldout or [])
    if not sources:
        raise DistillError("no training images (all were held out or the input is empty)")

    torch.manual_seed(seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        teacher_seg = load_teacher(teacher, num_threads=threads)
        num_classes = teacher_seg.num_classes
        preprocess = PreprocessConfig(input_size=size, resize_policy="resize")
        ignore = teacher_seg.taxonomy.ignore_index

        # Cache inputs and soft targets once per image.
        xs, qs, ys = [], [], []
        for source, label in zip(sources, found_labels):
            image = _read(source)
            chw, geometry = preprocess_image(image, preprocess)
            q = _soft_targets(teacher_seg, image, size)
            if label is not None:
                label = np.asarray(label)
                if label.shape != image.shape[:2]:
                    raise DistillError(f"labels {label.shape} do not match image {image.shape[:2]} ({source if isinstance(source, (str, Path)) else 'array'})")
                y = preprocess_labels(label, geometry, ignore).astype(np.int64)
            elif pseudo_labels:
                y = q.argmax(axis=0).astype(np.int64)
            else:
                y = None
            xs.append(chw)
            qs.append(q)
            ys.append(y)

        model = create_model(student_name, num_classes=num_classes)
        student_seg = _student_segmenter(model, teacher_seg, preprocess, threads)
        baseline = agreement(student_seg, teacher_seg, heldout)[0] if heldout else None

        hard_loss = build_loss("ce+dice", num_classes, ignore_index=ignore)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        warmup = max(1, steps // 10)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / max(1, steps)))
        )
        bs = max(min(batch_size, len(xs)), model.min_train_batch)
        losses: list[float] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc="distill")
        model.train()
        for _ in range(steps):
            idx = rng.choice(len(xs), size=bs, replace=len(xs) < bs)
            flips = rng.random(bs) < 0.5
            gains = rng.uniform(0.8, 1.2, size=bs).astype(np.float32)
            xb = torch.stack([torch.from_numpy(np.ascontiguousarray(xs[i][:, :, ::-1] if f else xs[i]) * g) for i, f, g in zip(idx, flips, gains)])
            qb = torch.stack([torch.from_numpy(np.ascontiguousarray(qs[i][:, :, ::-1] if f else qs[i])) for i, f in zip(idx, flips)])
            logits = model(xb)
            loss = distillation_loss(logits, qb, temperature)
            labelled = [k for k, i in enumerate(idx) if ys[i] is not None]
            if labelled:
                yb = torch.stack(
                    [torch.from_numpy(np.ascontiguousarray(ys[idx[k]][:, ::-1] if flips[k] else ys[idx[k]])) for k in labelled]
                )
                loss = alpha * loss + (1.0 - alpha) * hard_loss(logits[labelled], yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if bar is not None:
            bar.close()
        recalibrate_batchnorm(model, xs, batch_size=max(2, batch_size))
        model.eval()

        out = Path(out_path)
        metrics: dict[str, Any] = {
            "distill": {
                "teacher": str(teacher) if not isinstance(teacher, Segmenter) else repr(teacher),
                "steps": steps,
                "temperature": float(temperature),
                "alpha": float(alpha),
                "train_images": len(xs),
            }
        }
        result = teacher_ms = student_ms = None
        if heldout:
            from pixelwise.api import load

            saved = load(save_checkpoint(out, model, teacher_seg.taxonomy, preprocess, metrics=metrics), num_threads=threads)
            agreement(saved, teacher_seg, heldout[:1], timed=True)  # warm-up
            result, teacher_ms, student_ms = agreement(saved, teacher_seg, heldout, timed=True)
            metrics["distill"]["heldout_iou"] = result.iou
            metrics["distill"]["heldout_pixel_agreement"] = result.pixel_agreement
        save_checkpoint(out, model, teacher_seg.taxonomy, preprocess, metrics=metrics)
    finally:
        torch.set_num_threads(previous_threads)
    return DistillReport(
        out_path=out,
        student=f"{model.name}-{model.encoder_name}",
        steps=len(losses),
        train_images=len(xs),
        heldout_images=len(heldout),
        heldout=result,
        heldout_untrained=baseline,
        teacher_ms=teacher_ms,
        student_ms=student_ms,
        threads=int(threads),
        student_params=int(sum(p.numel() for p in model.parameters())),
        losses=losses,
    )
