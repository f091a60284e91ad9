"""Exact resume of train_bc.py: stop half-way + --resume == one uninterrupted run."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vpt_rl.checkpoint import load_latest, load_rank_states
from vpt_rl.data.recorder import EpisodeWriter
from vpt_rl.envs.actions import minerl_noop, policy_to_env
from vpt_rl.model.weights import read_state_dict

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "bc_smoke.yaml")


def load_train_bc():
    spec = importlib.util.spec_from_file_location("train_bc", ROOT / "train_bc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demos")
    rng = np.random.default_rng(5)
    for e, n in enumerate([30, 11, 19, 26, 9]):  # uneven lengths: episodes end inside chunks
        with EpisodeWriter(folder, f"ep{e}") as writer:
            for t in range(n):
                action = minerl_noop()
                action.update(policy_to_env(int(rng.integers(0, 8640)), int(rng.integers(0, 121))))
                writer.add(np.full((360, 640, 3), (29 * t + 70 * e) % 256, np.uint8), action)
    return folder


def test_resume_equals_uninterrupted(demos, tmp_path, capsys):
    train_bc = load_train_bc()
    # kl_coef > 0 (bc_smoke) so the prior's memory is part of the resumed state too
    common = ["--data", str(demos), "--config", SMOKE, "--runs-dir", str(tmp_path), "total_frames=192"]
    assert train_bc.main([*common, "--run-name", "whole"]) == 0
    assert train_bc.main([*common, "--run-name", "split", "stop_after_frames=96"]) == 0
    state, _ = load_latest(tmp_path / "split" / "checkpoints")
    assert state["frames"] == 96
    assert train_bc.main(["--resume", str(tmp_path / "split")]) == 0

    whole = read_state_dict(tmp_path / "whole" / "checkpoints" / "latest.weights")
    split = read_state_dict(tmp_path / "split" / "checkpoints" / "latest.weights")
    assert list(whole) == list(split)
    assert all(torch.equal(whole[k], split[k]) for k in whole), "resumed weights differ"
    a, _ = load_latest(tmp_path / "whole" / "checkpoints")
    b, _ = load_latest(tmp_path / "split" / "checkpoints")
    a = {**a, **load_rank_states(tmp_path / "whole" / "checkpoints")[0]}  # one process: rank 0's part
    b = {**b, **load_rank_states(tmp_path / "split" / "checkpoints")[0]}
    assert a["frames"] == b["frames"] == 192 and a["stream"] == b["stream"]
    for (ma, ka, va), (mb, kb, vb) in zip(a["memory"], b["memory"]):
        assert torch.equal(ma, mb) and torch.equal(ka, kb) and torch.equal(va, vb)
    assert (tmp_path / "split" / "progress_from_96.csv").is_file()  # the first CSV is kept

    changed = tmp_path / "changed"
    shutil.copytree(demos, changed)
    for suffix in (".mp4", ".jsonl"):
        shutil.copy(demos / f"ep0{suffix}", changed / f"ep9{suffix}")
    assert (
        train_bc.main(["--resume", str(tmp_path / "split"), "--data", str(changed), "total_frames=256"]) == 2
    )
    err = capsys.readouterr().err
    assert "the training episodes in" in err and "differ from the run's" in err


def test_resume_errors(tmp_path, capsys):
    train_bc = load_train_bc()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.yaml").write_text("seed: 0\n")
    assert train_bc.main(["--resume", str(tmp_path / "empty")]) == 2
    assert "no readable checkpoint" in capsys.readouterr().err
    assert train_bc.main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "config.yaml" in capsys.readouterr().err
