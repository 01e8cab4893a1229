"""Distillation from the built-in person model into a tiny student on real video frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import pixelwise
from pixelwise.training.distill import DistillError, distill, distillation_loss

FRAMES = sorted((Path(__file__).parents[1] / "data" / "vtest_frames").glob("*.jpg"))


def test_distill_person_frames(tmp_path: Path) -> None:
    assert len(FRAMES) >= 8
    report = distill(
        "person",
        "unet-resnet18",
        FRAMES[:6],
        heldout=FRAMES[6:8],
        steps=6,
        batch_size=2,
        input_size=(64, 96),
        out_path=tmp_path / "student.pt",
        threads=1,
    )
    assert report.steps == 6 and report.train_images == 6 and report.heldout_images == 2
    assert report.heldout is not None and report.heldout_untrained is not None
    # The untrained student labels pixels at random; a few steps already copy the background.
    assert report.heldout.pixel_agreement > max(0.8, report.heldout_untrained.pixel_agreement)
    assert report.teacher_ms and report.student_ms
    student = pixelwise.load(tmp_path / "student.pt")
    assert [c.name for c in student.taxonomy.classes] == ["background", "person"]
    assert student.predict(np.zeros((40, 60, 3), np.uint8)).labels.shape == (40, 60)


def test_distillation_loss_zero_when_equal() -> None:
    logits = torch.randn(2, 3, 4, 4)
    probs = torch.softmax(logits, dim=1)
    assert float(distillation_loss(logits, probs, temperature=1.0)) == pytest.approx(0.0, abs=1e-5)
    assert float(distillation_loss(-logits, probs, temperature=2.0)) > 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"temperature": 0.0}, "temperature"), ({"alpha": 1.5}, "alpha"), ({"input_size": (50, 64)}, "multiples of 32")],
)
def test_bad_parameters(kwargs: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(DistillError, match=match):
        distill("person", "unet", FRAMES[:2], out_path=tmp_path / "s.pt", **kwargs)


def test_labels_must_align(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="label maps"):
        distill("person", "unet", FRAMES[:3], labels=[None], out_path=tmp_path / "s.pt")
