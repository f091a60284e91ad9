"""train_bc.py smoke runs: fresh and --init starts, run layout, TensorBoard tags, real clipping."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from vpt_rl.config.bc import load_bc_config, read_bc_config
from vpt_rl.data.recorder import EpisodeWriter
from vpt_rl.envs.actions import minerl_noop, policy_to_env
from vpt_rl.model.policy import VPTPolicy
from vpt_rl.model.vpt_config import VPTConfig
from vpt_rl.model.weights import read_state_dict, save_weights

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "bc_smoke.yaml")
TAGS = {"bc/loss", "bc/val_loss", "bc/acc_buttons", "bc/acc_camera", "time/fps"}


def load_train_bc():
    spec = importlib.util.spec_from_file_location("train_bc", ROOT / "train_bc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_demos(folder: Path, n_episodes: int = 4, n_frames: int = 24, seed: int = 0) -> Path:
    """Episodes whose actions come from a small set (learnable), frames that change over time."""
    rng = np.random.default_rng(seed)
    for e in range(n_episodes):
        with EpisodeWriter(folder, f"ep{e}") as writer:
            for t in range(n_frames):
                action = minerl_noop()
                action.update(policy_to_env(int(rng.choice([4, 576, 5])), int(rng.choice([60, 61]))))
                writer.add(np.full((360, 640, 3), (37 * t + 50 * e) % 256, np.uint8), action)
    return folder


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    return write_demos(tmp_path_factory.mktemp("demos"))


def scalar_tags(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list] = {}
    for events in sorted(run_dir.glob("events.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_fresh_run_layout_and_tags(demos, tmp_path, capsys):
    train_bc = load_train_bc()
    status = train_bc.main(
        ["--data", str(demos), "--config", SMOKE, "--runs-dir", str(tmp_path), "--run-name", "fresh"]
    )
    assert status == 0
    run = tmp_path / "fresh"
    out = capsys.readouterr().out
    assert "no --init: training a fresh policy" in out and "done: 96 frames" in out and "plot:" in out
    assert "no --init" in (run / "load_report.txt").read_text()
    assert "no --init" in (run / "train.log").read_text()
    config = read_bc_config(run / "config.yaml")
    assert config.run_name == "fresh" and config.data.dir == str(demos.resolve())
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == [
        "latest.json",
        "latest.weights",
        "prior.weights",  # the frozen KL anchor (bc.kl_coef > 0 in bc_smoke), kept for --resume
        "step_000000000064.manifest.json",
        "step_000000000064.rank0.pt",
        "step_000000000064.state.pt",
        "step_000000000064.weights",
        "step_000000000096.manifest.json",
        "step_000000000096.rank0.pt",
        "step_000000000096.state.pt",
        "step_000000000096.weights",
    ]  # keep_last 2 pruned step 32
    sd = read_state_dict(run / "checkpoints" / "latest.weights")
    expected = VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False).state_dict()
    assert list(sd) == list(expected)  # official layout and order, no aux head
    tags = scalar_tags(run)
    assert TAGS <= set(tags)
    assert [step for step, _ in tags["bc/loss"]] == [32, 64, 96]


def test_init_from_rl_checkpoint_ignores_aux_and_learns(demos, tmp_path, capsys):
    init = tmp_path / "rl.weights"
    torch.manual_seed(1)
    save_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=True), init)  # 5 aux keys
    train_bc = load_train_bc()
    args = ["--init", str(init), "--data", str(demos), "--config", SMOKE, "--runs-dir", str(tmp_path)]
    status = train_bc.main(
        [*args, "--run-name", "init", "total_frames=480", "log.val_interval=3", "ckpt.interval=0"]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "detected from the shapes" in out and "ignored (5)" in out
    report = (tmp_path / "init" / "load_report.txt").read_text()
    assert "mode:    bc" in report and "aux_value_head.linear.weight" in report
    val = [v for _, v in scalar_tags(tmp_path / "init")["bc/val_loss"]]
    assert len(val) >= 4 and val[-1] < val[0] - 0.5  # the demonstrated actions get likelier


def test_gradient_clipping_is_real(demos, tmp_path):
    from vpt_rl.algo.bc_build import build_bc_trainer

    config = load_bc_config([SMOKE], [f"data.dir={demos}", "bc.max_grad_norm=0.001", "bc.kl_coef=0"])
    trainer = build_bc_trainer(config, tmp_path / "clip", log=lambda _: None)
    metrics = trainer._update(trainer.stream.next_chunk())
    total = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in trainer.params if p.grad is not None])
    )
    assert metrics["grad_norm"] > 0.01 and total.item() <= 0.001 * 1.001  # clipped from > 10x the limit


def test_user_errors_exit_2(demos, tmp_path, capsys):
    train_bc = load_train_bc()
    assert train_bc.main(["--config", SMOKE, "--runs-dir", str(tmp_path), "--run-name", "a"]) == 2
    assert "data.dir is not set" in capsys.readouterr().err
    assert (
        train_bc.main(["--data", str(tmp_path / "nope"), "--runs-dir", str(tmp_path), "--run-name", "b"]) == 2
    )
    assert "demonstration folder not found" in capsys.readouterr().err
    bad_init = tmp_path / "bad.weights"
    bad_init.write_bytes(b"garbage")
    assert train_bc.main(["--init", str(bad_init), "--data", str(demos), "--runs-dir", str(tmp_path)]) == 2
    assert "bad.weights: not a weights file" in capsys.readouterr().err
    assert train_bc.main(["--data", str(demos), "--runs-dir", str(tmp_path), "bc.lr=-1"]) == 2
    assert "bc.lr must be > 0" in capsys.readouterr().err
