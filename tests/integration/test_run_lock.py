"""One owner per run folder (vpt_rl/run_lock.py): a second invocation on a folder in use is
refused at once, names the holder and changes nothing there; a SIGKILLed holder leaves no stale
lock behind (the kernel releases it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpt_rl.run_lock import LOCK_NAME, RunLockedError, lock_run_dir

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
HOLD = "import sys, time; from vpt_rl.run_lock import lock_run_dir; l = lock_run_dir(sys.argv[1]); print('locked', flush=True); time.sleep(120)"


def _run(args: list[str], script: str = "train_ppo.py", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _holder(run_dir: Path) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_lock_is_exclusive_and_released(tmp_path):
    lock = lock_run_dir(tmp_path / "r")
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on "):
        lock_run_dir(tmp_path / "r")
    lock.release()
    lock_run_dir(tmp_path / "r").release()


def test_second_invocation_is_refused_and_changes_nothing(tmp_path):
    common = ["--config", SMOKE, "--runs-dir", str(tmp_path), "log.progress=false"]
    assert _run([*common, "--run-name", "c"]).returncode == 0
    run = tmp_path / "c"
    holder = _holder(run)  # another live process owns the folder
    try:
        before = _snapshot(run)
        for args, script in (
            (["--resume", str(run), "total_frames=128"], "train_ppo.py"),
            ([*common, "--run-name", "c"], "train_ppo.py"),
        ):
            out = _run(args, script)
            assert out.returncode == 2, out.stderr
            assert f"is in use by another run (pid {holder.pid} on " in out.stderr and "started" in out.stderr
        assert _snapshot(run) == before  # not a byte written, not a file added
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the SIGKILLed holder's lock: the resume now runs
    out = _run(["--resume", str(run), "total_frames=96"])
    assert out.returncode == 0, out.stderr
    assert "done: 96 frames" in out.stdout


def test_concurrent_training_invocations(tmp_path):
    """Two `train_ppo.py` on one --run-name at once: the second exits at once naming the first."""
    common = ["--config", SMOKE, "--runs-dir", str(tmp_path), "--run-name", "both", "log.progress=false"]
    first = subprocess.Popen(
        [sys.executable, "train_ppo.py", *common, "total_frames=100000"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock_file = tmp_path / "both" / LOCK_NAME
        deadline = time.monotonic() + 60
        while not (lock_file.exists() and f'"pid": {first.pid}' in lock_file.read_text()):
            assert time.monotonic() < deadline and first.poll() is None, "the first run did not start"
            time.sleep(0.2)
        t0 = time.monotonic()
        second = _run(common)
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr
        assert time.monotonic() - t0 < 30  # refused at once, not after training
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_bc_refuses_a_folder_in_use(tmp_path):
    run = tmp_path / "bc"
    holder = _holder(run)
    try:
        out = _run(
            ["--config", str(ROOT / "configs" / "bc_smoke.yaml"), "--data", str(tmp_path), "--runs-dir",
             str(tmp_path), "--run-name", "bc"],
            "train_bc.py",
        )  # fmt: skip
        assert out.returncode == 2 and f"pid {holder.pid}" in out.stderr
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing else was written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
