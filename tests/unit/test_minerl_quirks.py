"""MineRL 1.0.2 as it is: the quirks of its own code that the double (tests/doubles/fake_minerl)
reproduces, and how our adapter (vpt_rl/envs/minerl.py) handles each (docs/minerl_facts.md). The
adapter's conversions and checks are in test_minerl_adapter.py.

Real MineRL needs JDK 8, a Minecraft build and a display, so it is not exercised here.
"""

from __future__ import annotations

import minerl_helpers  # tests/unit, on sys.path under pytest's default import mode
import numpy as np
import pytest

from vpt_rl.envs.actions import minerl_noop
from vpt_rl.envs.minerl import INSTALL_HELP, MineRLEnv, make_minerl_env

fake_minerl = minerl_helpers.fake_minerl  # the fixture, for the tests below

SHOVEL = "MineRLObtainDiamondShovel-v0"


def _run_episode(env, action=None, max_steps=100) -> tuple[int, bool, bool]:
    """Steps until the episode ends: (length, terminated, truncated)."""
    for t in range(1, max_steps + 1):
        _, _, terminated, truncated, _ = env.step(action or {})
        if terminated or truncated:
            return t, terminated, truncated
    raise AssertionError(f"no episode end within {max_steps} steps")


def test_obtain_diamond_shovel_episodes_after_the_first_are_full_length(fake_minerl, monkeypatch):
    """Regression: the adapter zeroes the wrapper's counter at every reset; before, the second
    and later episodes on one env object were 1 step long and reported as terminated."""
    env = minerl_helpers.short_task(monkeypatch, "MineRLObtainDiamondShovel-v0", 3)
    try:
        for seed in (0, None, None):
            env.reset(seed=seed)
            assert _run_episode(env) == (3, False, True)
    finally:
        env.close()


def test_a_missing_shovel_step_counter_warns_and_a_stale_one_fails_loudly(fake_minerl, monkeypatch):
    import gym
    import minerl  # noqa: F401 -- registers the ids

    raw = gym.make("MineRLBasaltFindCave-v0")  # a wrapper chain without ObtainDiamondShovel's counter
    with pytest.warns(RuntimeWarning, match="num_steps"):
        MineRLEnv(raw, "MineRLObtainDiamondShovel-v0", max_episode_steps=None)
    # with the counter left alone, the stale end is not taken for a termination
    env = minerl_helpers.short_task(monkeypatch, "MineRLObtainDiamondShovel-v0", 3)
    monkeypatch.setattr(env, "_step_counter", None)
    try:
        env.reset(seed=0)
        assert _run_episode(env) == (3, False, True)
        env.reset()
        with pytest.raises(RuntimeError, match="no reason the adapter knows"):
            env.step({})
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["MineRLHumanSurvival-v0", "MineRLBasaltFindCave-v0", SHOVEL])
@pytest.mark.parametrize("on_limit_step", [False, True])
def test_death_terminates_even_on_the_limit_step(fake_minerl, monkeypatch, env_id, on_limit_step):
    if env_id == "MineRLHumanSurvival-v0":
        env = make_minerl_env(env_id, max_episode_steps=3)
    else:
        env = minerl_helpers.short_task(monkeypatch, env_id, 3)
    try:
        env.reset(seed=0)
        env.step({})
        if on_limit_step:
            env.step({})
        env.raw_env.unwrapped.die()
        _, reward, terminated, truncated, _ = env.step({})
        assert (terminated, truncated) == (True, False)
        with pytest.raises(RuntimeError, match="Attempted to step an environment server with done=True"):
            env.raw_env.unwrapped.step(minerl_noop())  # what real MineRL does after a death
        env.reset()
        assert _run_episode(env) == (3, False, True)  # the next episode is whole
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["MineRLHumanSurvival-v0", "MineRLBasaltFindCave-v0", SHOVEL])
def test_the_adapter_never_steps_minerl_after_done(fake_minerl, monkeypatch, env_id):
    """Real MineRL raises RuntimeError on a step after done (the double too); the adapter refuses
    such a step itself, before MineRL sees it, and never makes one of its own."""
    if env_id == "MineRLHumanSurvival-v0":
        env = make_minerl_env(env_id, max_episode_steps=3)
    else:
        env = minerl_helpers.short_task(monkeypatch, env_id, 3)
    raw = env.raw_env.unwrapped
    try:
        with pytest.raises(RuntimeError, match="reset"):
            env.step({})  # before the first reset
        assert raw.actions == []
        ends = []
        for episode in range(4):  # the limit, a death, the limit, the task's own end
            env.reset(seed=episode)
            if episode == 1:
                raw.die()
            if episode == 3:
                raw.give("diamond_shovel") if env_id == SHOVEL else raw.die()
            action = {"ESC": 1} if episode == 3 and "Basalt" in env_id else {}
            ends.append(_run_episode(env, action))
            sent = len(raw.actions)
            with pytest.raises(RuntimeError, match="reset before stepping"):
                env.step({})
            assert len(raw.actions) == sent  # refused by the adapter: MineRL never saw it
        assert ends == [(3, False, True), (1, True, False), (3, False, True), (1, True, False)]
    finally:
        env.close()


