"""PyTorch access to a :class:`~pixelwise.data.dataset.SegmentationDataset` for semantic training.

The only module of ``pixelwise.data`` that imports torch. Per sample, in this order:

1. read the image (:func:`~pixelwise.data.image_io.read_image`, ``(H, W, 3) uint8`` RGB) and
   its semantic labels (``sample.annotation()``; derived from instances or panoptic with
   :func:`~pixelwise.core.convert.complete_annotation` when the format has no semantic view);
2. preprocessing geometry and denoising, exactly as inference does (a
   :class:`SamplePreprocessor`; :class:`pixelwise.training.pipeline.SemanticPreprocessor`
   applies a saved ``PreprocessConfig``), keeping the image ``uint8``;
3. augmentation (optional, a :func:`~pixelwise.transforms.augment.build_augmentation`
   callable), seeded per sample and epoch by :class:`SeededSampler` so every run, resumed
   or not, with or without worker processes, sees the same data;
4. mean/std normalisation to ``(3, h, w) float32``.

With ``cache=True`` the result of steps 1-2 is kept in RAM: ``h * w * 3`` bytes per image
plus ``h * w`` (uint8 labels, fewer than 255 classes) or ``2 * h * w`` bytes (uint16), e.g.
64 KiB per 128x128 sample, 256 KiB at 256x256, 1 MiB at 512x512 (10,000 images at 512x512
take about 10 GiB: use ``cache=False`` there). Worker processes started by ``fork`` share the
cache copy-on-write.

Broken samples (unreadable image, broken or missing labels, labels of another size) are
recorded in :attr:`SemanticTorchDataset.issues` as :class:`~pixelwise.data.dataset.DataIssue`
and left out when the dataset is built, so an epoch never stops on one bad file.

Example:
    >>> from pixelwise.training.pipeline import SemanticPreprocessor  # doctest: +SKIP
    >>> from pixelwise.transforms.preprocess import PreprocessConfig  # doctest: +SKIP
    >>> prep = SemanticPreprocessor(PreprocessConfig(input_size=(128, 128)))  # doctest: +SKIP
    >>> torch_ds = SemanticTorchDataset(dataset, prep)  # doctest: +SKIP
    >>> loader = build_loader(torch_ds, batch_size=8, shuffle=True, seed=0)  # doctest: +SKIP
    >>> images, targets = next(iter(loader))  # doctest: +SKIP
    >>> images.shape, targets.dtype  # doctest: +SKIP
    (torch.Size([8, 3, 128, 128]), torch.int64)
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pixelwise.core.convert import complete_annotation
from pixelwise.core.errors import DataError, ShapeError
from pixelwise.data.dataset import DataIssue, Sample, SegmentationDataset
from pixelwise.data.image_io import image_size, read_image

__all__ = [
    "PadCollate",
    "SamplePreprocessor",
    "SeededSampler",
    "SemanticTorchDataset",
    "build_loader",
    "default_num_workers",
    "normalize_image",
    "sample_seed",
]

#: Augmentation callable: ``aug(image (H, W, 3) uint8, semantic (H, W) int, seed=int)`` returning
#: an object with ``.image`` ``(3, h, w) float32`` in [0, 1] and ``.semantic`` ``(h, w) int64``.
AugmentFn = Callable[..., Any]
_MAX_SEED = 2**31 - 1


# ----------------------------------------------------------------------- per-sample steps
class SamplePreprocessor(Protocol):
    """The preprocessing a :class:`SemanticTorchDataset` applies (geometry, then normalisation).

    The data layer does not import :mod:`pixelwise.transforms` (a higher layer); the
    implementation for a saved ``PreprocessConfig`` is
    :class:`pixelwise.training.pipeline.SemanticPreprocessor`.
    """

    def place(self, image: np.ndarray, labels: np.ndarray, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Denoise and resize/pad ``(H, W, 3) uint8`` and ``(H, W)`` labels to the network input."""
        ...

    def normalize(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(h, w, 3) uint8`` or ``(3, h, w)`` float in [0, 1] -> ``(3, h, w) float32`` normalised."""
        ...


def normalize_image(image: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalise an image with a per-channel mean and std (both on the ``[0, 1]`` scale).

    Args:
        image: ``(H, W, 3) uint8`` array (values 0..255), or a ``(3, H, W)`` float tensor
            in ``[0, 1]`` (what augmentation returns).
        mean: 3 RGB values.
        std: 3 RGB values (> 0).

    Returns:
        ``(3, H, W) float32`` contiguous tensor ``(x - mean) / std``.

    Raises:
        ShapeError: not ``(H, W, 3) uint8`` nor ``(3, H, W)``.
    """
    # NumPy, not torch: these per-sample element-wise ops are too small to gain from
    # intra-op threads, and torch's OpenMP threads stall badly when the cores are shared.
    mean_a = np.asarray(tuple(mean), dtype=np.float32)
    std_a = np.asarray(tuple(std), dtype=np.float32)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        hwc = image.astype(np.float32)
        hwc -= mean_a * np.float32(255.0)
        hwc /= std_a * np.float32(255.0)
        return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
    if image.ndim != 3 or image.shape[0] != 3:
        raise ShapeError(f"image tensor must be (3, H, W), got {tuple(image.shape)}")
    chw = image.detach().cpu().numpy().astype(np.float32, copy=True)
    chw -= mean_a[:, None, None]
    chw /= std_a[:, None, None]
    return torch.from_numpy(chw)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in ``epoch`` of a run seeded ``seed``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(1)
    return int(state[0]) & _MAX_SEED


def _label_dtype(num_classes: int, ignore_index: int) -> np.dtype:
    top = max(num_classes - 1, ignore_index)
    if top < 256:
        return np.dtype(np.uint8)
    if top < 65536:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


# ---------------------------------------------------------------------------- dataset
class SemanticTorchDataset(Dataset):
    """Semantic-segmentation samples as ``(image, target)`` tensors.

    Args:
        dataset: any format's dataset (labels may be semantic, instances or panoptic).
        preprocess: geometry, denoising and normalisation, e.g.
            ``SemanticPreprocessor(PreprocessConfig(...))`` from
            :mod:`pixelwise.training.pipeline` (the config is saved in the checkpoint).
        augmentation: optional callable ``aug(image, semantic, seed=...)`` (see
            :func:`~pixelwise.transforms.augment.build_augmentation`); applied to the
            preprocessed ``uint8`` image before normalisation.
        cache: keep the preprocessed ``uint8`` images and labels in RAM (see the module
            docstring for the memory this takes). Without cache, images are decoded each
            epoch and only the headers and labels are checked at construction.
        ignore_index: label of void pixels in the targets (default: the taxonomy's).
        num_classes: K; label values outside ``[0, K)`` become ``ignore_index`` and are
            reported (default: ``taxonomy.num_classes``).
        progress: show a tqdm bar while reading (only for more than 50 samples).

    Attributes:
        samples: the usable samples, in dataset order.
        issues: samples left out (or with labels changed), one :class:`DataIssue` each.

    Items: ``ds[i]`` or ``ds[(i, seed)]`` gives ``(image (3, h, w) float32, target (h, w)
    int64)``; the seed drives the augmentation (no seed: unseeded random draws).

    Raises:
        DataError: no sample of ``dataset`` is usable (the message gives the first issues).
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        preprocess: SamplePreprocessor,
        augmentation: AugmentFn | None = None,
        cache: bool = True,
        ignore_index: int | None = None,
        num_classes: int | None = None,
        progress: bool = False,
    ) -> None:
        self.taxonomy = dataset.taxonomy
        self.preprocess = preprocess
        self.augmentation = augmentation
        self.cache = bool(cache)
        self.ignore_index = int(dataset.taxonomy.ignore_index if ignore_index is None else ignore_index)
        self.num_classes = int(num_classes or dataset.taxonomy.num_classes)
        self.issues: list[DataIssue] = []
        self.samples: list[Sample] = []
        self._images: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._label_dtype = _label_dtype(self.num_classes, self.ignore_index)
        self._reported: set[int] = set()

        iterator: Any = dataset.samples
        if progress and len(dataset.samples) > 50:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc="reading", unit="img")
        for sample in iterator:
            try:
                if self.cache:
                    image, labels = self._load(sample)
                    self._images.append(image)
                    self._labels.append(labels)
                else:
                    self._check(sample)
            except DataError as exc:
                self.issues.append(DataIssue.from_error(exc, sample.image_id))
                continue
            except (ValueError, OSError, cv2.error) as exc:  # ShapeError, odd files, cv2 failures
                self.issues.append(DataIssue(sample.image_path, f"cannot be used: {exc}", "error", sample.image_id))
                continue
            self.samples.append(sample)
        if not self.samples:
            first = "; ".join(str(i) for i in self.issues[:3]) or "the dataset is empty"
            raise DataError(dataset.root, f"no usable sample for training ({first})", "check the dataset with `pixelwise data validate`")

    # -------------------------------------------------------------- reading
    def _semantic(self, sample: Sample) -> np.ndarray:
        """``(H, W)`` labels in the training convention (void = ``self.ignore_index``)."""
        annotation = sample.annotation()
        if annotation.semantic is None:
            annotation = complete_annotation(annotation, self.taxonomy)
        semantic = annotation.semantic
        if semantic is None:
            raise DataError(sample.image_path, "has no labels (no semantic, instance or panoptic annotation)", "label it or remove it from the training set")
        labels = np.asarray(semantic.labels)
        void = labels == semantic.ignore_index
        unknown = ~void & ((labels < 0) | (labels >= self.num_classes))
        out = labels.astype(self._label_dtype, copy=True) if not unknown.any() else np.where(unknown, 0, labels).astype(self._label_dtype)
        out[void | unknown] = self.ignore_index
        if unknown.any():
            values = sorted({int(v) for v in np.unique(labels[unknown])})[:5]
            self.issues.append(
                DataIssue(
                    sample.image_path,
                    f"label values {values} are not classes of the taxonomy (0..{self.num_classes - 1}); ignored in training",
                    "warning",
                    sample.image_id,
                    "fix the labels or the taxonomy",
                )
            )
        return out

    def _load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Read, denoise and place one sample: ``(h, w, 3) uint8`` image and ``(h, w)`` labels."""
        image = read_image(sample.image_path)
        labels = self._semantic(sample)
        if labels.shape != image.shape[:2]:
            raise DataError(
                sample.image_path,
                f"labels are {labels.shape[0]}x{labels.shape[1]} (HxW) but the image is {image.shape[0]}x{image.shape[1]}",
                "re-export the mask at the image's size (EXIF rotation?)",
            )
        placed, placed_labels = self.preprocess.place(image, labels, self.ignore_index)
        return placed, np.ascontiguousarray(placed_labels)

    def _check(self, sample: Sample) -> None:
        """Cheap validation when not caching: image header and labels."""
        height, width = image_size(sample.image_path)
        labels = self._semantic(sample)
        if labels.shape != (height, width):
            raise DataError(
                sample.image_path,
                f"labels are {labels.shape[0]}x{labels.shape[1]} (HxW) but the image is {height}x{width}",
                "re-export the mask at the image's size",
            )

    # -------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.samples)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed but not augmented nor normalised: ``(h, w, 3) uint8`` and ``(h, w)`` labels."""
        if self.cache:
            return self._images[index], self._labels[index]
        return self._load(self.samples[index])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), None)
        try:
            image, labels = self.raw(index)
        except (DataError, ValueError, OSError, cv2.error) as exc:
            # Only reachable with cache=False (file changed or undecodable pixels after the
            # header check): warn once and use the next sample rather than stop the epoch.
            if index not in self._reported:
                self._reported.add(index)
                warnings.warn(f"skipping {self.samples[index].image_path}: {exc}", RuntimeWarning, stacklevel=2)
            if len(self.samples) == 1:
                raise
            return self[((index + 1) % len(self.samples), seed if seed is not None else 0)]
        if self.augmentation is not None:
            out = self.augmentation(image, labels.astype(np.int64), seed=seed)
            return self.preprocess.normalize(out.image), out.semantic.to(torch.int64)
        return self.preprocess.normalize(image), torch.from_numpy(labels.astype(np.int64))

    # -------------------------------------------------------------- statistics
    def pixel_counts(self) -> np.ndarray:
        """``(K,) int64`` labelled pixels per class over all samples, at network resolution."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for index in range(len(self)):
            labels = self._labels[index] if self.cache else self.raw(index)[1]
            values = labels.reshape(-1)
            values = values[values != self.ignore_index].astype(np.int64)
            counts += np.bincount(values, minlength=self.num_classes)[: self.num_classes]
        return counts

    def memory_bytes(self) -> int:
        """RAM held by the cache, in bytes (0 without cache)."""
        return int(sum(a.nbytes for a in self._images) + sum(a.nbytes for a in self._labels))


# ---------------------------------------------------------------------------- sampling
class SeededSampler(Sampler):
    """Seeded, epoch-aware, optionally sharded sampler that also hands out augmentation seeds.

    Each epoch's order is a permutation drawn from ``torch.Generator().manual_seed(seed +
    epoch)`` (the recipe of :class:`torch.utils.data.DistributedSampler`, which it replaces
    because it also attaches a per-sample seed). With ``world_size > 1`` the order is padded
    by repeating its start to a multiple of ``world_size`` (when ``pad``) and rank ``r`` takes
    positions ``r, r + world_size, ...``, so the union of one step's shards is the same set
    of samples as a single process with the global batch.

    Yields ``(index, sample_seed(seed, epoch, index))`` tuples (or plain indices with
    ``with_seeds=False``), read by :meth:`SemanticTorchDataset.__getitem__`.

    Args:
        length: number of samples.
        shuffle: permute each epoch (False: dataset order).
        seed: run seed.
        rank: this process's rank.
        world_size: number of processes.
        pad: make every rank's shard the same length (needed for training under DDP).
        with_seeds: attach augmentation seeds.
    """

    def __init__(
        self,
        length: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        with_seeds: bool = True,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.length = int(length)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.pad = pad
        self.with_seeds = with_seeds
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and seeds :meth:`__iter__` produces."""
        self.epoch = int(epoch)

    def indices(self) -> list[int]:
        """This rank's sample indices for the current epoch, in order."""
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        if self.world_size > 1:
            if self.pad and order:
                total = math.ceil(len(order) / self.world_size) * self.world_size
                order = (order * math.ceil(total / len(order)))[:total]
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[Any]:
        for index in self.indices():
            yield (index, sample_seed(self.seed, self.epoch, index)) if self.with_seeds else index

    def __len__(self) -> int:
        if self.world_size == 1:
            return self.length
        if self.pad:
            return math.ceil(self.length / self.world_size)
        return len(range(self.rank, self.length, self.world_size))


