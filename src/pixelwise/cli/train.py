"""``pixelwise train``: train a semantic-segmentation model (thin wrapper over :mod:`pixelwise.training`).

Options come from ``--config run.yaml`` (any :class:`~pixelwise.training.TrainConfig`
field) and then from the flags actually given, which win. The resolved configuration is
written to ``RUN_DIR/config.yaml``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from pixelwise.cli.common import friendly_errors

__all__ = ["train_command"]


def train_command(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset folder or annotation file (any format `pixelwise data formats` lists)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of training options; flags given on the command line win."),
    format: Optional[str] = typer.Option(None, "--format", help="Dataset format (coco, coco-panoptic, voc, yolo-seg, cityscapes, masks); default: detected."),
    val_data: Optional[Path] = typer.Option(None, "--val-data", help="Separate validation dataset (then all of --data trains)."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Share of images held out for validation when no split is given [0.2]."),
    train_split: Optional[Path] = typer.Option(None, "--train-split", help="Text file of training image ids, one per line."),
    val_split: Optional[Path] = typer.Option(None, "--val-split", help="Text file of validation image ids, one per line."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Architecture or ARCH-ENCODER: unet, fpn, deeplabv3plus, segformer [unet]."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encoder: mobilenet_v2, efficientnet-b0, resnet18, resnet34, mit_b0 [architecture default]."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Start from these weights (checkpoint, full or encoder state dict); a head of another class count is re-initialised."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Number of epochs [30]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per batch per process; global batch = batch size x nproc [8]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate [1e-3]."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay, not applied to biases and norms [1e-4]."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adamw or sgd [adamw]."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Learning-rate schedule, stepped per batch: cosine, onecycle or none [cosine]."),
    loss: Optional[str] = typer.Option(None, "--loss", help="Loss spec: ce, dice, jaccard, focal, sums like ce+dice or ce+0.5*dice [ce+dice]."),
    class_weights: Optional[str] = typer.Option(None, "--class-weights", help="Class weights from training pixel counts: none, inverse_sqrt, median_freq [none]."),
    ignore_index: Optional[int] = typer.Option(None, "--ignore-index", help="Label value excluded from loss and metrics [taxonomy's, 255]."),
    augment: Optional[str] = typer.Option(None, "--augment", "-a", help="Augmentation preset: none, light, standard, heavy [none]."),
    input_size: Optional[str] = typer.Option(None, "--input-size", "-s", help="Network input N or HxW, multiples of 32 (16 for deeplabv3plus) [256]."),
    resize_policy: Optional[str] = typer.Option(None, "--resize-policy", help="resize (stretch), letterbox (keep aspect, pad), pad (to a multiple of 32) or none [resize]."),
    normalization: Optional[str] = typer.Option(None, "--normalization", help="imagenet mean/std, or dataset (measured on training images) [imagenet]."),
    denoise: Optional[str] = typer.Option(None, "--denoise", help="Denoise before resizing: median, bilateral or nlmeans [off]."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping: epochs without a better validation mIoU [off]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for model init, data order and augmentation [0]."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (cuda > mps > cpu), cpu, cuda or mps [auto]."),
    amp: Optional[str] = typer.Option(None, "--amp", help="bf16 autocast: auto (GPU with bf16; CPU only if measured faster), on, off [auto]."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="Channels-last memory format [off]."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", help="Data-loading processes per training process [automatic]."),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Keep resized images and labels in RAM (fast epochs on small datasets) [on]."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder [runs/MODEL-TIMESTAMP]."),
    overwrite: Optional[bool] = typer.Option(None, "--overwrite", help="Replace an earlier run in --out."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder from its last.pt (its config.yaml, then these flags)."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Local training processes (DDP: gloo on CPU, nccl on CUDA) [1]."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Time budget: stop cleanly after the epoch that crosses it."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Show progress bars [on]."),
    json_out: bool = typer.Option(False, "--json", help="Print the result (run folder, best metrics, history) as JSON on stdout."),
) -> None:
    """Train a semantic-segmentation model; writes best.pt, last.pt, history.csv, curves.png, config.yaml and TensorBoard logs."""
    from pixelwise.training import launch, load_config

    overrides = {
        "data": data, "format": format, "val_data": val_data, "val_fraction": val_fraction,
        "train_split": train_split, "val_split": val_split, "model": model, "encoder": encoder,
        "weights": weights, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "optimizer": optimizer, "scheduler": scheduler, "loss": loss,
        "class_weights": class_weights, "ignore_index": ignore_index, "augment": augment,
        "input_size": input_size, "resize_policy": resize_policy, "normalization": normalization,
        "denoise": denoise, "patience": patience, "seed": seed, "device": device, "amp": amp,
        "channels_last": channels_last, "num_workers": num_workers, "cache": cache, "out": out,
        "overwrite": overwrite, "nproc": nproc, "max_minutes": max_minutes, "progress": progress,
    }
    overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
    with friendly_errors():
        if resume is not None:
            base = config if config is not None else resume / "config.yaml"
            overrides["out"] = str(resume)
            cfg = load_config(base, overrides)
        else:
            cfg = load_config(config, overrides)
        try:
            result = launch(cfg, cfg.nproc, resume=str(resume) if resume is not None else None)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), default=str))
    else:
        best = result.best_metrics
        miou = best.get("val_miou")
        score = f"best val mIoU {miou:.4f} at epoch {best.get('epoch')}" if miou is not None else f"final train loss {best.get('train_loss')}"
        typer.echo(f"{result.run_dir}: {result.epochs_run} epoch(s), {score} ({result.stop_reason}, {result.seconds / 60:.1f} min)")
