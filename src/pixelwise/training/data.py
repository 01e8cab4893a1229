"""Training-side data plumbing: read the dataset named in a config and split it.

Splits are deterministic: the same config (seed, fraction, split files) and the same
dataset give the same train and validation image ids, so a resumed run trains on what
the interrupted one did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelwise.core.errors import DataError
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.formats import detect_format, read_dataset
from pixelwise.training.config import TrainConfig

__all__ = ["read_split_file", "read_training_data", "split_dataset"]


def read_split_file(path: str | Path) -> list[str]:
    """Image ids from a split file: one per line; blank lines and ``#`` comments are skipped.

    Raises:
        DataError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "split file not found", "give a text file with one image id per line")
    ids = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            ids.append(text)
    return ids


def _read(path: str, fmt: str | None) -> SegmentationDataset:
    fmt = fmt or detect_format(path)
    return read_dataset(path, fmt)


def split_dataset(
    dataset: SegmentationDataset,
    val_fraction: float = 0.2,
    seed: int = 0,
    train_ids: list[str] | None = None,
    val_ids: list[str] | None = None,
) -> tuple[SegmentationDataset, SegmentationDataset | None]:
    """Split a dataset into training and validation parts, both in dataset order.

    Args:
        dataset: the whole dataset.
        val_fraction: share held out when no ids are given (a seeded shuffle picks them;
            at least one image when the dataset has two or more).
        seed: shuffle seed.
        train_ids: explicit training ids (with no ``val_ids``, every other image validates).
        val_ids: explicit validation ids (with no ``train_ids``, every other image trains).

    Returns:
        ``(train, val)``; ``val`` is None when nothing is held out.

    Raises:
        DataError: a split names ids that are not in the dataset, or leaves training empty.
    """
    ids = [s.image_id for s in dataset.samples]
    known = set(ids)
    if train_ids is not None or val_ids is not None:
        for name, chosen in (("train", train_ids), ("val", val_ids)):
            missing = [i for i in chosen or [] if i not in known]
            if missing:
                raise DataError(
                    dataset.root,
                    f"{len(missing)} {name} split id(s) are not in the dataset (readable samples), e.g. {missing[:5]}",
                    "the ids are image ids (file stems); unreadable images are skipped by the reader",
                )
        train_set = set(train_ids) if train_ids is not None else known - set(val_ids or [])
        val_set = set(val_ids) if val_ids is not None else known - set(train_ids or [])
    else:
        n_val = int(round(len(ids) * val_fraction)) if len(ids) >= 2 and val_fraction > 0 else 0
        n_val = max(n_val, 1) if val_fraction > 0 and len(ids) >= 2 else n_val
        order = np.random.default_rng(seed).permutation(len(ids))
        val_set = {ids[i] for i in order[:n_val]}
        train_set = known - val_set
    train = [i for i in ids if i in train_set]
    val = [i for i in ids if i in val_set]
    if not train:
        raise DataError(dataset.root, "the training split is empty", "lower val_fraction or fix the split files")
    train_ds = dataset.subset(train, name=f"{dataset.name}:train")
    val_ds = dataset.subset(val, name=f"{dataset.name}:val") if val else None
    return train_ds, val_ds


def read_training_data(config: TrainConfig) -> tuple[SegmentationDataset, SegmentationDataset | None, list]:
    """Read ``config.data`` (and ``config.val_data``) and split as the config says.

    Returns:
        ``(train, val, issues)``: the two parts (val may be None) and the reader issues.

    Raises:
        DataError: no data path, unreadable dataset, or a bad split.
    """
    if not config.data:
        raise DataError(None, "no training data given", "pass --data DATASET_FOLDER (or `data:` in the YAML config)")
    dataset = _read(config.data, config.format)
    issues = list(dataset.issues)
    if config.val_data:
        val = _read(config.val_data, config.format)
        issues += list(val.issues)
        return dataset, (val if len(val) else None), issues
    train_ids = read_split_file(config.train_split) if config.train_split else None
    val_ids = read_split_file(config.val_split) if config.val_split else None
    train, val = split_dataset(dataset, config.val_fraction, config.seed, train_ids, val_ids)
    return train, val, issues
