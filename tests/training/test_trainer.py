"""End-to-end training on tiny data: run folder, resume equality, early stopping, transfer, config, bad files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pixelwise.data.image_io import write_image, write_label_png
from pixelwise.models.checkpoint import load_checkpoint
from pixelwise.training import ConfigError, TrainConfig, load_config, resolve_amp, train

MODEL = "fpn-mobilenet_v2"  # the fastest registered model on CPU at these sizes


def make_dataset(root: Path, n: int = 8, size: int = 32, classes: tuple[str, ...] = ("background", "square", "bar"), seed: int = 0) -> Path:
    """A ``masks``-format dataset: noisy images with a square (class 1) and a bar (class 2), no void."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps(list(classes)))
    for i in range(n):
        labels = np.zeros((size, size), np.uint8)
        r, c = rng.integers(0, size // 2, 2)
        labels[r : r + size // 3, c : c + size // 3] = 1
        if len(classes) > 2:
            col = int(rng.integers(0, size - 4))
            labels[:, col : col + 3] = 2
        colours = np.array([[40, 40, 40], [200, 60, 60], [60, 60, 200], [60, 200, 60]], np.int16)[: len(classes)]
        image = colours[labels] + rng.integers(-30, 30, (size, size, 3))
        write_image(root / "images" / f"im{i:02d}.png", np.clip(image, 0, 255).astype(np.uint8))
        write_label_png(root / "masks" / f"im{i:02d}.png", labels)
    return root


def _config(data: Path, out: Path, **changes) -> TrainConfig:
    base = dict(
        data=str(data), out=str(out), model=MODEL, epochs=2, batch_size=2, input_size=32, lr=1e-3,
        loss="ce+dice", amp="off", progress=False, num_workers=0, val_fraction=0.25,
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: at 32x32 a second thread only adds synchronisation (and it is
    robust when other jobs share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny")


def test_end_to_end_through_the_cli_writes_the_run_folder(tmp_path: Path):
    import typer
    from typer.testing import CliRunner

    from pixelwise.cli.train import train_command

    data = make_dataset(tmp_path / "d64", n=8, size=64)
    app = typer.Typer()
    app.command("train")(train_command)
    app.callback()(lambda: None)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"epochs": 5, "lr": 0.5, "model": MODEL, "batch_size": 4, "amp": "off"}))
    args = ["train", "--config", str(tmp_path / "run.yaml"), "--data", str(data), "--epochs", "2", "--lr", "0.002",
            "--input-size", "64", "--out", str(tmp_path / "run"), "--no-progress", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    for name in ("best.pt", "last.pt", "history.csv", "curves.png", "config.yaml", "splits.json"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["epochs"], saved["lr"], saved["batch_size"], saved["input_size"]) == (2, 0.002, 4, [64, 64])  # flags win over YAML
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(0.0 <= float(r["val_miou"]) <= 1.0 for r in rows)
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert best.training is None and last.training is not None and last.training["epoch"] == 2
    assert last.preprocess.input_size == (64, 64) and last.taxonomy.names == ["background", "square", "bar"]
    model = last.build_model()
    assert model.predict(torch.rand(1, 3, 50, 70)).shape == (1, 3, 50, 70)
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["epochs_run"] == 2 and payload["best_metrics"]["epoch"] in (1, 2)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(dataset: Path, tmp_path: Path):
    straight = train(_config(dataset, tmp_path / "a", augment="light", class_weights="inverse_sqrt"))
    first = train(_config(dataset, tmp_path / "b", augment="light", class_weights="inverse_sqrt", max_minutes=1e-6))
    assert first.stop_reason == "time_budget" and first.epochs_run == 1
    config = load_config(tmp_path / "b" / "config.yaml", {"max_minutes": None})
    resumed = train(config, resume=tmp_path / "b")
    assert resumed.epochs_run == 2 and resumed.stop_reason == "completed"
    a = load_checkpoint(tmp_path / "a" / "last.pt").model_state
    b = load_checkpoint(tmp_path / "b" / "last.pt").model_state
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)
    assert straight.history["train_loss"] == pytest.approx(resumed.history["train_loss"], abs=1e-6)
    assert len(list(csv.DictReader((tmp_path / "b" / "history.csv").open()))) == 2


def test_early_stopping_stops_after_patience_epochs(dataset: Path, tmp_path: Path):
    # min_delta > 1 makes every epoch after the first "no better"
    result = train(_config(dataset, tmp_path / "run", epochs=6, patience=2, min_delta=2.0))
    assert result.stop_reason == "early_stopping" and result.epochs_run == 3
    assert result.best_metrics["epoch"] == 1


def test_transfer_learning_reinitialises_a_head_with_another_class_count(dataset: Path, tmp_path: Path):
    source = train(_config(dataset, tmp_path / "src", epochs=1))
    other = make_dataset(tmp_path / "binary", n=4, classes=("background", "square"))
    messages: list[str] = []
    result = train(_config(other, tmp_path / "dst", epochs=1, lr=1e-12, weights=str(source.run_dir / "best.pt"), val_fraction=0.5), echo=messages.append)
    assert any("weights:" in m and "head re-initialised" in m for m in messages), messages
    src = load_checkpoint(source.run_dir / "best.pt").model_state
    dst = load_checkpoint(result.run_dir / "last.pt")
    assert dst.model_config["num_classes"] == 2
    key = "encoder.features.0.0.weight"
    torch.testing.assert_close(dst.model_state[key], src[key], atol=1e-8, rtol=0)
    assert dst.model_state["segmentation_head.0.weight"].shape[0] == 2


def test_broken_images_in_the_training_folder_are_reported_and_skipped(tmp_path: Path):
    data = make_dataset(tmp_path / "d", n=6)
    (data / "images" / "im03.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # the reader rejects it
    good = (data / "images" / "im04.png").read_bytes()
    (data / "images" / "im04.png").write_bytes(good[:80])  # valid header, truncated pixels: the loader rejects it
    result = train(_config(data, tmp_path / "run", epochs=1, val_fraction=0.2))
    issues = (tmp_path / "run" / "issues.txt").read_text()
    for name in ("im03", "im04"):
        assert any(name in issue for issue in result.issues) and name in issues
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    used = splits["train"] + splits["val"]
    assert len(used) == 4 and "im03" not in used and "im04" not in used


def test_existing_run_folder_is_not_overwritten_by_accident(dataset: Path, tmp_path: Path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="--resume"):
        train(_config(dataset, tmp_path / "run"))


def test_config_yaml_merge_and_validation(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\nlr: 0.01\ninput-size: 96x128\nscheduler: onecycle\nloss: ce+0.5*dice\n")
    config = load_config(path, {"lr": 0.1, "epochs": None, "data": "somewhere"})
    assert (config.epochs, config.lr, config.input_size, config.scheduler, config.data) == (3, 0.1, (96, 128), "onecycle", "somewhere")
    assert TrainConfig.from_dict(config.to_dict()) == config
    path.write_text("epochz: 3\n")
    with pytest.raises(ConfigError, match="epochz"):
        load_config(path)
    for bad in ({"optimizer": "lion"}, {"epochs": 0}, {"input_size": "12x"}, {"val_fraction": 1.0}, {"amp": "maybe"}):
        with pytest.raises(ConfigError):
            load_config(None, bad)


def test_input_size_must_fit_the_model(dataset: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="multiple of 32"):
        train(_config(dataset, tmp_path / "run", input_size=40))


@pytest.mark.parametrize(
    ("mode", "timing", "expected"),
    [
        ("on", None, True),
        ("off", {"fp32_s": 2.0, "bf16_s": 1.0}, False),
        ("auto", {"fp32_s": 2.0, "bf16_s": 1.0}, True),
        ("auto", {"fp32_s": 1.0, "bf16_s": 0.95}, False),
        ("auto", {"fp32_s": 1.0, "bf16_s": 3.0}, False),
    ],
)
def test_resolve_amp(mode: str, timing, expected: bool):
    enabled, reason = resolve_amp(mode, torch.device("cpu"), (lambda: timing) if timing else None)
    assert enabled is expected and reason


@pytest.mark.slow
def test_sigterm_leaves_a_valid_last_checkpoint_that_resumes(dataset: Path, tmp_path: Path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    config = _config(dataset, out, epochs=200)
    script = (
        "import torch, yaml; torch.set_num_threads(1)\n"
        "from pixelwise.training import TrainConfig, train\n"
        f"train(TrainConfig(**yaml.safe_load({yaml.safe_dump(config.to_dict())!r})))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert (out / "last.pt").exists(), process.stderr.read().decode() if process.poll() is not None else "timeout"
        time.sleep(0.5)  # most likely in the middle of an epoch or a save
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and b"interrupted" in stderr
    done = load_checkpoint(out / "last.pt").training["epoch"]
    assert 1 <= done < 200
    resumed = train(load_config(out / "config.yaml", {"epochs": done + 1}), resume=out)
    assert resumed.epochs_run == done + 1
