"""The Ray engine: the local batch prediction as a Ray Data pipeline, one model per actor.

``ray.data.from_items(chunks)`` -> ``map_batches(SegmenterActor, compute=ActorPoolStrategy(size=N))``:
each actor loads its own :class:`~pixelwise.runtime.Segmenter` from the model file
(:func:`pixelwise.api.load`: ``.pt`` on PyTorch, ``.onnx`` on ONNX Runtime, ``.tflite``
on LiteRT, or a built-in name),
reads its chunk of files and runs :func:`~pixelwise.runtime.batch.predict_chunk`, exactly
what the local engine runs on the same chunk. Results come back to the driver in input
order as :class:`~pixelwise.runtime.batch.PredictionItem` (regions already computed on
the actor), so the driver writes byte-identical outputs with
:meth:`SemanticResult.save`.

Ray is optional (``pip install pixelwise[ray]``) and imported only inside functions.
Without ``address`` a local Ray is started (``num_cpus`` CPUs, no dashboard, usage
statistics off) and shut down when the iteration ends; with ``address`` (``"auto"`` or
``"ray://host:10001"``) an existing cluster is used and left running. Workers read the
image files themselves: on a cluster, paths must be visible to every node (shared
filesystem).

Example:
    >>> from pixelwise.runtime.ray_engine import predict_ray
    >>> run = predict_ray("best.pt", ["a.png", "b.png"], num_workers=2)  # doctest: +SKIP
    >>> for item in run:  # doctest: +SKIP
    ...     if item.ok:
    ...         item.result.save("out", item.path.stem)
    >>> run.stats.images_per_second  # doctest: +SKIP
    7.9
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.errors import PixelwiseError
from pixelwise.runtime.batch import (
    BatchStats,
    PredictionItem,
    _clean_options,
    _count,
    predict_chunk,
    read_for_prediction,
    resolve_paths,
)

__all__ = ["RayConnectionError", "RayNotInstalledError", "RayPrediction", "SegmenterActor", "init_ray", "predict_ray"]

_INSTALL_HINT = "pip install 'pixelwise[ray]'  (or: pip install 'ray[data]>=2.40')"


class RayNotInstalledError(PixelwiseError, ImportError):
    """The Ray engine was asked for but Ray (with Ray Data) is not installed."""


class RayConnectionError(PixelwiseError, ConnectionError):
    """No Ray cluster answers at the given address."""


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is a separate extra of ray
    except ImportError as exc:
        raise RayNotInstalledError(
            f"the Ray engine needs Ray Data, which is not installed ({exc}); install it with: {_INSTALL_HINT}"
        ) from exc
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any) -> bool:
    """Connect to Ray, starting a local instance when there is none.

    A local instance (``address=None``) gets ``num_cpus`` CPUs (None: all), no
    dashboard and usage statistics off (``RAY_USAGE_STATS_ENABLED=0`` is set unless
    the caller set it), so nothing is sent over the network.

    Args:
        address: None for a local Ray, or a cluster address (``"auto"``,
            ``"ray://head:10001"``).
        num_cpus: CPUs of a local instance (ignored with ``address``).
        **kwargs: more :func:`ray.init` arguments (e.g. ``object_store_memory``).

    Returns:
        True if this call started or connected Ray (the caller should shut it down),
        False if Ray was already initialised.

    Raises:
        RayNotInstalledError: Ray is missing (the message has the install command).
        RayConnectionError: nothing answers at ``address``.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        options["num_cpus"] = num_cpus
    else:
        options["address"] = address
    options.update(kwargs)
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise RayConnectionError(
            f"cannot connect to a Ray cluster at {address!r} ({exc}); start one with `ray start --head` "
            "on the head node, or leave out the address to run a local Ray"
        ) from exc
    return True


