"""The `fake_minerl` fixture shared by test_minerl_double.py and test_minerl_adapter.py: it puts the
double of MineRL 1.0.2 (tests/doubles/fake_minerl) and its old `gym` on sys.path for one test.

A plain module, imported by name (pytest puts tests/unit on sys.path), not a conftest, so the double
is on sys.path only where a test asks for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FAKE_MINERL_DIR = Path(__file__).resolve().parents[1] / "doubles" / "fake_minerl"


def _fake_modules() -> list[str]:
    return [m for m in sys.modules if m.split(".")[0] in ("minerl", "gym")]


@pytest.fixture
def fake_minerl(monkeypatch):
    """Put the fake `minerl` and old `gym` on sys.path for one test, and forget them after."""
    assert not _fake_modules(), "a real or fake minerl/gym is already imported"
    monkeypatch.syspath_prepend(str(FAKE_MINERL_DIR))
    yield
    for name in _fake_modules():
        del sys.modules[name]
