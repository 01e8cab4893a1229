"""Shared test fixtures: fixed RNG state for every test, paths to the real test data."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _fixed_rng_state():
    """Seed and restore Python/NumPy (and torch, if imported) RNGs around each test."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    random.seed(0)
    np.random.seed(0)
    torch_state = None
    if "torch" in sys.modules:  # only tests that use torch pay for importing it
        import torch

        torch_state = torch.random.get_rng_state()
        torch.manual_seed(0)
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    if torch_state is not None:
        import torch

        torch.random.set_rng_state(torch_state)


@pytest.fixture
def data_dir() -> Path:
    """Folder of real and bad test data."""
    return DATA_DIR