def test_building_an_env_launches_nothing_until_the_first_reset(fake_minerl):
    env = make_minerl_env("MineRLHumanSurvival-v0")
    raw = env.raw_env.unwrapped
    assert raw.instances == []  # no Minecraft yet
    env.reset(seed=0)
    assert len(raw.instances) == 1 and raw.instances[0].running
    env.reset(seed=1)
    assert len(raw.instances) == 1  # one client per env, reused
    env.close()
    assert not raw.instances[0].running


def test_seed_must_be_a_python_int_in_minerl_the_adapter_converts(fake_minerl):
    env = make_minerl_env("MineRLHumanSurvival-v0", inventory=False)
    try:
        with pytest.raises(AssertionError, match="Seed must be an int"):
            env.raw_env.seed(np.int64(3))
        a, _ = env.reset(seed=np.int64(3))  # a numpy seed (e.g. from a seed sequence) works here
        assert env.raw_env.action_space.seeded_with == 3  # MineRL seeds its spaces too
        b, _ = env.reset(seed=3)
        np.testing.assert_array_equal(a["pov"], b["pov"])
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ["MineRLHumanSurvival-v0", "MineRLBasaltFindCave-v0", SHOVEL])
def test_info_is_location_stats_in_human_survival_and_empty_elsewhere(fake_minerl, env_id):
    env = make_minerl_env(env_id)
    try:
        env.reset(seed=0)
        info = env.step({})[4]
        if env_id == "MineRLHumanSurvival-v0":
            location = info["location_stats"]
            assert len(location) == 14 and {"pitch", "yaw", "xpos", "ypos", "zpos"} <= set(location)
            assert all(isinstance(v, np.ndarray) and v.shape == () for v in location.values())
        else:
            assert info == {}
    finally:
        env.close()


def test_minerl_reports_version_1_0_0_and_the_old_pypi_minerl_is_refused(fake_minerl, monkeypatch):
    from importlib import metadata

    assert metadata.version("minerl") == "1.0.0"  # a v1.0.2 build, as it reports itself
    make_minerl_env("MineRLHumanSurvival-v0").close()
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda n: "0.4.4" if n == "minerl" else real_version(n))
    with pytest.raises(ImportError, match="0.4.4") as info:
        make_minerl_env("MineRLHumanSurvival-v0")
    assert "git+https://github.com/minerllabs/minerl@v1.0.2" in str(info.value)


def test_unknown_or_ignored_spec_settings_are_errors_here(fake_minerl):
    """MineRL's EnvSpec drops keywords it does not know (a typo, or frameskip, which its Python
    never reads), so the adapter checks them."""
    from minerl.herobraine.env_specs.human_survival_specs import HumanSurvival

    HumanSurvival(fov_rnage=[90, 90], frameskip=4).make()  # MineRL says nothing
    with pytest.raises(ValueError, match="fov_rnage"):
        make_minerl_env("MineRLHumanSurvival-v0", fov_rnage=[70, 70])
    with pytest.raises(ValueError, match="frameskip"):
        make_minerl_env("MineRLHumanSurvival-v0", frameskip=4)
    make_minerl_env("MineRLHumanSurvival-v0", frameskip=1).close()


@pytest.mark.parametrize(("where", "error"), [("client", RuntimeError), ("server", TypeError)])
def test_lost_connections_raise_so_the_pool_restarts(fake_minerl, where, error):
    """MineRL answers a lost client socket with info["error"] (the adapter raises), and a lost
    server socket with a TypeError of its own (passed through): either way the worker fails and
    EnvPool restarts it, nothing is learned from the random observation."""
    env = make_minerl_env("MineRLHumanSurvival-v0")
    try:
        env.reset(seed=0)
        env.raw_env.unwrapped.break_connection(where)
        with pytest.raises(error):
            env.step({})
    finally:
        env.close()


def test_install_help_installs_jdk_8_before_minerl():
    """MineRL's install builds Minecraft with gradle: the JDK is needed at install time."""
    assert INSTALL_HELP.index("openjdk-8-jdk") < INSTALL_HELP.index("pip install git+")
    assert "install time" in INSTALL_HELP
