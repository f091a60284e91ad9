"""Demonstration writer/recorder: record -> read gives back the executed policy actions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vpt_rl.data.demos import list_episodes, read_episode
from vpt_rl.data.jsonl import DemoFormatError
from vpt_rl.data.recorder import EpisodeWriter, record_episodes
from vpt_rl.envs.actions import env_to_policy, minerl_noop, policy_to_env
from vpt_rl.envs.obs import preprocess_frame


def random_actions(n: int, seed: int = 0) -> list[dict]:
    """Random policy actions mapped to MineRL dicts (inventory excluded: it forces the camera)."""
    rng = np.random.default_rng(seed)
    actions = []
    for _ in range(n):
        action = minerl_noop()
        action.update(policy_to_env(int(rng.integers(0, 8640)), int(rng.integers(0, 121))))
        actions.append(action)
    return actions


def test_writer_round_trip_exact_actions_approximate_frames(tmp_path):
    n = 24
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
    frames = [np.roll(np.kron(base, np.ones((40, 40, 1), np.uint8)), 7 * i, axis=1) for i in range(n)]
    actions = random_actions(n)
    with EpisodeWriter(tmp_path, "ep") as writer:
        for frame, action in zip(frames, actions):
            writer.add(frame, action)
    assert [p.name for p in list_episodes(tmp_path)] == ["ep"]
    lines = (tmp_path / "ep.jsonl").read_text().splitlines()
    assert len(lines) == n and json.loads(lines[0])["mouse"]["newButtons"] == []
    ep = read_episode(tmp_path / "ep", img_size=(64, 64), drop_null=False)
    expected = [env_to_policy(a) for a in actions]
    assert list(zip(ep.buttons_t.tolist(), ep.camera_t.tolist())) == expected  # identical bins
    small = np.stack([preprocess_frame(f, (64, 64)) for f in frames]).astype(int)
    assert np.abs(ep.frames_thwc.astype(int) - small).mean() < 8  # mp4 is lossy: close, not equal


def test_writer_refuses_overwrite_and_wrong_size(tmp_path):
    with EpisodeWriter(tmp_path, "ep") as writer:
        writer.add(np.zeros((360, 640, 3), np.uint8), minerl_noop())
    with pytest.raises(FileExistsError, match=r"ep\.mp4: already exists"):
        EpisodeWriter(tmp_path, "ep")
    with pytest.raises(DemoFormatError, match="640x360"):
        with EpisodeWriter(tmp_path, "small") as writer:
            writer.add(np.zeros((128, 128, 3), np.uint8), minerl_noop())
    assert not (tmp_path / "small.mp4").exists() and not (tmp_path / "small.jsonl").exists()


def test_record_scripted_expert_round_trip(tmp_path):
    summaries = record_episodes(
        "vpt_rl/VoxelTreechop-v0",
        2,
        tmp_path,
        max_steps=40,
        noise=0.2,
        seed=3,
        env_kwargs={"max_episode_steps": 60},
    )
    assert [s.name for s in summaries] == ["expert-s000003", "expert-s000004"]
    for summary in summaries:
        assert summary.steps == 40
        ep = read_episode(tmp_path / summary.name, img_size=(32, 32), drop_null=False)
        assert ep.n_lines == 40 and ep.frames_thwc.shape == (40, 32, 32, 3)
        assert list(zip(ep.buttons_t.tolist(), ep.camera_t.tolist())) == summary.actions
        kept = read_episode(tmp_path / summary.name, img_size=(32, 32), drop_null=True)
        assert len(kept) <= 40 and all(
            summary.actions[i] == (b, c) for i, b, c in zip(kept.kept_t, kept.buttons_t, kept.camera_t)
        )


def test_record_cli_sighted_flag_reaches_the_expert(tmp_path, monkeypatch):
    """`vpt-rl record --sighted` records the sighted demonstrator (and only with the flag)."""
    import vpt_rl.envs.voxel as voxel
    from vpt_rl.cli import main

    seen = []
    real = voxel.scripted_policy

    def spy(env, noise=0.0, seed=None, sighted=False):
        seen.append(sighted)
        return real(env, noise=noise, seed=seed, sighted=sighted)

    monkeypatch.setattr(voxel, "scripted_policy", spy)
    for flag, out in ((["--sighted"], "a"), ([], "b")):
        args = ["record", "--episodes", "1", "--out", str(tmp_path / out), "--max-steps", "3", *flag]
        assert main(args) == 0
    assert seen == [True, False]


def test_record_dart_labels_keep_the_trajectory_and_relabel_the_noise(tmp_path):
    """--dart: the same episode (same frames, same return), the noise frames labelled with the
    expert's own action."""
    kw = dict(max_steps=60, noise=0.3, seed=2, env_kwargs={"max_episode_steps": 60})
    plain = record_episodes("vpt_rl/VoxelTreechop-v0", 1, tmp_path / "plain", **kw)[0]
    dart = record_episodes("vpt_rl/VoxelTreechop-v0", 1, tmp_path / "dart", dart=True, **kw)[0]
    assert dart.total_reward == plain.total_reward and dart.steps == plain.steps
    differ = sum(a != b for a, b in zip(dart.actions, plain.actions))
    assert 0 < differ < dart.steps
    ep = read_episode(tmp_path / "dart" / dart.name, img_size=(32, 32), drop_null=False)
    assert list(zip(ep.buttons_t.tolist(), ep.camera_t.tolist())) == dart.actions


