"""Nuclei benchmark on real microscopy data: train on the left half, score the right half.

Data: ``tests/data/nuclei_dsb2018`` (2018 Data Science Bowl, CC0): a 512x512 uint16
fluorescence image (read with ``image_io.read_image``, i.e. percentile-stretched to uint8
RGB) and its instance labels (``instances.tif``, foreground = id > 0).

A small binary U-Net (random initialisation, no pretrained weights, no network access) is
trained with plain PyTorch on random crops of the left half (x < 256), with flips, 90
degree rotations and a mild brightness/contrast jitter, using ``ce+dice`` from
:func:`pixelwise.losses.build_loss`. The right half (512x256, never seen in training) is
then segmented whole through the shared inference pipeline
(:class:`pixelwise.runtime.Segmenter` over :class:`pixelwise.runtime.TorchBackend`, so
preprocessing and restoration are exactly those of ``pixelwise predict``). Reported:
foreground Dice and IoU of the model, of an all-background prediction and of Otsu's
threshold on the same half. One JSON line per figure, e.g.
``{"benchmark": "nuclei", "metric": "dice", "value": 0.91}``.

Run: ``python benchmarks/nuclei.py`` (200 steps of 8 crops of 128x128, a few minutes on 2 CPU cores);
``--steps 60`` for a quick check; ``--save nuclei.pt`` keeps the checkpoint (then try
``pixelwise predict --model nuclei.pt tests/data/nuclei_dsb2018/image.tif``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.image_io import read_image, read_image_raw
from pixelwise.losses import build_loss
from pixelwise.models import create_model
from pixelwise.models.checkpoint import save_checkpoint
from pixelwise.runtime import Segmenter, TorchBackend
from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image

DATA_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "nuclei_dsb2018"
SPLIT_X = 256
DEFAULT_STEPS = 200
DEFAULT_CROP = 128
DEFAULT_MODEL = "unet-resnet18"
DEFAULT_LR = 3e-3


def load_nuclei(data_dir: Path = DATA_DIR) -> tuple[np.ndarray, np.ndarray]:
    """The image as ``(512, 512, 3) uint8`` RGB and the foreground as ``(512, 512) bool``."""
    rgb = read_image(data_dir / "image.tif")
    instances = read_image_raw(data_dir / "instances.tif")
    return rgb, np.asarray(instances) > 0


def dice_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Foreground Dice and IoU of two ``(H, W) bool`` masks (1.0 when both are empty)."""
    inter = float(np.logical_and(pred, truth).sum())
    total = float(pred.sum() + truth.sum())
    union = total - inter
    dice = 2 * inter / total if total else 1.0
    iou = inter / union if union else 1.0
    return dice, iou


def otsu_mask(rgb: np.ndarray) -> np.ndarray:
    """Otsu's global threshold on the grey image: ``(H, W) bool`` foreground."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return mask > 0


def _batch(
    image: torch.Tensor, mask: torch.Tensor, crop: int, batch_size: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random augmented crops: ``(B, 3, crop, crop)`` float32 and ``(B, crop, crop)`` int64."""
    _, height, width = image.shape
    xs, ys = [], []
    for _ in range(batch_size):
        top = int(torch.randint(0, height - crop + 1, (1,), generator=gen))
        left = int(torch.randint(0, width - crop + 1, (1,), generator=gen))
        x = image[:, top : top + crop, left : left + crop]
        y = mask[top : top + crop, left : left + crop]
        k = int(torch.randint(0, 4, (1,), generator=gen))
        x, y = torch.rot90(x, k, (1, 2)), torch.rot90(y, k, (0, 1))
        if bool(torch.rand(1, generator=gen) < 0.5):
            x, y = x.flip(2), y.flip(1)
        # Mild intensity jitter in the normalised space: contrast then brightness.
        contrast = 1.0 + 0.2 * (2 * float(torch.rand(1, generator=gen)) - 1)
        brightness = 0.2 * (2 * float(torch.rand(1, generator=gen)) - 1)
        xs.append(x * contrast + brightness)
        ys.append(y)
    return torch.stack(xs).contiguous(), torch.stack(ys).contiguous()


