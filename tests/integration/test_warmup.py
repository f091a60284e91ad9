"""Value warm-up through the trainer: while `ppg.value_warmup_frames` lasts, nothing but the value
heads moves, not even through an auxiliary phase that falls inside it; the first auxiliary phase
runs after the warm-up (docs/implementation_details.md item 22)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from vpt_rl.algo.ppg_setup import build_ppg_trainer
from vpt_rl.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "smoke.yaml"


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv") as f:
        return list(csv.DictReader(f))


def test_no_aux_phase_moves_the_trunk_during_the_value_warmup(tmp_path):
    # 2 envs x 8 frames: iterations 0-2 warm up, the buffer fills (n_pi 2) at iteration 1;
    # iteration 3 is the first policy iteration and the first auxiliary phase
    overrides = ["ppg.value_warmup_frames=48", "total_frames=48", "log.progress=false", "ckpt.interval=0"]
    trainer = build_ppg_trainer(load_config([SMOKE], overrides), tmp_path / "warm")
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    trainer.train()
    after = trainer.policy.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("value_head.") for k in moved), sorted(moved)
    rows = _rows(tmp_path / "warm")
    assert [float(r["train/value_warmup"]) for r in rows] == [1.0, 1.0, 1.0]
    assert all(not r.get("aux/bc_kl") for r in rows)  # no auxiliary phase was logged
    assert len(trainer.aux_buffer) == 2  # the last N_pi segments wait for the first aux phase

    # one more iteration (a resume): the first policy iteration finds N_pi segments, runs the aux phase
    config = load_config([SMOKE], [*overrides[:1], "total_frames=64", "log.progress=false"])
    resumed = build_ppg_trainer(config, tmp_path / "warm", resume=True)
    resumed.train()
    rows = list(csv.DictReader(open(tmp_path / "warm" / "progress_from_000000000048.csv")))
    assert float(rows[-1]["train/value_warmup"]) == 0.0 and rows[-1]["aux/bc_kl"] != ""
