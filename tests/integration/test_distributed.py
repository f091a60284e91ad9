"""Data-parallel PPG with torchrun on CPU (gloo, 2 processes): the documented command and its
resume, replicas kept identical (checked at every checkpoint), and a 2-rank run with E envs each
reproducing a 1-rank run with 2E envs (same env seeds and per-env action streams)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vpt_rl.checkpoint import load_latest, load_rank_states

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def torchrun(args: list[str], nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def train(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "train_ppo.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def rows(run: Path) -> list[dict[str, float]]:
    with open(run / "progress.csv") as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def test_torchrun_two_ranks_then_resume(tmp_path):
    """The issue's command: 2 ranks x 2 envs, 16-frame segments, 256 frames; then --resume to 512."""
    run = tmp_path / "ddp"
    common = ["--runs-dir", str(tmp_path), "--run-name", "ddp", "log.progress=false"]
    out = torchrun(
        [
            "train_ppo.py",
            "--config",
            SMOKE,
            "env.num_envs=2",
            "ppg.segment_len=16",
            "total_frames=256",
            *common,
        ]
    )
    assert "data parallel: 2 ranks x 2 envs" in out.stdout
    assert out.stdout.count("done: 256 frames") == 1  # only rank 0 prints
    state, _ = load_latest(run / "checkpoints")
    assert state["frames"] == 256 and state["iteration"] == 4  # 2 ranks x 2 envs x 16 frames a step
    ranks = load_rank_states(run / "checkpoints")  # each rank wrote its own part, nothing gathered
    assert state["world_size"] == 2 and len(ranks) == 2 and "per_rank" not in state
    assert sorted(p.name for p in (run / "checkpoints").glob("step_000000000256.*")) == [
        "step_000000000256.manifest.json",
        "step_000000000256.rank0.pt",
        "step_000000000256.rank1.pt",
        "step_000000000256.state.pt",
        "step_000000000256.weights",
    ]
    imgs = [s["roller"]["img"] for s in ranks]
    assert imgs[0].shape == imgs[1].shape == (2, 32, 32, 3) and (imgs[0] != imgs[1]).any()  # own envs
    frames = [r["time/frames"] for r in rows(run)]
    assert frames == [64.0, 128.0, 192.0, 256.0]  # frames of all ranks
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("events")).__len__() == 1

    torchrun(["train_ppo.py", "--resume", str(run), "total_frames=512"])
    state, _ = load_latest(run / "checkpoints")
    assert state["frames"] == 512 and state["iteration"] == 8
    log = (run / "train.log").read_text()
    assert "resuming" in log and log.count("done: 512 frames") == 1

    # a different number of ranks cannot continue the ranks' envs: a clear error, exit 2
    out = subprocess.run(
        [sys.executable, "train_ppo.py", "--resume", str(run), "total_frames=768"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "trained by 2 process(es) and this launch has 1" in out.stderr


def test_two_ranks_reproduce_one_rank_with_all_the_envs(tmp_path):
    """Rank r owns global envs r*E..r*E+E-1 (same env seeds, same per-env action streams), so with
    one minibatch (every row in it) the 2-rank run's gradients, advantage and value statistics,
    episode window and logged numbers are those of one process with 2E envs, to float rounding.
    With a prior whose weight decays fast, rho follows one curve in frames whatever the batch:
    also 1 rank x E envs (half the frames per iteration) sees the same rho at the same frame."""
    from vpt_rl import VPTConfig, VPTPolicy, save_weights

    init = tmp_path / "init.weights"
    save_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False), init)
    common = [
        "--config", SMOKE, "--runs-dir", str(tmp_path), "log.progress=false", "ppg.segment_len=8",
        "total_frames=128", "ppg.n_minibatches=1", "ppg.aux_n_minibatches=1", "ppg.lr=1e-4",
        "env.kwargs={max_episode_steps: 12, log_break_ticks: 1, spawn_facing_tree: true, trunk_width: 2}",
        "--init", str(init), "ppg.kl_decay=0.5", "ppg.kl_decay_frames=64",
    ]  # fmt: skip
    torchrun(["train_ppo.py", *common, "--run-name", "two", "env.num_envs=2"])
    train([*common, "--run-name", "one", "env.num_envs=4"])
    train([*common, "--run-name", "half", "env.num_envs=2"])
    rho = {}  # frame an iteration started at -> its rho, per run
    for name, batch in (("two", 32), ("one", 32), ("half", 16)):
        rho[name] = {r["time/frames"] - batch: r["train/kl_coef"] for r in rows(tmp_path / name)}
        for start, value in rho[name].items():
            assert value == pytest.approx(0.2 * 0.5 ** (start / 64), rel=1e-9), (name, start)
    assert rho["two"] == rho["one"] and min(rho["half"].values()) < 0.2 * 0.5  # it did decay
    for start, value in rho["two"].items():
        assert rho["half"][start] == value  # 2 ranks x 2 envs and 1 rank x 2 envs: one curve in frames
    two, one = rows(tmp_path / "two"), rows(tmp_path / "one")
    assert len(two) == len(one) == 4
    exact = (
        "time/frames",
        "train/kl_coef",
        "rollout/episodes",
        "rollout/ep_return_mean",
        "rollout/ep_len_mean",
        "rollout/reward_mean",
    )
    close = (
        "train/value_loss",
        "train/policy_loss",
        "train/entropy",
        "train/explained_variance",
        "aux/aux_value_loss",
    )
    assert any(
        r.get("rollout/reward_mean", 0) > 0 for r in one
    )  # rewards flowed, so the check means something
    for a, b in zip(two, one):
        for tag in exact:
            assert (tag in a) == (tag in b), tag
            if tag in a:
                assert a[tag] == pytest.approx(b[tag], rel=1e-6, abs=1e-9), tag
        for tag in close:
            if tag in b:
                assert a[tag] == pytest.approx(b[tag], rel=1e-3, abs=1e-5), (tag, a[tag], b[tag])
    wa = torch.load(tmp_path / "two" / "checkpoints" / "latest.weights", weights_only=True)
    wb = torch.load(tmp_path / "one" / "checkpoints" / "latest.weights", weights_only=True)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4  # 8 AdamW steps of lr 1e-4
    for key in ("value_head.normalizer.running_mean", "aux_value_head.normalizer.running_mean_sq"):
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-9)


