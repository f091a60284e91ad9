"""vpt_rl/envs/ray_cluster.py's wait for killed actors, against a stand-in for Ray: ray.kill only
asks, so close() and a restart poll each actor until a call to it fails (or a deadline passes)."""

from __future__ import annotations

import logging
import types

from vpt_rl.envs.ray_cluster import _await_gone


class _ActorDied(Exception):
    pass


class _Timeout(Exception):
    pass


class _Handle:
    """An actor that answers `answers` more pings (a call sent before the kill lands), then is dead."""

    def __init__(self, answers: int) -> None:
        self.answers, self.pings = answers, 0
        self.ping = types.SimpleNamespace(options=lambda **kw: types.SimpleNamespace(remote=self._remote))

    def _remote(self) -> _Handle:
        self.pings += 1
        return self


def _fake_ray() -> types.SimpleNamespace:
    def get(ref: _Handle, timeout: float) -> int:
        if ref.answers <= 0:
            raise _ActorDied("actor died")
        ref.answers -= 1
        return 123

    return types.SimpleNamespace(get=get, exceptions=types.SimpleNamespace(GetTimeoutError=_Timeout))


def test_waits_until_every_actor_refuses_a_call():
    quick, slow = _Handle(0), _Handle(3)
    _await_gone(_fake_ray(), [quick, slow], timeout=10.0)
    assert quick.pings == 1  # dead at once: asked once
    assert slow.pings == 4  # answered three times, refused the fourth


def test_gives_up_after_the_deadline_with_a_warning(caplog):
    stuck = _Handle(10**9)
    with caplog.at_level(logging.WARNING, logger="vpt_rl.envs.ray_cluster"):
        _await_gone(_fake_ray(), [stuck], timeout=0.3)
    assert 1 < stuck.pings < 100
    assert "1 actor(s) still answered" in caplog.text
