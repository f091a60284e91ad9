"""The full path on the voxel world: record -> train_bc.py -> train_ppo.py --init BC -> export -> eval."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import torch

from vpt_rl.cli import main as vpt_rl
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import load_weights, read_state_dict

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bc_checkpoint_goes_straight_into_train_ppo(tmp_path, capsys):
    demos, runs = tmp_path / "demos", tmp_path / "runs"
    assert vpt_rl(["record", "--episodes", "4", "--out", str(demos), "--max-steps", "24", "--seed", "1"]) == 0
    assert "recorded 4 episodes, 96 frames" in capsys.readouterr().out

    train_bc = load_script("train_bc")
    bc_args = ["--data", str(demos), "--config", str(ROOT / "configs" / "bc_smoke.yaml")]
    assert train_bc.main([*bc_args, "--runs-dir", str(runs), "--run-name", "bc"]) == 0
    bc_weights = runs / "bc" / "checkpoints" / "latest.weights"
    bc_sd = read_state_dict(bc_weights)
    assert not any(k.startswith("aux_value_head.") for k in bc_sd)

    train_ppo = load_script("train_ppo")
    ppo_args = ["--init", str(bc_weights), "--config", str(ROOT / "configs" / "smoke.yaml")]
    ppo_args += ["--runs-dir", str(runs), "--run-name", "rl", "ppg.value_warmup_frames=16"]
    assert train_ppo.main(ppo_args) == 0
    rl = runs / "rl"
    report = (rl / "load_report.txt").read_text()
    assert "mode:    rl" in report and "initialized" in report
    assert "aux_value_head.linear.weight" in report and "zero_value_head" in report
    with open(rl / "progress.csv") as f:
        warmup = [float(row["train/value_warmup"]) for row in csv.DictReader(f)]
    assert warmup[0] == 1.0 and warmup[-1] == 0.0  # only the value heads train in the first iteration
    prior = read_state_dict(rl / "checkpoints" / "prior.weights")
    # the prior is the BC policy (its value head zeroed at --init: it is never used by the KL)
    assert all(torch.equal(prior[k], bc_sd[k]) for k in bc_sd if not k.startswith("value_head."))
    rl_sd = read_state_dict(rl / "checkpoints" / "latest.weights")
    assert sum(k.startswith("aux_value_head.") for k in rl_sd) == 5
    assert any(not torch.equal(rl_sd[k], bc_sd[k]) for k in bc_sd if k.startswith("pi_head."))  # it trained

    exported = tmp_path / "final.weights"
    assert vpt_rl(["export", str(rl / "checkpoints" / "latest.weights"), str(exported)]) == 0
    policy = VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False)
    assert not load_weights(policy, exported, mode="bc").ignored
    assert vpt_rl(["eval", "--init", str(exported), "--episodes", "1", "--max-steps", "5"]) == 0
    assert "mean return" in capsys.readouterr().out
