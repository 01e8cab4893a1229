"""The local batch engine: many image files through one :class:`Segmenter`, reads overlapped.

Reader threads decode the next images (a bounded read-ahead queue of ``prefetch`` files)
while the model runs on the current batch. Paths are taken in consecutive chunks of
``batch_size``; the readable images of a chunk share backend calls
(:meth:`Segmenter.predict_batch`). A file that cannot be read, or an image the pipeline
rejects, is reported as a :class:`PredictionItem` carrying a
:class:`~pixelwise.data.dataset.DataIssue` and skipped; the run goes on. Items come back
in input order, so the Ray engine (:mod:`pixelwise.runtime.ray_engine`), which uses the
same chunks and :func:`predict_chunk`, produces identical results.

Example:
    >>> import pixelwise
    >>> from pixelwise.runtime.batch import predict_folder
    >>> seg = pixelwise.load("best.pt")  # doctest: +SKIP
    >>> run = predict_folder(seg, "photos/", batch_size=8)  # doctest: +SKIP
    >>> for item in run:  # doctest: +SKIP
    ...     if item.ok:
    ...         item.result.save("out", item.path.stem)
    >>> run.stats.images_per_second  # doctest: +SKIP
    11.4
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.errors import DataError, PixelwiseError
from pixelwise.data.dataset import DataIssue
from pixelwise.data.image_io import list_images, read_image
from pixelwise.runtime.predictor import Segmenter
from pixelwise.runtime.results import SemanticResult

__all__ = [
    "PREDICT_OPTIONS",
    "BatchStats",
    "FolderPrediction",
    "PredictionItem",
    "predict_chunk",
    "predict_folder",
    "read_for_prediction",
    "resolve_paths",
]

#: Keyword options of :meth:`Segmenter.predict` that the engines pass through.
PREDICT_OPTIONS = ("threshold", "min_region", "fill_holes", "smooth")


@dataclass(frozen=True)
class PredictionItem:
    """The outcome for one input file.

    Attributes:
        path: the file.
        result: the segmentation (``result.source`` is the path), or None on failure.
        issue: why the file was skipped, or None on success.
    """

    path: Path
    result: SemanticResult | None = None
    issue: DataIssue | None = None

    @property
    def ok(self) -> bool:
        """True when the file was segmented."""
        return self.result is not None


@dataclass
class BatchStats:
    """Counters and timings of a batch run (updated while it runs).

    Attributes:
        total: number of input files.
        processed: files segmented.
        failed: files skipped (see ``issues``).
        seconds: wall time from the first read to the last result.
        wait_seconds: time the prediction loop spent waiting for decoded images (high
            means reading is the bottleneck: raise ``num_readers``).
        predict_seconds: time spent in preprocessing, backend and post-processing.
        pixels: pixels segmented (sum of H * W).
        issues: one :class:`DataIssue` per skipped file.
        engine: ``"local"`` or ``"ray"``.
        workers: reader threads (local) or model actors (Ray).
        worker_seconds: Ray only: per actor, ``{"busy": wall seconds, "cpu": CPU seconds}``
            spent on chunks (busy > cpu means the actor waited for a CPU).
    """

    total: int
    processed: int = 0
    failed: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0
    predict_seconds: float = 0.0
    pixels: int = 0
    issues: list[DataIssue] = field(default_factory=list)
    engine: str = "local"
    workers: int = 1
    worker_seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        """Segmented images per second of wall time (0 before the first result)."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def megapixels_per_second(self) -> float:
        """Segmented megapixels per second of wall time."""
        return self.pixels / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (issues as dicts)."""
        return {
            "engine": self.engine,
            "workers": self.workers,
            "total": self.total,
            "processed": self.processed,
            "failed": self.failed,
            "seconds": round(self.seconds, 4),
            "wait_seconds": round(self.wait_seconds, 4),
            "predict_seconds": round(self.predict_seconds, 4),
            "images_per_second": round(self.images_per_second, 4),
            "megapixels_per_second": round(self.megapixels_per_second, 4),
            "worker_seconds": {k: {n: round(v, 3) for n, v in d.items()} for k, d in self.worker_seconds.items()},
            "issues": [issue.to_dict() for issue in self.issues],
        }

    def summary(self) -> str:
        """One line for logs: counts and throughput."""
        return (
            f"{self.processed}/{self.total} images in {self.seconds:.1f} s "
            f"({self.images_per_second:.2f} img/s, {self.engine} engine, {self.workers} workers), "
            f"{self.failed} skipped"
        )


def resolve_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """A folder (searched recursively for images) or an iterable of files, as a list of paths."""
    if isinstance(paths, (str, Path)):
        path = Path(paths)
        return list_images(path) if path.is_dir() else [path]
    return [Path(p) for p in paths]


def read_for_prediction(path: Path) -> np.ndarray | DataIssue:
    """Decode one file as ``(H, W, 3) uint8`` RGB, or describe why it cannot be used."""
    try:
        return read_image(path)
    except DataError as exc:
        return DataIssue.from_error(exc, image_id=path.stem)
    except OSError as exc:  # e.g. a permission error that slipped past the reader
        return DataIssue(path, f"cannot read file ({type(exc).__name__}: {exc})", "error", path.stem)


def _clean_options(options: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = set(options) - set(PREDICT_OPTIONS)
    if unknown:
        raise ValueError(f"unknown prediction options {sorted(unknown)}; valid: {', '.join(PREDICT_OPTIONS)}")
    return options


def predict_chunk(
    segmenter: Segmenter,
    paths: Sequence[Path],
    images: Sequence[np.ndarray | DataIssue],
    options: dict[str, Any] | None = None,
) -> list[PredictionItem]:
    """Segment one chunk of already decoded images in a single :meth:`Segmenter.predict_batch`.

    Both engines call this with the same chunks, which keeps their results identical
    (the backend sees the same batches). If the pipeline rejects the chunk (a
    :class:`~pixelwise.core.errors.PixelwiseError`), each image is retried alone so only
    the offending one is skipped.

    Args:
        segmenter: the pipeline.
        paths: the chunk's files.
        images: per file, the decoded ``(H, W, 3) uint8`` image or the read issue.
        options: :data:`PREDICT_OPTIONS` (threshold, min_region, fill_holes, smooth).

    Returns:
        One :class:`PredictionItem` per path, in order.
    """
    options = _clean_options(options)
    items: list[PredictionItem | None] = [None] * len(paths)
    good = []
    for i, (path, image) in enumerate(zip(paths, images)):
        if isinstance(image, DataIssue):
            items[i] = PredictionItem(Path(path), None, image)
        else:
            good.append(i)
    results: list[SemanticResult | DataIssue]
    try:
        results = list(segmenter.predict_batch([images[i] for i in good], keep_probabilities=False, **options))
    except PixelwiseError:
        results = []
        for i in good:
            try:
                results.append(segmenter.predict(images[i], keep_probabilities=False, **options))
            except PixelwiseError as exc:
                reason = exc.reason if isinstance(exc, DataError) else str(exc)
                results.append(DataIssue(Path(paths[i]), f"prediction failed: {reason}", "error", Path(paths[i]).stem))
    for i, outcome in zip(good, results):
        path = Path(paths[i])
        if isinstance(outcome, DataIssue):
            items[i] = PredictionItem(path, None, outcome)
        else:
            outcome.source = str(path)
            items[i] = PredictionItem(path, outcome, None)
    return [item for item in items if item is not None]


class FolderPrediction:
    """An iterator of :class:`PredictionItem` (input order) with live :class:`BatchStats`.

    Created by :func:`predict_folder`; iterate it once. ``stats`` is final when the
    iteration ends.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        paths: list[Path],
        *,
        batch_size: int,
        prefetch: int,
        num_readers: int,
        options: dict[str, Any],
        progress: bool,
    ) -> None:
        self.segmenter = segmenter
        self.paths = paths
        self.batch_size = batch_size
        self.prefetch = prefetch
        self.num_readers = num_readers
        self.options = options
        self.progress = progress
        self.stats = BatchStats(total=len(paths), engine="local", workers=num_readers)
        self._iterator: Iterator[PredictionItem] | None = None

    def __iter__(self) -> Iterator[PredictionItem]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def __next__(self) -> PredictionItem:
        return next(iter(self))

    def __len__(self) -> int:
        return len(self.paths)

    def _run(self) -> Iterator[PredictionItem]:
        from tqdm import tqdm

        stats = self.stats
        start = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=self.num_readers, thread_name_prefix="pixelwise-read")
        queue: deque[tuple[Path, Future[np.ndarray | DataIssue]]] = deque()
        upcoming = iter(self.paths)

        def refill() -> None:
            while len(queue) < self.prefetch:
                path = next(upcoming, None)
                if path is None:
                    return
                queue.append((path, pool.submit(read_for_prediction, path)))

        bar = tqdm(total=len(self.paths), desc="predicting", unit="img", disable=not self.progress)
        try:
            refill()
            while queue:
                chunk_paths: list[Path] = []
                chunk_images: list[np.ndarray | DataIssue] = []
                while queue and len(chunk_paths) < self.batch_size:
                    path, future = queue.popleft()
                    waited = time.perf_counter()
                    chunk_images.append(future.result())
                    stats.wait_seconds += time.perf_counter() - waited
                    chunk_paths.append(path)
                    refill()
                began = time.perf_counter()
                items = predict_chunk(self.segmenter, chunk_paths, chunk_images, self.options)
                stats.predict_seconds += time.perf_counter() - began
                for item in items:
                    _count(stats, item)
                    stats.seconds = time.perf_counter() - start
                    bar.update(1)
                    bar.set_postfix(img_s=f"{stats.images_per_second:.2f}", refresh=False)
                    yield item
                del chunk_images
        finally:
            stats.seconds = time.perf_counter() - start
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()


