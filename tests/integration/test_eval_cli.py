"""`vpt-rl eval`: returns, items and episode videos for any checkpoint."""

from __future__ import annotations

import json

import torch

from vpt_rl.cli import main
from vpt_rl.data.video import read_video
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import save_weights


def test_eval_reports_and_writes_videos(tmp_path, capsys):
    torch.manual_seed(0)
    weights = save_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=True), tmp_path / "rl.weights")
    args = ["eval", "--init", str(weights), "--episodes", "2", "--max-steps", "6", "--seed", "4"]
    args += ["--video-dir", str(tmp_path / "videos"), "--json", str(tmp_path / "out.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ignored (5)" in out  # an RL checkpoint: the aux head is not needed to act
    assert "episode 0: return" in out and "episode 1: return" in out
    assert "mean return" in out and "items collected (mean per episode):" in out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["episodes"] == 2 and [r["steps"] for r in result["results"]] == [6, 6]
    assert result["mean_return"] == sum(r["return"] for r in result["results"]) / 2
    for i in range(2):
        frames = read_video(tmp_path / "videos" / f"episode_{i:03d}.mp4")
        assert frames.shape == (6, 360, 640, 3)  # the env's full frames, not the 32x32 policy input


def test_eval_is_reproducible_and_errors(tmp_path, capsys):
    torch.manual_seed(1)
    weights = save_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False), tmp_path / "bc.weights")
    args = ["eval", "--init", str(weights), "--episodes", "1", "--max-steps", "8", "--json"]
    assert main([*args, str(tmp_path / "a.json")]) == 0 and main([*args, str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["results"] == b["results"]  # same seeds, same sampled actions
    capsys.readouterr()
    assert main(["eval", "--init", str(weights), "--episodes", "0"]) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err
    assert main(["eval", "--init", str(tmp_path / "missing.weights")]) == 2
    assert "missing.weights" in capsys.readouterr().err