class SegmenterActor:
    """A Ray Data callable class: holds one Segmenter, segments chunks of files.

    Args:
        model: model file for :func:`pixelwise.api.load`.
        num_threads: backend threads of this actor (1 lets N actors use N cores).
        options: :data:`~pixelwise.runtime.batch.PREDICT_OPTIONS`.
        load_options: more :func:`pixelwise.api.load` keyword arguments.
        compute_regions: compute each result's regions (polygons, boxes: the costly part
            of the measurements) on the actor, so the driver only writes files.
    """

    def __init__(
        self,
        model: str,
        num_threads: int | None = 1,
        options: dict[str, Any] | None = None,
        load_options: dict[str, Any] | None = None,
        compute_regions: bool = True,
    ) -> None:
        import pixelwise.api

        if num_threads is not None:
            _limit_threads(num_threads)
        self.segmenter = pixelwise.api.load(model, num_threads=num_threads, **(load_options or {}))
        self.options = dict(options or {})
        self.compute_regions = compute_regions
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"index": (n,), "paths": (n,) JSON lists}`` -> ``{"index", "payload", "worker", "busy", "cpu"}``.

        ``payload`` is the pickled list of :class:`PredictionItem`; ``worker`` the actor's
        ``host:pid``, ``busy`` / ``cpu`` the wall and CPU seconds it spent on the chunk.
        """
        payloads, busy, cpu = [], [], []
        for paths_json in batch["paths"]:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            paths = [Path(p) for p in json.loads(str(paths_json))]
            images = [read_for_prediction(p) for p in paths]
            items = predict_chunk(self.segmenter, paths, images, self.options)
            for item in items:
                if item.result is not None and self.compute_regions:
                    _ = item.result.regions  # computed here, cached in the pickle
            payloads.append(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))
            busy.append(time.perf_counter() - wall0)
            cpu.append(time.process_time() - cpu0)
        return {
            "index": np.asarray(batch["index"]),
            "payload": np.array(payloads, dtype=object),
            "worker": np.array([self.worker_id] * len(payloads)),
            "busy": np.asarray(busy, np.float64),
            "cpu": np.asarray(cpu, np.float64),
        }


def _limit_threads(count: int) -> None:
    """Cap the math libraries' threads inside an actor process."""
    try:
        import cv2

        cv2.setNumThreads(count)
    except Exception:  # noqa: BLE001 - optional tuning only
        pass
    try:
        import torch

        torch.set_num_threads(count)
    except Exception:  # noqa: BLE001 - a backend without torch
        pass


class RayPrediction:
    """Iterator of :class:`PredictionItem` (input order) from the Ray pipeline, with :class:`BatchStats`.

    Created by :func:`predict_ray`; iterate it once.
    """

    def __init__(self, model: str, paths: list[Path], *, settings: dict[str, Any]) -> None:
        self.model = model
        self.paths = paths
        self._remote_paths = [p.resolve() for p in paths]  # what workers open
        self.settings = settings
        self.stats = BatchStats(total=len(paths), engine="ray", workers=int(settings["num_workers"]))
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

        s = self.settings
        ray = _import_ray()
        started = init_ray(s["address"], num_cpus=s["num_cpus"], **s["init_options"])
        bar = tqdm(total=len(self.paths), desc="predicting (ray)", unit="img", disable=not s["progress"])
        stats = self.stats
        context = ray.data.DataContext.get_current()
        ray_bars = context.enable_progress_bars
        context.enable_progress_bars = False  # the driver shows its own bar
        start = time.perf_counter()
        try:
            size = s["batch_size"]
            chunks = [
                {"index": i, "paths": json.dumps([str(p) for p in self._remote_paths[first : first + size]])}
                for i, first in enumerate(range(0, len(self.paths), size))
            ]
            if not chunks:
                return
            dataset = ray.data.from_items(chunks, override_num_blocks=len(chunks))
            dataset = dataset.map_batches(
                SegmenterActor,
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=s["num_workers"]),
                num_cpus=s["cpus_per_worker"],
                fn_constructor_kwargs={
                    "model": self.model,
                    "num_threads": s["threads_per_worker"],
                    "options": s["options"],
                    "load_options": s["load_options"],
                    "compute_regions": s["compute_regions"],
                },
            )
            pending: dict[int, list[PredictionItem]] = {}
            next_index = 0
            for row in dataset.iter_rows():
                pending[int(row["index"])] = pickle.loads(row["payload"])
                worker = stats.worker_seconds.setdefault(str(row["worker"]), {"busy": 0.0, "cpu": 0.0})
                worker["busy"] += float(row["busy"])
                worker["cpu"] += float(row["cpu"])
                while next_index in pending:
                    originals = self.paths[next_index * size : (next_index + 1) * size]
                    for remote, original in zip(pending.pop(next_index), originals):
                        item = _as_given(remote, original)
                        _count(stats, item)
                        stats.seconds = time.perf_counter() - start
                        bar.update(1)
                        bar.set_postfix(img_s=f"{stats.images_per_second:.2f}", refresh=False)
                        yield item
                    next_index += 1
        finally:
            stats.seconds = time.perf_counter() - start
            bar.close()
            context.enable_progress_bars = ray_bars
            if started and s["shutdown"]:
                ray.shutdown()


