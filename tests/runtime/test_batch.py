"""Local batch engine: order, bad files reported and skipped, bounded read-ahead, stats."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

import pixelwise.runtime.batch as batch_module
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.image_io import write_image
from pixelwise.runtime import Segmenter
from pixelwise.runtime.batch import BatchStats, predict_chunk, predict_folder
from pixelwise.transforms.preprocess import PreprocessConfig

TAX3 = Taxonomy.from_names(["background", "cell", "debris"])
IDENTITY = PreprocessConfig(input_size=None, resize_policy="none", mean=(0, 0, 0), std=(1, 1, 1))


class RedBackend:
    """Class = round(red / 100) (one-hot logits); records the batch shapes it sees."""

    name = "red"
    num_classes = 3

    def __init__(self, fail_width: int | None = None) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.fail_width = fail_width
        self.lock = threading.Lock()

    def predict_scores(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls.append(batch.shape)
        ids = np.clip(np.rint(batch[:, 0] * 255 / 100), 0, 2).astype(np.int64)
        scores = np.eye(3, dtype=np.float32)[ids].transpose(0, 3, 1, 2) * 10
        if batch.shape[3] == self.fail_width:
            return scores[:, :2]  # wrong channel count -> BackendOutputError
        return scores


def _image(red: int, height: int = 20, width: int = 30) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2, 0] = red
    return image


@pytest.fixture
def folder(tmp_path, data_dir):
    """Five good PNGs (red 0, 100, 200, ...) and two broken files, in name order."""
    for i in range(5):
        write_image(tmp_path / f"img{i}.png", _image(100 * (i % 3), 20 + i, 30))
    shutil.copy(data_dir / "bad" / "truncated.jpg", tmp_path / "img2b_truncated.jpg")
    shutil.copy(data_dir / "bad" / "text_named.jpg", tmp_path / "img4b_text.jpg")
    return tmp_path


@pytest.mark.parametrize("batch_size, num_readers", [(1, 1), (2, 2), (3, 1), (8, 2)])
def test_folder_prediction_skips_and_reports_broken_files(folder, batch_size, num_readers):
    seg = Segmenter(RedBackend(), TAX3, IDENTITY, batch_size=8)
    run = predict_folder(seg, folder, batch_size=batch_size, prefetch=8, num_readers=num_readers, progress=False)
    items = list(run)
    names = [item.path.name for item in items]
    assert names == sorted(p.name for p in folder.iterdir())  # input order kept
    bad = {item.path.name: item.issue for item in items if not item.ok}
    assert sorted(bad) == ["img2b_truncated.jpg", "img4b_text.jpg"]
    assert "truncated" in bad["img2b_truncated.jpg"].reason
    assert bad["img4b_text.jpg"].path == folder / "img4b_text.jpg"
    for item in items:
        if item.ok:
            i = int(item.path.stem[3:])
            assert item.result.source == str(item.path)
            assert item.result.labels.shape == (20 + i, 30)
            assert int(item.result.labels[0, 0]) == i % 3 and int(item.result.labels[0, -1]) == 0
    stats = run.stats
    assert (stats.total, stats.processed, stats.failed) == (7, 5, 2)
    assert stats.images_per_second > 0 and stats.seconds > 0
    assert stats.pixels == sum(30 * (20 + i) for i in range(5))
    data = stats.to_dict()
    assert data["engine"] == "local" and data["failed"] == 2 and len(data["issues"]) == 2
    assert "img/s" in stats.summary()


def test_results_equal_single_image_prediction(folder):
    seg = Segmenter(RedBackend(), TAX3, IDENTITY)
    for item in predict_folder(seg, sorted(folder.glob("img?.png")), batch_size=4, progress=False):
        np.testing.assert_array_equal(item.result.labels, seg.predict(item.path).labels)


def test_a_chunk_shares_backend_calls(folder):
    backend = RedBackend()
    seg = Segmenter(backend, TAX3, IDENTITY, batch_size=8)
    paths = [folder / "img0.png"] * 4 + [folder / "img1.png"] * 2
    list(predict_folder(seg, paths, batch_size=3, prefetch=3, progress=False))
    assert sorted(shape[0] for shape in backend.calls) == [1, 2, 3]  # 3 of img0 | 1 of img0 + 2 of img1


def test_read_ahead_is_bounded(folder, monkeypatch):
    started = []
    real_read = batch_module.read_for_prediction

    def counting_read(path):
        started.append(path)
        return real_read(path)

    monkeypatch.setattr(batch_module, "read_for_prediction", counting_read)
    seg = Segmenter(RedBackend(), TAX3, IDENTITY)
    paths = [folder / "img0.png"] * 40
    run = predict_folder(seg, paths, batch_size=2, prefetch=4, num_readers=2, progress=False)
    for consumed, _ in enumerate(run, start=1):
        assert len(started) <= consumed + 4 + 2
    assert len(started) == 40 and run.stats.processed == 40


def test_prediction_failure_skips_only_that_image(folder):
    seg = Segmenter(RedBackend(fail_width=17), TAX3, IDENTITY)
    write_image(folder / "odd.png", _image(100, 20, 17))
    paths = [folder / "img0.png", folder / "odd.png", folder / "img1.png"]
    items = predict_chunk(seg, paths, [batch_module.read_for_prediction(p) for p in paths])
    assert [item.ok for item in items] == [True, False, True]
    assert "prediction failed" in items[1].issue.reason and "expected" in items[1].issue.reason


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"num_readers": 0}, "num_readers"),
        ({"batch_size": 8, "prefetch": 4}, "prefetch"),
        ({"options": {"thresh": 0.5}}, "unknown prediction options"),
    ],
)
def test_bad_settings(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict_folder(Segmenter(RedBackend(), TAX3, IDENTITY), folder, **kwargs)


def test_empty_input_gives_zero_stats():
    run = predict_folder(Segmenter(RedBackend(), TAX3, IDENTITY), [], progress=False)
    assert list(run) == [] and run.stats.processed == 0 and run.stats.images_per_second == 0.0
    assert isinstance(run.stats, BatchStats)
