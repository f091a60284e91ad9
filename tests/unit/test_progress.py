"""Console progress: plain lines off a terminal (throttled, no carriage returns), phases named
while they run, fps over the whole invocation."""

from __future__ import annotations

import io

from vpt_rl.run_log import Progress, _hms


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plain_mode_prints_throttled_lines_and_announced_phases(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("vpt_rl.run_log.time.monotonic", clock)
    stream = io.StringIO()  # not a TTY
    p = Progress(1000, 0, desc="run", stream=stream, plain_interval=5.0)
    assert p.bar is None and p.plain
    clock.t += 1.0
    p.update(100, ep_return=2.5)  # 1 s after the last line: nothing printed yet
    assert stream.getvalue() == ""
    clock.t += 9.0
    with p.phase("aux phase", announce=True):  # long phase: printed at once
        clock.t += 10.0  # 20 s in, still 100 frames
    assert p.fps == 100 / 20.0  # the pause counts: fps over wall time, not over the rollout
    p.update(1000)
    p.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("run: 100/1,000 frames (10%) fps=10 return=2.5 [aux phase]")
    assert "elapsed 0:10 eta 1:30" in lines[0]
    assert lines[-1].startswith("run: 1,000/1,000 frames (100%)") and "[aux phase]" not in lines[-1]


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    p = Progress(10, 0, enabled=False, stream=stream)
    p.update(10, 1.0)
    with p.phase("checkpoint", announce=True):
        pass
    p.close()
    assert stream.getvalue() == ""


def test_hms():
    assert _hms(62) == "1:02" and _hms(3723) == "1:02:03" and _hms(float("nan")) == "?"
