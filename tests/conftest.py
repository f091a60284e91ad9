"""Shared test set-up: one torch thread (CI has 2 cores, tests run beside env workers) and the
path of the copied VPT reference data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REFERENCE_DIR = Path(__file__).parent / "data" / "vpt_reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder with the golden outputs, manifests and decoded `.model` files (see its README)."""
    return REFERENCE_DIR
