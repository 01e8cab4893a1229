"""``pixelwise prune`` and ``pixelwise distill``: make a model smaller and faster.

``prune`` removes channels from a checkpoint, fine-tunes it and prints parameters, size,
speed (1 and 2 threads) and mIoU before and after. ``distill`` trains a light student to
copy a teacher (``person`` or a checkpoint) and prints its agreement with the teacher on
held-out images. Exit code 0; 2 on a bad model, data path or parameter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pixelwise.cli.common import friendly_errors

__all__ = ["distill_command", "prune_command"]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def prune_command(
    model: Path = typer.Option(..., "--model", "-m", help="Pixelwise checkpoint (.pt) to prune."),
    amount: float = typer.Option(0.3, "--amount", "-a", min=0.01, max=0.95, help="Fraction of channels removed per layer group."),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", "-e", min=0, help="Fine-tune passes over --data after pruning."),
    finetune_steps: Optional[int] = typer.Option(None, "--finetune-steps", min=0, help="Fine-tune steps (overrides --finetune-epochs)."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Labelled dataset for fine-tuning and mIoU (last 20 % held out)."),
    val_data: Optional[Path] = typer.Option(None, "--val-data", help="Separate labelled validation set."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Pruned checkpoint (default: <model>-pruned.pt)."),
    lr: float = typer.Option(5e-4, "--lr", help="Fine-tune learning rate."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Fine-tune batch size."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON line."),
) -> None:
    """Structured channel pruning (L1 magnitude) plus a short fine-tune; prints before/after."""
    from pixelwise.training.prune import prune_checkpoint

    with friendly_errors():
        report = prune_checkpoint(
            model,
            amount,
            finetune_steps=finetune_steps,
            finetune_epochs=finetune_epochs,
            data=data,
            val_data=val_data,
            out_path=out,
            lr=lr,
            batch_size=batch_size,
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    b, a = report.before, report.after
    h, w = report.input_size
    typer.echo(f"pruned {amount:.0%} of channels, fine-tuned {report.finetune_steps} steps -> {report.out_path}")
    typer.echo(f"{'':14}{'before':>12}{'after':>12}")
    typer.echo(f"{'params':14}{b.params:>12,}{a.params:>12,}")
    typer.echo(f"{'size MB':14}{b.size_bytes / 1e6:>12.2f}{a.size_bytes / 1e6:>12.2f}")
    typer.echo(f"{f'ms {h}x{w} 1T':14}{b.ms_1_thread:>12.1f}{a.ms_1_thread:>12.1f}")
    typer.echo(f"{f'ms {h}x{w} 2T':14}{_fmt(b.ms_2_threads, '.1f'):>12}{_fmt(a.ms_2_threads, '.1f'):>12}")
    typer.echo(f"{'mIoU':14}{_fmt(b.miou, '.4f'):>12}{_fmt(a.miou, '.4f'):>12}")


def distill_command(
    teacher: str = typer.Option("person", "--teacher", "-t", help="Teacher: 'person' (built-in) or a model file."),
    student: str = typer.Option("unet-mobilenet_v2", "--student", "-s", help="Student architecture, e.g. unet-resnet18."),
    data: Path = typer.Option(..., "--data", "-d", help="Folder of training images (labels optional)."),
    heldout: Optional[Path] = typer.Option(None, "--heldout", help="Folder of held-out images (default: 25 % of --data)."),
    steps: int = typer.Option(300, "--steps", min=1, help="Optimiser steps."),
    input_size: str = typer.Option("256x256", "--input-size", help="Student input HxW (multiples of 32)."),
    temperature: float = typer.Option(2.0, "--temperature", "-T", min=0.01, help="Softening temperature."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, help="Weight of the soft (KL) term."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per step."),
    lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads."),
    out: Path = typer.Option(Path("student.pt"), "--out", "-o", help="Student checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON line."),
) -> None:
    """Distil a teacher into a light student; prints held-out agreement and speeds."""
    from pixelwise.training.distill import DistillError, distill

    with friendly_errors():
        try:
            h, w = (int(v) for v in input_size.lower().split("x"))
        except ValueError as exc:
            raise DistillError(f"--input-size must look like 256x256, got {input_size!r}") from exc
        held = None
        if heldout is not None:
            from pixelwise.data.image_io import list_images

            held = list(list_images(heldout))
        report = distill(
            teacher,
            student,
            data,
            heldout=held,
            steps=steps,
            input_size=(h, w),
            temperature=temperature,
            alpha=alpha,
            batch_size=batch_size,
            lr=lr,
            threads=threads,
            out_path=out,
            progress=not as_json,
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    typer.echo(f"student {report.student} ({report.student_params:,} params), {report.steps} steps on {report.train_images} images -> {report.out_path}")
    if report.heldout is None:
        typer.echo("no held-out images: agreement not measured")
        return
    base = report.heldout_untrained
    typer.echo(
        f"held-out agreement with teacher ({report.heldout_images} images): IoU {report.heldout.iou:.4f}, "
        f"pixels {report.heldout.pixel_agreement:.4f}"
        + (f" (untrained: IoU {base.iou:.4f}, pixels {base.pixel_agreement:.4f})" if base else "")
    )
    typer.echo(f"ms/image ({report.threads} threads): teacher {_fmt(report.teacher_ms, '.1f')}, student {_fmt(report.student_ms, '.1f')}")
