"""Ray engine: a local 2-CPU Ray gives byte-identical outputs to the local engine."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.image_io import write_image
from pixelwise.runtime.ray_engine import RayNotInstalledError, predict_ray
from pixelwise.transforms.preprocess import PreprocessConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

TAX3 = Taxonomy.from_names(["background", "cell", "debris"])


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs, no dashboard, no usage statistics; shut down afterwards."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from pixelwise.runtime.ray_engine import init_ray

    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    init_ray(num_cpus=2, object_store_memory=128 * 1024**2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory, ray_local):
    torch = pytest.importorskip("torch")
    from pixelwise.models import create_model
    from pixelwise.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("ray")
    torch.manual_seed(0)
    model = create_model("unet", num_classes=3).eval()
    checkpoint = save_checkpoint(root / "tiny.pt", model, TAX3, PreprocessConfig(input_size=None, resize_policy="pad"))
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir()
    sizes = [(48, 64), (64, 64), (40, 72), (48, 64), (33, 50), (64, 96)]
    for i, (h, w) in enumerate(sizes):
        write_image(images / f"im{i}.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "data", "bad", "truncated.jpg"), images / "im3b.jpg")
    return checkpoint, images


def _save_all(items, out):
    written = {}
    for item in items:
        if item.ok:
            for kind, path in item.result.save(out, item.path.stem).items():
                written[(item.path.name, kind)] = path.read_bytes()
    return written


def test_ray_outputs_are_identical_to_the_local_engine(ray_local, model_and_images, tmp_path):
    import pixelwise.api
    from pixelwise.runtime.batch import predict_folder

    checkpoint, images = model_and_images
    segmenter = pixelwise.api.load(checkpoint, num_threads=1)
    local = predict_folder(segmenter, images, batch_size=2, progress=False)
    local_items = list(local)
    remote = predict_ray(checkpoint, images, num_workers=2, batch_size=2, progress=False)
    remote_items = list(remote)

    assert [i.path for i in remote_items] == [i.path for i in local_items]
    assert [i.ok for i in remote_items] == [True, True, True, True, False, True, True]
    assert remote_items[4].issue.path == images / "im3b.jpg" and "truncated" in remote_items[4].issue.reason
    local_files = _save_all(local_items, tmp_path / "local")
    remote_files = _save_all(remote_items, tmp_path / "ray")
    assert len(local_files) == 18 and local_files.keys() == remote_files.keys()
    for key in local_files:
        assert remote_files[key] == local_files[key], f"{key} differs"
    for a, b in zip(local_items, remote_items):
        if a.ok:
            assert b.result.source == a.result.source and b.result.to_dict() == a.result.to_dict()
    stats = remote.stats
    assert (stats.engine, stats.workers, stats.processed, stats.failed) == ("ray", 2, 6, 1)
    assert stats.images_per_second > 0
    assert 1 <= len(stats.worker_seconds) <= 2
    assert all(w["busy"] > 0 and w["cpu"] > 0 for w in stats.worker_seconds.values())
    assert ray_local.is_initialized()  # a Ray that the caller started is left running


def test_missing_model_fails_before_starting_work(tmp_path, ray_local):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        predict_ray(tmp_path / "missing.pt", [tmp_path / "a.png"])


def test_missing_ray_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayNotInstalledError, match=r"pixelwise\[ray\]"):
        predict_ray(tmp_path / "m.pt", [tmp_path / "a.png"])
