"""The `fake_minerl` fixture shared by the MineRL tests (test_minerl_double.py, test_minerl_adapter.py,
test_minerl_quirks.py): it puts the
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


def short_task(monkeypatch, env_id: str, limit: int):
    """The task with its step limit shortened everywhere the real one has it (the spec's inner
    timeout and old gym's TimeLimit), so a test can reach it."""
    import gym
    from minerl.herobraine.env_specs import basalt_specs, obtain_specs

    from vpt_rl.envs.minerl import make_minerl_env

    classes = {c().name: c for c in basalt_specs.BASALT_SPECS}
    spec_cls = obtain_specs.ObtainDiamondShovelEnvSpec if "Shovel" in env_id else classes[env_id]
    monkeypatch.setattr(spec_cls, "steps", limit)
    monkeypatch.setitem(gym.registry[env_id], "max_episode_steps", limit)
    return make_minerl_env(env_id, max_episode_steps=limit)