def _as_given(item: PredictionItem, path: Path) -> PredictionItem:
    """The item with the path as the caller gave it (workers saw the absolute path)."""
    if item.result is not None:
        item.result.source = str(path)
    issue = replace(item.issue, path=path) if item.issue is not None else None
    return PredictionItem(path, item.result, issue)


def predict_ray(
    model: str | Path,
    paths: str | Path | Iterable[str | Path],
    *,
    num_workers: int = 2,
    batch_size: int = 4,
    threads_per_worker: int | None = 1,
    cpus_per_worker: float = 1.0,
    address: str | None = None,
    num_cpus: int | None = None,
    options: dict[str, Any] | None = None,
    load_options: dict[str, Any] | None = None,
    init_options: dict[str, Any] | None = None,
    compute_regions: bool = True,
    shutdown: bool = True,
    progress: bool = True,
) -> RayPrediction:
    """Segment many files on Ray: ``num_workers`` actors, each with its own model.

    Args:
        model: a model file (``.pt``, ``.onnx`` with its sidecar, ``.tflite``) or a
            built-in name (``"person"``): anything :func:`pixelwise.api.load` accepts.
            Every worker must be able to open the file (same path on a cluster).
        paths: a folder (searched recursively) or an iterable of image files.
        num_workers: model actors (the actor pool size).
        batch_size: consecutive files per chunk (one actor call, shared backend batches),
            as in the local engine.
        threads_per_worker: backend / OpenCV threads per actor (1: N actors scale over
            N cores; None keeps the library defaults).
        cpus_per_worker: CPUs Ray reserves per actor.
        address: None starts a local Ray; else a cluster address (``"auto"``,
            ``"ray://head:10001"``).
        num_cpus: CPUs of a local Ray (None: ``num_workers * cpus_per_worker``, at least 1).
        options: :data:`~pixelwise.runtime.batch.PREDICT_OPTIONS`.
        load_options: more :func:`pixelwise.api.load` keyword arguments (e.g. ``device``).
        init_options: more :func:`ray.init` arguments for a Ray started here.
        compute_regions: compute regions and measurements on the actors (what
            ``pixelwise predict`` writes); False when only label maps are needed.
        shutdown: shut down a Ray that this call started when the iteration ends.
        progress: tqdm bar on the driver.

    Returns:
        A :class:`RayPrediction`: iterate for :class:`~pixelwise.runtime.batch.PredictionItem`
        in input order (bad files carry a ``DataIssue``); ``stats`` as in the local engine.

    Raises:
        RayNotInstalledError: Ray is missing (raised here, before any work).
        ValueError: bad counts or unknown options.
        FileNotFoundError: the model is neither an existing file nor a built-in name.
    """
    _import_ray()
    if num_workers < 1 or batch_size < 1:
        raise ValueError(f"num_workers and batch_size must be >= 1, got {num_workers} and {batch_size}")
    if threads_per_worker is not None and threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be >= 1 or None, got {threads_per_worker}")
    from pixelwise.runtime.builtin import is_builtin

    model_path = Path(model)
    if model_path.exists():
        model_ref = str(model_path.resolve())
    elif is_builtin(str(model)):
        model_ref = str(model)  # a built-in model name: each worker loads it from the package
    else:
        raise FileNotFoundError(f"{model_path}: model file not found (every Ray worker loads it from this path)")
    if num_cpus is None:
        num_cpus = max(1, int(np.ceil(num_workers * cpus_per_worker)))
    settings = {
        "num_workers": int(num_workers),
        "batch_size": int(batch_size),
        "threads_per_worker": threads_per_worker,
        "cpus_per_worker": float(cpus_per_worker),
        "address": address,
        "num_cpus": num_cpus,
        "options": _clean_options(options),
        "load_options": dict(load_options or {}),
        "init_options": dict(init_options or {}),
        "compute_regions": bool(compute_regions),
        "shutdown": shutdown,
        "progress": progress,
    }
    return RayPrediction(model_ref, resolve_paths(paths), settings=settings)