def _count(stats: BatchStats, item: PredictionItem) -> None:
    if item.result is not None:
        stats.processed += 1
        stats.pixels += item.result.height * item.result.width
    else:
        stats.failed += 1
        if item.issue is not None:
            stats.issues.append(item.issue)


def predict_folder(
    segmenter: Segmenter,
    paths: str | Path | Iterable[str | Path],
    batch_size: int = 8,
    prefetch: int = 16,
    num_readers: int = 2,
    *,
    options: dict[str, Any] | None = None,
    progress: bool = True,
) -> FolderPrediction:
    """Segment many files with a bounded read-ahead queue; bad files are reported, not fatal.

    Args:
        segmenter: the pipeline (any backend).
        paths: a folder (searched recursively) or an iterable of image files.
        batch_size: consecutive files per chunk; a chunk's readable images share
            backend calls.
        prefetch: at most this many files are decoded ahead of the model (bounds memory
            to about ``prefetch`` decoded images plus one batch).
        num_readers: decoding threads (1-2 is enough on small machines; decoders release
            the GIL).
        options: :data:`PREDICT_OPTIONS` for :meth:`Segmenter.predict`.
        progress: show a tqdm bar with the running images/s.

    Returns:
        A :class:`FolderPrediction`: iterate it for :class:`PredictionItem` in input
        order; its ``stats`` (:class:`BatchStats`) hold counts, issues and images/s.

    Raises:
        ValueError: a non-positive ``batch_size``, ``prefetch`` or ``num_readers``, or an
            unknown option.
    """
    if batch_size < 1 or num_readers < 1:
        raise ValueError(f"batch_size and num_readers must be >= 1, got {batch_size} and {num_readers}")
    if prefetch < batch_size:
        raise ValueError(f"prefetch ({prefetch}) must be >= batch_size ({batch_size}) so a batch can fill")
    return FolderPrediction(
        segmenter,
        resolve_paths(paths),
        batch_size=int(batch_size),
        prefetch=int(prefetch),
        num_readers=int(num_readers),
        options=_clean_options(options),
        progress=progress,
    )
