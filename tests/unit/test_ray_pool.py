"""RayEnvPool on a local Ray: the env pool's contract (tests/unit/test_pool.py) over Ray actors:
same results as sequential envs, same-step autoreset, restart on raise / hang / actor death /
ray.kill, co-hosted envs, recycling, state, misuse, close; and the local-vs-Ray equivalence on the
voxel world. One Ray instance serves the whole module (start-up costs seconds)."""

from __future__ import annotations

import functools
import socket
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from doubles import fake_envs
from gymnasium.vector import AutoresetMode, SyncVectorEnv

ray = pytest.importorskip(
    "ray", reason="ray is not installed: the Ray backend is the optional extra vpt-rl[ray]"
)

from pool_helpers import (  # noqa: E402
    FAILED_START,
    RESET_TIMEOUT,
    STEP_TIMEOUT,
    N,
    assert_gives_up_after_failed_restarts,
    assert_restarts_in_flight,
    broken_on_rebuild,
    counting_envs,
    dies_in_flight,
    random_actions,
    wait_gone,
)

from vpt_rl.config.ppg import RayEnvConfig  # noqa: E402
from vpt_rl.envs.ray_pool import RayEnvPool  # noqa: E402

TESTS = str(Path(__file__).resolve().parents[1])  # actors import doubles.fake_envs from here


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": TESTS}},
        logging_level="WARNING",
    )
    yield
    ray.shutdown()


def _pool(fns, envs_per_actor: int = 1, **kwargs) -> RayEnvPool:
    kwargs.setdefault("step_timeout", STEP_TIMEOUT)
    kwargs.setdefault("reset_timeout", RESET_TIMEOUT)
    # fractional CPUs: a few actors share the 2 logical CPUs of this Ray
    return RayEnvPool(fns, RayEnvConfig(num_cpus=0.1, envs_per_actor=envs_per_actor), **kwargs)


def _alive(actor) -> bool:
    try:
        ray.get(actor.handle.kill_descendants.remote(), timeout=10)
        return True
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return False


def _assert_steps_equal(got, want) -> None:
    for g, w in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(
            g["img"] if isinstance(g, dict) else g, w["img"] if isinstance(w, dict) else w
        )
    infos, ref = got[4], want[4]
    np.testing.assert_array_equal(infos["t"], ref["t"])
    assert ("_final_obs" in infos) == ("_final_obs" in ref)
    if "_final_obs" in infos:
        np.testing.assert_array_equal(infos["_final_obs"], ref["_final_obs"])
        for i in np.flatnonzero(infos["_final_obs"]):
            np.testing.assert_array_equal(infos["final_obs"][i]["img"], ref["final_obs"][i]["img"])
            assert infos["final_info"][i]["t"] == ref["final_info"]["t"][i]


