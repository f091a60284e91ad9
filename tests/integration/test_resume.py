"""Exact resume: a smoke run stopped with stop_after_frames (mid auxiliary cycle) and resumed ends
with the same weights as the uninterrupted run (CPU, same seed); a larger total_frames on resume
extends the run; envs that cannot restore their state restart their episodes."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

from vpt_rl.checkpoint import load_latest, load_rank_states

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _train_ppo():
    spec = importlib.util.spec_from_file_location("train_ppo", ROOT / "train_ppo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "latest.weights", weights_only=True)


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    diffs = {k: (a[k].float() - b[k].float()).abs().max().item() for k in a}
    assert max(diffs.values()) == 0.0, {k: d for k, d in diffs.items() if d}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def uninterrupted(runs):
    tp = _train_ppo()
    assert (
        tp.main(["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "full", "log.progress=false"]) == 0
    )
    return runs / "full"


def test_stopped_and_resumed_equals_uninterrupted(runs, uninterrupted):
    tp = _train_ppo()
    common = ["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "split", "log.progress=false"]
    # 48 frames = iteration 3 of 4: one segment waits in the auxiliary buffer (n_pi = 2)
    assert tp.main([*common, "stop_after_frames=48"]) == 0
    state, _ = load_latest(runs / "split" / "checkpoints")
    assert (
        state["frames"] == 48
        and len(load_rank_states(runs / "split" / "checkpoints")[0]["aux_buffer"]["segments"]) == 1
    )
    assert tp.main(["--resume", str(runs / "split"), "stop_after_frames=null"]) == 0
    _assert_equal(_weights(uninterrupted), _weights(runs / "split"))
    assert "resuming" in (runs / "split" / "train.log").read_text()
    assert (runs / "split" / "progress_from_000000000048.csv").is_file()


def test_larger_total_frames_extends_the_run(runs, uninterrupted):
    import shutil

    ext = runs / "extended"
    shutil.copytree(uninterrupted, ext)
    tp = _train_ppo()
    assert tp.main(["--resume", str(ext), "total_frames=96"]) == 0
    state, _ = load_latest(ext / "checkpoints")
    assert state["frames"] == 96 and state["iteration"] == 6
    assert "total_frames: 96" in (ext / "config.yaml").read_text()


def test_resume_refuses_changed_fields_and_existing_runs(runs, uninterrupted, capsys):
    tp = _train_ppo()
    assert tp.main(["--resume", str(uninterrupted), "env.num_envs=3", "ppg.n_minibatches=1"]) == 2
    assert "env.num_envs" in capsys.readouterr().err
    assert tp.main(["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "full"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_envs_without_state_restart_episodes_on_resume(runs, monkeypatch):
    from vpt_rl.envs.pool import EnvPool

    monkeypatch.setattr(EnvPool, "supports_state", property(lambda self: False))  # as MineRL
    tp = _train_ppo()
    common = ["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "nostate", "log.progress=false"]
    assert tp.main([*common, "stop_after_frames=32"]) == 0
    state, _ = load_latest(runs / "nostate" / "checkpoints")
    assert load_rank_states(runs / "nostate" / "checkpoints")[0]["env_states"] is None
    assert tp.main(["--resume", str(runs / "nostate"), "stop_after_frames=null"]) == 0
    assert "episodes restarted" in (runs / "nostate" / "train.log").read_text()
    assert load_latest(runs / "nostate" / "checkpoints")[0]["frames"] == 64
    # the episodes cut at frame 32 (4 steps into their second 12-step episode) start their
    # statistics afresh: no logged episode is longer than the 12-step limit
    with open(runs / "nostate" / "progress_from_000000000032.csv") as f:
        lens = [float(r["rollout/ep_len_mean"]) for r in csv.DictReader(f) if r.get("rollout/ep_len_mean")]
    assert lens and max(lens) <= 12.0, lens


def test_double_buffered_run_resumes_exactly(runs):
    """env.overlap=true through the whole trainer: stopped and resumed it ends bit-identical to its
    own uninterrupted run (its rollouts equal lockstep's: tests/unit/test_roller.py)."""
    tp = _train_ppo()
    common = ["--config", SMOKE, "--runs-dir", str(runs), "log.progress=false", "env.overlap=true"]
    assert tp.main([*common, "--run-name", "dbl_full"]) == 0
    assert tp.main([*common, "--run-name", "dbl_split", "stop_after_frames=48"]) == 0
    assert tp.main(["--resume", str(runs / "dbl_split"), "stop_after_frames=null"]) == 0
    _assert_equal(_weights(runs / "dbl_full"), _weights(runs / "dbl_split"))


def test_checkpoints_without_the_aux_buffer(runs):
    """ckpt.aux_buffer=false: each rank's file leaves the buffered segments out (smaller), resume
    works, and the aux cycle restarts: the segment buffered at the stop is not there after it."""
    tp = _train_ppo()
    common = ["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "noaux", "log.progress=false"]
    assert tp.main([*common, "stop_after_frames=48", "ckpt.aux_buffer=false"]) == 0
    ck = runs / "noaux" / "checkpoints"
    assert load_rank_states(ck)[0]["aux_buffer"] is None
    with_buffer = runs / "split" / "checkpoints" / "step_000000000048.rank0.pt"
    if with_buffer.exists():  # the exact-resume run above stopped at the same frame with its buffer
        assert (ck / "step_000000000048.rank0.pt").stat().st_size < with_buffer.stat().st_size
    assert tp.main(["--resume", str(runs / "noaux"), "stop_after_frames=null"]) == 0
    with open(runs / "noaux" / "progress_from_000000000048.csv") as f:
        rows = list(csv.DictReader(f))
    # uninterrupted, iteration 4 finds N_pi = 2 segments and runs the aux phase; here it finds 1
    assert len(rows) == 1 and not rows[0].get("aux/bc_kl")


def test_running_adv_std_is_resumed_exactly(runs):
    """The running advantage std is part of the checkpoint: a split run equals an uninterrupted
    one (a short memory makes every batch's scale depend on the earlier ones)."""
    tp = _train_ppo()
    extra = ["log.progress=false", "ppg.adv_std=running", "ppg.adv_std_frames=64"]
    assert tp.main(["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "run_std", *extra]) == 0
    common = ["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "run_std_split", *extra]
    assert tp.main([*common, "stop_after_frames=48"]) == 0
    state, _ = load_latest(runs / "run_std_split" / "checkpoints")
    assert state["adv_std"]["weight"] > 0
    assert tp.main(["--resume", str(runs / "run_std_split"), "stop_after_frames=null"]) == 0
    _assert_equal(_weights(runs / "run_std"), _weights(runs / "run_std_split"))