def train(
    rgb: np.ndarray,
    foreground: np.ndarray,
    preprocess: PreprocessConfig,
    *,
    steps: int,
    crop: int,
    seed: int,
    batch_size: int = 8,
    model_name: str = DEFAULT_MODEL,
    lr: float = DEFAULT_LR,
) -> torch.nn.Module:
    """Train a 2-class model on random crops of ``rgb`` (the training half only)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    chw, _ = preprocess_image(rgb, preprocess)
    image = torch.from_numpy(chw[:, : rgb.shape[0], : rgb.shape[1]].copy())
    mask = torch.from_numpy(foreground.astype(np.int64))
    model = create_model(model_name, num_classes=2)
    loss_fn = build_loss("ce+dice", num_classes=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15, anneal_strategy="cos"
    )
    model.train()
    for _ in range(steps):
        x, y = _batch(image, mask, crop, batch_size, gen)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


def run_nuclei(
    steps: int = DEFAULT_STEPS,
    crop: int = DEFAULT_CROP,
    seed: int = 0,
    *,
    batch_size: int = 8,
    model_name: str = DEFAULT_MODEL,
    lr: float = DEFAULT_LR,
    threads: int | None = None,
    save: str | Path | None = None,
    data_dir: Path = DATA_DIR,
) -> dict[str, Any]:
    """Train on the left half, evaluate foreground Dice / IoU on the right half.

    Args:
        steps: optimiser steps.
        crop: side of the square training crops (a multiple of 32).
        seed: seeds torch and the crop sampler.
        batch_size: crops per step.
        model_name: ``create_model`` name of a 2-class model.
        lr: peak learning rate (one-cycle schedule, AdamW).
        threads: torch intra-op threads (None: torch's default).
        save: write the trained model as a Pixelwise checkpoint here.
        data_dir: folder with ``image.tif`` and ``instances.tif``.

    Returns:
        ``{"dice", "iou", "dice_otsu", "iou_otsu", "dice_background", "iou_background",
        "train_seconds", "predict_seconds", "steps", "crop", "model"}``.
    """
    if crop % 32 or crop > SPLIT_X:
        raise ValueError(f"crop must be a multiple of 32 and at most {SPLIT_X}, got {crop}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        rgb, foreground = load_nuclei(data_dir)
        left_rgb, left_fg = rgb[:, :SPLIT_X], foreground[:, :SPLIT_X]
        right_rgb, right_fg = np.ascontiguousarray(rgb[:, SPLIT_X:]), foreground[:, SPLIT_X:]
        preprocess = PreprocessConfig(input_size=None, resize_policy="pad", divisor=32)
        taxonomy = Taxonomy.from_names(["background", "nucleus"], stuff=["background"])

        start = time.perf_counter()
        model = train(left_rgb, left_fg, preprocess, steps=steps, crop=crop, seed=seed,
                      batch_size=batch_size, model_name=model_name, lr=lr)
        train_seconds = time.perf_counter() - start

        start = time.perf_counter()
        segmenter = Segmenter(TorchBackend(model), taxonomy, preprocess)
        predicted = segmenter.predict(right_rgb).labels == 1
        predict_seconds = time.perf_counter() - start

        dice, iou = dice_iou(predicted, right_fg)
        dice_otsu, iou_otsu = dice_iou(otsu_mask(right_rgb), right_fg)
        dice_bg, iou_bg = dice_iou(np.zeros_like(right_fg), right_fg)
        if save is not None:
            save_checkpoint(save, model, taxonomy, preprocess, metrics={"nuclei_dice": dice, "nuclei_iou": iou})
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "dice": dice,
        "iou": iou,
        "dice_otsu": dice_otsu,
        "iou_otsu": iou_otsu,
        "dice_background": dice_bg,
        "iou_background": iou_bg,
        "train_seconds": train_seconds,
        "predict_seconds": predict_seconds,
        "steps": steps,
        "crop": crop,
        "model": model_name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--crop", type=int, default=DEFAULT_CROP)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save", default=None, help="write the trained checkpoint here")
    args = parser.parse_args()
    out = run_nuclei(args.steps, args.crop, args.seed, batch_size=args.batch_size, model_name=args.model, lr=args.lr,
                     threads=args.threads, save=args.save)
    for metric in ("dice", "iou", "dice_otsu", "iou_otsu", "dice_background", "iou_background",
                   "train_seconds", "predict_seconds"):
        value = out[metric]
        print(json.dumps({"benchmark": "nuclei", "metric": metric,
                          "value": round(value, 4) if math.isfinite(value) else None,
                          "steps": out["steps"], "crop": out["crop"], "model": out["model"]}))


if __name__ == "__main__":
    main()