def test_torchrun_bc_two_ranks_then_resume(tmp_path):
    """train_bc.py under torchrun: each rank streams its share of the episodes (4 training
    episodes: 2 each), gradients averaged (replicas checked at every checkpoint), frames over
    both ranks, rank 0 validates and writes; --resume continues both streams."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from test_bc_smoke import write_demos

    demos = write_demos(tmp_path / "demos", n_episodes=6)
    bc_smoke = str(ROOT / "configs" / "bc_smoke.yaml")
    run = tmp_path / "bc"
    common = ["train_bc.py", "--config", bc_smoke, "--data", str(demos), "--runs-dir", str(tmp_path)]
    out = torchrun([*common, "--run-name", "bc", "total_frames=128", "ckpt.interval=2"])
    assert "data parallel: 2 ranks x 4 rows" in out.stdout and out.stdout.count("done: 128 frames") == 1
    state, _ = load_latest(run / "checkpoints")
    assert state["frames"] == 128 and state["updates"] == 2 and state["world_size"] == 2  # 2 x 4 rows x 8
    streams = [r["stream"] for r in load_rank_states(run / "checkpoints")]
    assert streams[0] != streams[1]
    assert len(state["train_episodes"]) == 4  # 6 episodes, 2 held out for validation
    torchrun(["train_bc.py", "--resume", str(run), "total_frames=256"])
    state, _ = load_latest(run / "checkpoints")
    assert state["frames"] == 256 and state["updates"] == 4
    assert "bc/val_loss" in (run / "progress_from_128.csv").read_text()


def test_an_error_on_rank_0_reaches_every_rank(tmp_path):
    """A bad --init is read by rank 0 only; the other rank hears of it instead of waiting in a
    collective, and both exit with status 2 and a message naming the file."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "train_ppo.py",
    ]
    cmd += ["--config", SMOKE, "--init", str(tmp_path / "missing.weights"), "--runs-dir", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert out.stderr.count("missing.weights: no such file") == 2  # rank 0's own, and the broadcast
    assert "rank 0 could not start the run: InitError" in out.stderr
    assert "exitcode: 2" in out.stderr
