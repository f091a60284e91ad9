"""configs/smoke.yaml end to end through train_ppo.py on the voxel world: run layout, TensorBoard
tags (x-axis = env frames), image strip and config text, checkpoints loadable in RL and BC mode,
pruning, and one-line config errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import load_weights

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")

REQUIRED_TAGS = [
    "rollout/ep_return_mean",
    "rollout/ep_len_mean",
    "train/policy_loss",
    "train/value_loss",
    "train/entropy",
    "train/kl_prior",
    "train/kl_coef",
    "train/approx_kl",
    "train/clip_frac",
    "train/explained_variance",
    "train/grad_norm",
    "train/lr",
    "aux/aux_value_loss",
    "aux/value_loss",
    "aux/bc_kl",
    "time/fps",
    "env/restarts",
]


def _train_ppo():
    spec = importlib.util.spec_from_file_location("train_ppo", ROOT / "train_ppo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _events(run_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    rc = _train_ppo().main(
        ["--config", SMOKE, "--runs-dir", str(runs), "--run-name", "smoke", "log.progress=false"]
    )
    assert rc == 0
    return runs / "smoke"


def test_run_layout(smoke_run):
    names = {p.name for p in smoke_run.iterdir()}
    assert {"config.yaml", "checkpoints", "progress.csv", "train.log"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    ckpts = sorted(p.name for p in (smoke_run / "checkpoints").iterdir())
    # 4 iterations, ckpt.interval 2, keep_last 2: steps 32 and 64 remain (weights, replicated state,
    # rank 0's part, manifest), plus the latest pointer and weights
    assert ckpts == [
        "latest.json",
        "latest.weights",
        "step_000000000032.manifest.json",
        "step_000000000032.rank0.pt",
        "step_000000000032.state.pt",
        "step_000000000032.weights",
        "step_000000000064.manifest.json",
        "step_000000000064.rank0.pt",
        "step_000000000064.state.pt",
        "step_000000000064.weights",
    ]
    log = (smoke_run / "train.log").read_text()
    assert "no prior" in log and "tensorboard --logdir" in log


def test_tensorboard_tags_on_frames_axis(smoke_run):
    ea = _events(smoke_run)
    tags = ea.Tags()
    missing = [t for t in REQUIRED_TAGS if t not in tags["scalars"]]
    assert not missing, missing
    assert [e.step for e in ea.Scalars("train/policy_loss")] == [16, 32, 48, 64]  # one write per iteration
    assert [e.step for e in ea.Scalars("aux/bc_kl")] == [32, 64]  # aux phase every n_pi = 2 iterations
    assert all(e.value == 0.0 for e in ea.Scalars("train/kl_coef"))  # no --init: no prior
    assert "rollout/frames" in tags["images"]
    assert any(t.startswith("config") for t in tags["tensors"])


def test_checkpoint_loads_in_rl_and_bc_modes(smoke_run):
    path = smoke_run / "checkpoints" / "latest.weights"
    sd = torch.load(path, weights_only=True)
    assert len(sd) == 107  # tiny: 102 official keys + 5 aux (139 for the released sizes)
    rl = load_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=True), path, mode="rl")
    assert not (rl.missing or rl.unexpected or rl.initialized) and len(rl.loaded) == 107
    bc = load_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False), path, mode="bc")
    assert len(bc.ignored) == 5 and len(bc.loaded) == 102
    # training moved the weights away from a fresh policy's value statistics
    assert sd["value_head.normalizer.debiasing_term"].item() > 0
    assert sd["aux_value_head.normalizer.debiasing_term"].item() > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["ppg.clip_epsilon=0.1"], "ppg.clip_epsilon"),
        (["env.num_envs=two"], "env.num_envs"),
        (["--config", "/nonexistent.yaml"], "/nonexistent.yaml"),
    ],
)
def test_config_errors_are_one_line_exit_2(args, needle, tmp_path, capsys):
    rc = _train_ppo().main(["--runs-dir", str(tmp_path), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("train_ppo.py: error:") and needle in err
    assert not list(tmp_path.iterdir())  # nothing was started


def test_nonfinite_updates_stop_the_run_and_keep_the_last_checkpoint(smoke_run, tmp_path, capsys):
    import math
    import shutil

    run = tmp_path / "nan"
    shutil.copytree(smoke_run, run)
    before = torch.load(run / "checkpoints" / "latest.weights", weights_only=True)
    # an absurd learning rate blows the weights up after one step; every later loss is NaN
    args = ["--resume", str(run), "total_frames=160", "ppg.lr=1e37", "ppg.nonfinite_patience=2"]
    assert _train_ppo().main(args) == 1
    log = (run / "train.log").read_text()
    assert "2 consecutive updates skipped" in log and "last good checkpoint" in log
    after = torch.load(run / "checkpoints" / "latest.weights", weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the last good checkpoint is intact
    assert all(math.isfinite(v.float().abs().max().item()) for v in after.values())


def _all_scalars(run_dir: Path) -> dict[str, list[float]]:
    ea = _events(run_dir)
    return {tag: [e.value for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_constant_reward_world_logs_only_finite_scalars(tmp_path, capsys):
    """Every return is 0 (only diamonds pay, and the voxel world has none): explained variance,
    advantage and value statistics are degenerate, and still no NaN or inf reaches TensorBoard or
    the CSV. Also: plain progress lines (stderr is not a terminal here), the summary, the plot."""
    import csv
    import math

    rc = _train_ppo().main(
        [
            "--config",
            SMOKE,
            "--runs-dir",
            str(tmp_path),
            "--run-name",
            "flat",
            "env.reward_table={diamond: [1, 1]}",
        ]
    )
    assert rc == 0
    run = tmp_path / "flat"
    scalars = _all_scalars(run)
    bad = {tag: v for tag, v in scalars.items() if not all(math.isfinite(x) for x in v)}
    assert not bad, bad
    assert all(v == 0.0 for v in scalars["rollout/ep_return_mean"])
    for row in csv.DictReader(open(run / "progress.csv")):
        assert all(math.isfinite(float(v)) for v in row.values() if v != ""), row

    out, err = capsys.readouterr()
    assert "\r" not in err  # no carriage-return bar frames in a log file
    lines = [line for line in err.splitlines() if line.startswith("flat: ")]  # desc = run name
    assert lines and "64/64 frames (100%)" in lines[-1] and "fps=" in lines[-1]
    assert any(
        "32/64 frames (50%)" in line and "[aux phase]" in line for line in lines
    )  # the aux phase is announced while it runs
    assert "episode return: 0.00" in out and "tensorboard --logdir" in out
    assert f"plot:        {run / 'progress.png'}" in out and (run / "progress.png").stat().st_size > 10_000


def test_every_logged_tag_is_documented(smoke_run):
    """docs/monitoring.md defines every scalar tag a run writes (the docs must match the code)."""
    import re

    documented = set(re.findall(r"\| `([a-z_]+/[a-z_]+)` \|", (ROOT / "docs" / "monitoring.md").read_text()))
    logged = set(_all_scalars(smoke_run))
    assert logged and not logged - documented, sorted(logged - documented)