def test_ray_pool_equals_sequential_envs_with_same_step_autoreset():
    """Two envs per actor here; one per actor is compared with sequential envs in the fault test."""
    envs_per_actor = 2
    pool = _pool(counting_envs(), envs_per_actor)
    reference = SyncVectorEnv(counting_envs(), autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        assert pool.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert pool.observation_space == reference.observation_space
        assert pool.action_space == reference.action_space
        obs, infos = pool.reset(seed=11)
        ref_obs, ref_infos = reference.reset(seed=11)
        np.testing.assert_array_equal(obs["img"], ref_obs["img"])
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(12):
            actions = random_actions(rng)
            got = pool.step(actions)
            _assert_steps_equal(got, reference.step(actions))
            ended += int(got[4].get("_final_obs", np.zeros(N)).sum())
            assert "_restarted" not in got[4]
        assert ended >= 5 and pool.restarts == 0
        assert len({id(a) for a in pool._actors}) == -(-N // envs_per_actor)
    finally:
        pool.close()
        reference.close()


def _kill_actor(pool: RayEnvPool, env: int) -> None:
    """ray.kill the actor of `env` and wait until it is dead (ray.kill itself does not wait)."""
    actor = pool._actors[pool._home[env][0]]
    ray.kill(actor.handle, no_restart=True)
    deadline = time.monotonic() + 20
    while _alive(actor) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("fail_mode", "step_timeout", "reason"),
    [
        ("raise", STEP_TIMEOUT, "exception: ValueError: boom at step 3"),
        ("spawn_child_and_hang", 1.0, "timeout after 1 s"),
        ("exit", STEP_TIMEOUT, "actor died (ActorDiedError"),
        ("ray.kill", STEP_TIMEOUT, "actor died (ActorDiedError"),
    ],
)
def test_failing_env_is_restarted_and_reported(fail_mode, step_timeout, reason, tmp_path):
    """tests/unit/test_pool.py's fault test, plus ray.kill of the actor; the hung env has a child
    process (like MineRL's Java client), which must die with its actor."""
    pid_file = tmp_path / "child.pid"
    failing = {"fail_mode": fail_mode, "fail_at": 3} if fail_mode != "ray.kill" else {}
    fns = [
        functools.partial(fake_envs.make_counting, episode_len=4),
        functools.partial(fake_envs.make_counting, episode_len=50, **failing),
    ]
    runtime_env = {"env_vars": {"FAKE_ENV_CHILD_PID_FILE": str(pid_file), "PYTHONPATH": TESTS}}
    pool = _pool(fns, step_timeout=step_timeout, runtime_env=runtime_env)
    reference = SyncVectorEnv(fns[:1], autoreset_mode=AutoresetMode.SAME_STEP)
    old = pool._actors[1]
    try:
        pool.reset(seed=5)
        reference.reset(seed=5)
        rng = np.random.default_rng(1)
        last_good = None
        for step in range(1, 6):
            actions = random_actions(rng, 2)
            if fail_mode == "ray.kill" and step == 3:
                _kill_actor(pool, 1)
            start = time.monotonic()
            obs, reward, terminated, truncated, infos = pool.step(actions)
            took = time.monotonic() - start
            ref = reference.step({k: v[:1] for k, v in actions.items()})
            np.testing.assert_array_equal(obs["img"][:1], ref[0]["img"])  # the other env: unaffected
            np.testing.assert_array_equal(reward[:1], ref[1])
            if step == 3:
                assert truncated[1] and not terminated[1] and reward[1] == 0.0
                assert infos["_restarted"].tolist() == [False, True]
                assert infos["restarted"][1].startswith(reason), infos["restarted"][1]
                np.testing.assert_array_equal(infos["final_obs"][1]["img"], last_good)
                assert infos["t"][1] == 0 and pool.restarts == 1
                assert took < 30, f"a failed actor blocked step for {took:.1f} s"
            else:
                assert "_restarted" not in infos and not truncated[1]
            last_good = obs["img"][1].copy()
        assert pool._actors[1] is not old and not _alive(old) and pool._actors[0] is not None
        if fail_mode == "spawn_child_and_hang":
            child = int(pid_file.read_text())
            assert wait_gone(child, 10), "the env's own child process (like MineRL's Java) survived its actor"
    finally:
        pool.close()
        reference.close()


def test_envs_sharing_an_actor_restart_with_it_and_report_it_at_their_next_step():
    fns = counting_envs()
    fns[1] = functools.partial(fake_envs.make_counting, episode_len=50, fail_mode="raise", fail_at=2)
    pool = _pool(fns, envs_per_actor=3)
    try:
        pool.reset(seed=0)
        rng = np.random.default_rng(0)
        pool.step(random_actions(rng))
        _, reward, _, trunc, infos = pool.step(random_actions(rng))  # env 1 raises; envs 0, 2 stepped fine
        assert trunc.tolist() == [False, True, False] and infos["_restarted"].tolist() == [False, True, False]
        assert reward[0] != 0 and reward[1] == 0
        _, reward, _, trunc, infos = pool.step(random_actions(rng))  # their actor was replaced under them
        assert trunc.tolist() == [True, False, True] and infos["_restarted"].tolist() == [True, False, True]
        assert infos["restarted"][0].endswith("(another env of its actor)") and reward[[0, 2]].tolist() == [
            0,
            0,
        ]
        assert infos["t"].tolist() == [0, 1, 0] and pool.restarts == 3
    finally:
        pool.close()


def test_repeated_restart_failure_raises_instead_of_looping(tmp_path):
    pool = _pool(broken_on_rebuild(tmp_path), max_restart_attempts=2)
    try:
        assert_gives_up_after_failed_restarts(pool, attempts=2)
    finally:
        pool.close()


def test_failing_constructor_raises_at_creation():
    with pytest.raises(RuntimeError, match=FAILED_START):
        _pool([fake_envs.make_counting, fake_envs.make_failing_constructor], envs_per_actor=2)


def test_get_state_set_state_restores_exactly():
    fns = [functools.partial(fake_envs.make_stateful, episode_len=6 + i) for i in range(2)]
    pool = _pool(fns, envs_per_actor=2)
    try:
        assert pool.supports_state
        pool.reset(seed=9)
        rng = np.random.default_rng(2)
        for _ in range(3):
            obs, *_ = pool.step(random_actions(rng, 2))
        states = pool.get_state()
        actions = [random_actions(rng, 2) for _ in range(5)]
        first = [pool.step(a) for a in actions]
        np.testing.assert_array_equal(pool.set_state(states)["img"], obs["img"])
        for a, b in zip(first, [pool.step(a) for a in actions]):
            for x, y in zip(a[:3], b[:3]):
                np.testing.assert_array_equal(
                    x["img"] if isinstance(x, dict) else x, y["img"] if isinstance(y, dict) else y
                )
    finally:
        pool.close()


@pytest.mark.parametrize("envs_per_actor", [1, 2])
def test_max_worker_steps_recycles_at_episode_end_only(envs_per_actor):
    pool = _pool(counting_envs(2), envs_per_actor, max_worker_steps=2)  # episodes of 4 and 5 steps
    try:
        pool.reset(seed=0)
        actors = list(pool._actors)
        zeros = {"buttons": np.zeros(2, np.int64), "camera": np.zeros(2, np.int64)}
        for _ in range(3):
            _, _, terminated, truncated, _ = pool.step(zeros)
            assert not terminated.any() and not truncated.any()
        _, _, terminated, truncated, infos = pool.step(zeros)  # env 0's episode ends at step 4
        assert terminated.tolist() == [True, False] and not truncated.any()
        assert infos["_final_obs"].tolist() == [True, False] and infos["t"].tolist() == [0, 4]
        assert "_restarted" not in infos and pool.recycles == 1 and pool.restarts == 0
        assert pool._steps == [0, 4]
        if envs_per_actor == 1:  # a fresh actor (process) for env 0, the other untouched
            assert pool._actors[0] is not actors[0] and pool._actors[1] is actors[1] and not _alive(actors[0])
        else:  # rebuilt inside the shared actor, whose other env keeps its episode
            assert pool._actors[0] is actors[0]
    finally:
        pool.close()


def test_stepping_groups_with_step_send_and_recv_equals_stepping_all():
    """Groups that split an actor's envs, and one call received in two parts."""
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    full, split = _pool(counting_envs(4), 4), _pool(counting_envs(4), 3)
    try:
        full.reset(seed=3)
        split.reset(seed=3)
        for step in range(12):
            actions = random_actions(rng_a, 4)
            assert random_actions(rng_b, 4)["buttons"].tolist() == actions["buttons"].tolist()
            obs, rew, term, trunc, infos = full.step(actions)
            groups = [[0, 1], [2, 3]]
            if step % 2:  # one send for all, received in two parts
                split.step_send(actions)
            else:
                for rows in groups:
                    split.step_send({k: v[rows] for k, v in actions.items()}, rows)
            for rows in reversed(groups):
                g_obs, g_rew, g_term, g_trunc, g_infos = split.step_recv(rows)
                assert np.array_equal(g_obs["img"], obs["img"][rows])
                assert np.array_equal(g_rew, rew[rows]) and np.array_equal(g_term, term[rows])
                assert np.array_equal(g_trunc, trunc[rows]) and np.array_equal(g_infos["t"], infos["t"][rows])
    finally:
        full.close()
        split.close()


def test_misuse_unsupported_state_and_close():
    """Misuse errors as EnvPool's, get_state without env support, and close(): idempotent, the
    actors gone (one actor hosting both envs, a second pool never reset)."""
    pool = _pool(counting_envs(2), envs_per_actor=2)
    fresh = _pool(counting_envs(1))
    actors = [pool._actors[0], fresh._actors[0]]
    try:
        with pytest.raises(RuntimeError, match="before reset"):
            fresh.step({"buttons": np.zeros(1, np.int64), "camera": np.zeros(1, np.int64)})
        pool.reset(seed=0)
        with pytest.raises(RuntimeError, match="no step was sent to envs \\[1\\]"):
            pool.step_recv([1])
        pool.step_send({"buttons": np.array([1]), "camera": np.array([0])}, [0])
        with pytest.raises(RuntimeError, match="envs \\[0\\] still have a step in flight"):
            pool.step_send({"buttons": np.array([1]), "camera": np.array([0])}, [0])
        with pytest.raises(RuntimeError, match="reset: envs \\[0\\] have a step in flight"):
            pool.reset(seed=0)
        pool.step_recv([0])
        pool.step(random_actions(np.random.default_rng(0), 2))
        assert not pool.supports_state and pool.get_state() == [None, None]
        with pytest.raises(ValueError, match="env 0 has no state to restore"):
            pool.set_state([None, None])
        assert all(_alive(a) for a in actors)
    finally:
        pool.close()
        pool.close()
        fresh.close()
    assert pool.closed and not any(_alive(a) for a in actors)
    with pytest.raises(RuntimeError, match="closed"):
        pool.reset()


def test_an_actor_that_dies_while_its_group_is_in_flight_is_restarted():
    pool = _pool(dies_in_flight(), envs_per_actor=2)  # actors: envs [0, 1] and [2]
    try:
        assert_restarts_in_flight(pool)
    finally:
        pool.close()


def test_voxel_world_rollouts_equal_the_local_pool_exactly():
    """Same seeds, same fixed actions: observations, rewards, flags and final_obs are identical
    through the local EnvPool and the Ray backend (3 envs, 2 per actor, 300 steps, episodes end)."""
    from vpt_rl.envs.factory import make_env_fns
    from vpt_rl.envs.pool import EnvPool

    fns = make_env_fns("vpt_rl/VoxelTreechop-v0", 3, (64, 64), {"max_episode_steps": 40}, None)
    local = EnvPool(fns, step_timeout=STEP_TIMEOUT, reset_timeout=RESET_TIMEOUT)
    remote = _pool(fns, envs_per_actor=2)
    try:
        np.testing.assert_array_equal(local.reset(seed=7)[0]["img"], remote.reset(seed=7)[0]["img"])
        rng = np.random.default_rng(0)
        ends = 0
        for _ in range(300):
            actions = {"buttons": rng.integers(0, 8641, 3), "camera": rng.integers(0, 121, 3)}
            want, got = local.step(actions), remote.step(actions)
            for g, w in zip(got[:4], want[:4]):
                np.testing.assert_array_equal(
                    g["img"] if isinstance(g, dict) else g, w["img"] if isinstance(w, dict) else w
                )
            assert ("_final_obs" in got[4]) == ("_final_obs" in want[4])
            if "_final_obs" in want[4]:
                for i in np.flatnonzero(want[4]["_final_obs"]):
                    ends += 1
                    np.testing.assert_array_equal(
                        got[4]["final_obs"][i]["img"], want[4]["final_obs"][i]["img"]
                    )
        assert ends >= 15 and local.restarts == remote.restarts == 0
        states = remote.get_state()
        np.testing.assert_array_equal(
            local.set_state(states)["img"], remote.set_state(local.get_state())["img"]
        )
    finally:
        local.close()
        remote.close()


def test_missing_ray_and_unreachable_cluster_errors_say_what_to_do(monkeypatch):
    from vpt_rl.envs import ray_pool

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    not_connected = types.SimpleNamespace(is_initialized=lambda: False, init=ray.init)
    with pytest.raises(
        ConnectionError, match=rf"Ray cluster at env.ray.address='{address}'.*ray start --head"
    ):
        ray_pool.connect(not_connected, address)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"'):
        ray_pool.import_ray()