class PadCollate:
    """Stack ``(image, target)`` pairs, padding different sizes to a common one.

    Same-size batches are stacked as they are. Otherwise every pair is padded at the bottom
    and right to the largest height and width of the batch, rounded up to ``divisor``:
    images with 0 (the normalised mean), targets with ``ignore_index`` (no loss, no metric).

    Args:
        ignore_index: target fill.
        divisor: padded sides are multiples of it (the model's ``required_divisor``).
    """

    def __init__(self, ignore_index: int = 255, divisor: int = 1) -> None:
        self.ignore_index = int(ignore_index)
        self.divisor = max(int(divisor), 1)

    def __call__(self, batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = [b[0] for b in batch]
        targets = [b[1] for b in batch]
        shapes = {tuple(t.shape) for t in targets}
        if len(shapes) == 1:  # np.stack: a plain copy, no torch intra-op threads (see normalize_image)
            return (
                torch.from_numpy(np.stack([i.numpy() for i in images])),
                torch.from_numpy(np.stack([t.numpy() for t in targets])),
            )
        d = self.divisor
        height = -(-max(t.shape[0] for t in targets) // d) * d
        width = -(-max(t.shape[1] for t in targets) // d) * d
        out_images = images[0].new_zeros((len(batch), images[0].shape[0], height, width))
        out_targets = targets[0].new_full((len(batch), height, width), self.ignore_index)
        for i, (image, target) in enumerate(zip(images, targets)):
            out_images[i, :, : image.shape[1], : image.shape[2]] = image
            out_targets[i, : target.shape[0], : target.shape[1]] = target
        return out_images, out_targets


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` in a loader worker from torch's per-worker seed.

    (No ``cv2.setNumThreads`` here: in a forked worker it can wait forever on the
    parent's OpenCV thread pool.)
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def default_num_workers(dataset: SemanticTorchDataset, cpu_count: int | None = None) -> int:
    """Loader worker processes chosen for a dataset on this machine.

    Measured with ``benchmarks/loader_speed.py`` (128x128 shapes, batch 8, 2 shared cores):
    from the RAM cache without augmentation the main process delivers 430-960 images/s
    (a worker only adds inter-process copies: 165-525 images/s), far above the 10-30
    images/s of a training step, so no worker. Augmentation (torchvision ops) and PNG
    decoding are better done in one worker process: there torch runs single-threaded
    (100-170 images/s), while in the main process the same ops on 2 OpenMP threads fell to
    3-5 images/s whenever other jobs shared the cores.

    Args:
        dataset: the dataset to load.
        cpu_count: cores available (default: ``os.cpu_count()``).

    Returns:
        0 for cached data without augmentation, else 1 (2 cores) up to 4 (8+ cores).
    """
    import os

    if dataset.cache and dataset.augmentation is None:
        return 0
    cores = cpu_count or os.cpu_count() or 1
    return max(1, min(4, cores // 2))


def build_loader(
    dataset: SemanticTorchDataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool | None = None,
    pin_memory: bool = False,
    divisor: int = 32,
) -> DataLoader:
    """A :class:`DataLoader` with seeded order, seeded augmentation and optional sharding.

    Call ``loader.sampler.set_epoch(epoch)`` before each epoch (the trainer does); the
    order and the augmentation of epoch ``e`` then depend on ``(seed, e)`` only, not on
    the number of workers or on an interruption and resume.

    Args:
        dataset: the samples.
        batch_size: samples per batch in this process.
        shuffle: new order every epoch (training) or dataset order (validation).
        seed: run seed.
        num_workers: worker processes; None picks :func:`default_num_workers`. Workers are
            persistent (started once per run) and each seeds NumPy and ``random`` from torch.
        rank: this process's rank (distributed training).
        world_size: number of processes; > 1 shards the data like ``DistributedSampler``
            (training shards are padded to equal length, validation shards are not).
        drop_last: drop a last incomplete batch; default True when shuffling and the shard
            holds at least one full batch (avoids a BatchNorm batch of one).
        pin_memory: pin batches in page-locked memory (worth it only for a CUDA device).
        divisor: batches of unequal image sizes are padded to multiples of this.

    Returns:
        The loader; its ``sampler`` is a :class:`SeededSampler`.
    """
    sampler = SeededSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, pad=shuffle)
    if num_workers is None:
        num_workers = default_num_workers(dataset)
    if drop_last is None:
        drop_last = shuffle and len(sampler) >= batch_size
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=PadCollate(dataset.ignore_index, divisor),
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=generator,
        prefetch_factor=2 if num_workers > 0 else None,
    )

