"""Layer 5: training runs (config, trainer, distributed launch), resumable and reproducible.

Example:
    >>> from pixelwise.training import TrainConfig, train
    >>> result = train(TrainConfig(data="data/shapes", epochs=2, input_size=128))  # doctest: +SKIP
    >>> sorted(p.name for p in result.run_dir.iterdir())  # doctest: +SKIP
    ['best.pt', 'config.yaml', 'curves.png', 'history.csv', 'last.pt', 'splits.json', 'tb']
"""

from pixelwise.training.config import ConfigError, TrainConfig, load_config, save_config
from pixelwise.training.distributed import launch
from pixelwise.training.trainer import HISTORY_COLUMNS, TrainingError, TrainResult, resolve_amp, resolve_device, train

__all__ = [
    "HISTORY_COLUMNS",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "launch",
    "load_config",
    "resolve_amp",
    "resolve_device",
    "save_config",
    "train",
]