def test_dagger_recording_labels_driven_states_with_the_expert(tmp_path):
    """--driver: beta=1 executes the expert (the plain recording, exactly); beta=0
    executes the driver's actions, and the file holds the expert's labels for those states."""
    from vpt_rl.cli import main
    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.vpt_config import VPTConfig
    from vpt_rl.model.weights import save_weights

    weights = save_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False), tmp_path / "bc.weights")
    common = ["record", "--episodes", "1", "--max-steps", "30", "--seed", "5", "--sighted"]
    assert main([*common, "--out", str(tmp_path / "plain"), "--noise", "0"]) == 0
    assert main([*common, "--out", str(tmp_path / "b1"), "--driver", str(weights), "--beta", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "b0"), "--driver", str(weights)]) == 0
    name = "expert-s000005.jsonl"
    assert (tmp_path / "b1" / name).read_text() == (tmp_path / "plain" / name).read_text()
    driven = read_episode(tmp_path / "b0" / "expert-s000005", img_size=(32, 32), drop_null=False)
    plain = read_episode(tmp_path / "plain" / "expert-s000005", img_size=(32, 32), drop_null=False)
    assert driven.n_lines == 30 and not np.array_equal(driven.frames_thwc, plain.frames_thwc)


def test_dagger_with_noise_labels_with_the_noisy_demonstrator(tmp_path):
    """--driver with --noise: the labeller is the same stochastic expert as a plain recording with
    that noise (beta=1 reproduces it exactly); at beta=0 the noise shows in the labels only."""
    from vpt_rl.cli import main
    from vpt_rl.model.policy import VPTPolicy
    from vpt_rl.model.vpt_config import VPTConfig
    from vpt_rl.model.weights import save_weights

    weights = save_weights(VPTPolicy(VPTConfig.preset("tiny"), aux_value_head=False), tmp_path / "bc.weights")
    common = ["record", "--episodes", "1", "--max-steps", "40", "--seed", "3", "--sighted", "--noise", "0.3"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "b1"), "--driver", str(weights), "--beta", "1"]) == 0
    name = "expert-s000003.jsonl"
    assert (tmp_path / "b1" / name).read_text() == (tmp_path / "plain" / name).read_text()
    # --dart keeps its labels under a driver (the expert's intended action on its noise steps)
    assert main([*common, "--out", str(tmp_path / "dart"), "--dart"]) == 0
    assert (
        main([*common, "--out", str(tmp_path / "dart_b1"), "--dart", "--driver", str(weights), "--beta", "1"])
        == 0
    )
    assert (tmp_path / "dart_b1" / name).read_text() == (tmp_path / "dart" / name).read_text()
    assert (tmp_path / "dart" / name).read_text() != (tmp_path / "plain" / name).read_text()
    quiet = ["record", "--episodes", "1", "--max-steps", "40", "--seed", "3", "--sighted", "--noise", "0"]
    assert main([*quiet, "--out", str(tmp_path / "quiet"), "--driver", str(weights)]) == 0
    assert main([*common, "--out", str(tmp_path / "noisy"), "--driver", str(weights)]) == 0
    # the driver's trajectory is the same (its own seed), only the labels carry the noise
    noisy = read_episode(tmp_path / "noisy" / "expert-s000003", img_size=(32, 32), drop_null=False)
    quiet_ep = read_episode(tmp_path / "quiet" / "expert-s000003", img_size=(32, 32), drop_null=False)
    assert np.abs(noisy.frames_thwc.astype(int) - quiet_ep.frames_thwc.astype(int)).max() <= 8
    assert (tmp_path / "noisy" / name).read_text() != (tmp_path / "quiet" / name).read_text()


def test_record_rejects_a_missing_driver(tmp_path):
    from vpt_rl.cli import main

    args = [
        "record",
        "--episodes",
        "1",
        "--out",
        str(tmp_path / "x"),
        "--driver",
        str(tmp_path / "no.weights"),
    ]
    assert main(args) == 2
