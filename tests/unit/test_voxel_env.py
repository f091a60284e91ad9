"""VoxelTreechop-v0: MineRL 1.0 spaces, check_env, determinism, exact state restore, world
generation guarantees, movement physics, block breaking, rewards and episode ends."""

from __future__ import annotations

import pickle
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vpt_rl  # noqa: F401 -- registers the env id
from vpt_rl.envs.actions import MINERL_ACTION_KEYS, policy_to_env
from vpt_rl.envs.voxel import VoxelTreechopEnv, physics
from vpt_rl.envs.voxel import world as W
from vpt_rl.envs.voxel.env import default_render_size

GROUND = 4  # top of the grass in the hand-made flat world


def _random_actions(n: int, seed: int) -> list[dict]:
    """Actions as the policy samples them: uniform over button and camera classes."""
    rng = np.random.default_rng(seed)
    return [policy_to_env(int(b), int(c)) for b, c in zip(rng.integers(0, 8641, n), rng.integers(0, 121, n))]


def _flat_env(**kwargs) -> VoxelTreechopEnv:
    """An env on a 16x16 grass plain (grass top at z = 4), agent at (9.5, 9.5) looking along +y."""
    env = VoxelTreechopEnv(pov_size=(16, 16), **kwargs)
    env.reset(seed=0)
    blocks = np.zeros((18, 18, 16), np.int8)
    blocks[:, :, 1 : GROUND - 1] = W.DIRT
    blocks[:, :, GROUND - 1] = W.GRASS
    blocks[:, :, 0] = W.BEDROCK
    blocks[0], blocks[-1], blocks[:, 0], blocks[:, -1] = (W.BARRIER,) * 4
    blocks[:, :, -1] = W.BARRIER
    env.world = W.VoxelWorld(blocks)
    env.agent = physics.Agent(
        np.array([9.5, 9.5, float(GROUND)]), np.zeros(3), yaw=0.0, pitch=0.0, on_ground=True
    )
    return env


def _put(env: VoxelTreechopEnv, block: int, *cells: tuple[int, int, int]) -> None:
    for cell in cells:
        env.world.set_block(*cell, block)


def _run(env: VoxelTreechopEnv, n: int, **keys) -> list[tuple]:
    return [env.step(dict(keys)) for _ in range(n)]


# --- spaces and API -------------------------------------------------------------------------------


def test_spaces_are_minerl_1_0() -> None:
    env = VoxelTreechopEnv(pov_size=(32, 32))
    assert set(env.action_space.spaces) == set(MINERL_ACTION_KEYS) and len(env.action_space.spaces) == 24
    camera = env.action_space["camera"]
    assert (
        camera.shape == (2,)
        and camera.dtype == np.float32
        and camera.low[0] == -180
        and camera.high[0] == 180
    )
    assert all(
        env.action_space[k] == gymnasium.spaces.Discrete(2) for k in MINERL_ACTION_KEYS if k != "camera"
    )
    pov = env.observation_space["pov"]
    assert pov.shape == (32, 32, 3) and pov.dtype == np.uint8
    inventory = env.observation_space["inventory"]
    assert {"oak_log", "birch_log", "dirt"} <= set(inventory.spaces)
    assert all(s.shape == () and s.dtype == np.int64 and s.high == 2304 for s in inventory.spaces.values())
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs) and info == {}


def test_check_env_and_registered_id() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3-style advice about the camera Box range
        check_env(VoxelTreechopEnv(pov_size=(32, 32)))
    env = gymnasium.make("vpt_rl/VoxelTreechop-v0", pov_size=(32, 32), max_episode_steps=5)
    obs, _ = env.reset(seed=0)
    assert obs["pov"].shape == (32, 32, 3)


@pytest.mark.parametrize(
    ("pov", "render"),
    [((360, 640), (72, 128)), ((128, 128), (128, 128)), ((32, 32), (32, 32)), ((256, 256), (64, 64))],
)
def test_render_size_defaults(pov: tuple[int, int], render: tuple[int, int]) -> None:
    """Large povs render at <= 72 rows and upscale; policy-size povs render directly."""
    assert default_render_size(pov) == render


def test_upscaled_pov_has_the_requested_size() -> None:
    env = VoxelTreechopEnv(render_size=(36, 64))
    obs, _ = env.reset(seed=2)
    assert obs["pov"].shape == (360, 640, 3) and obs["pov"].dtype == np.uint8
    # nearest-neighbour upscaling: 10x10 blocks of equal pixels away from the crosshair
    block = obs["pov"][0:10, 0:10].reshape(-1, 3)
    assert (block == block[0]).all()


def test_missing_keys_are_not_pressed_and_bad_actions_fail() -> None:
    env = _flat_env()
    start = env.agent.pos.copy()
    env.step({})
    np.testing.assert_allclose(env.agent.pos[:2], start[:2])
    with pytest.raises(ValueError, match="foward"):
        env.step({"foward": 1})
    with pytest.raises(ValueError, match="camera"):
        env.step({"camera": [1.0, 2.0, 3.0]})


# --- determinism and exact restore ----------------------------------------------------------------


def test_same_seed_same_episode_other_seed_other_world() -> None:
    actions = _random_actions(40, seed=3)
    runs = []
    for _ in range(2):
        env = VoxelTreechopEnv(pov_size=(24, 32))
        obs, _ = env.reset(seed=11)
        frames, rewards = [obs["pov"]], []
        for a in actions:
            obs, r, *_ = env.step(a)
            frames.append(obs["pov"])
            rewards.append(r)
        runs.append((np.stack(frames), rewards))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    other = VoxelTreechopEnv(pov_size=(24, 32))
    other.reset(seed=12)
    env.reset(seed=11)
    assert not np.array_equal(other.world.blocks, env.world.blocks)


def test_state_restore_is_bit_identical() -> None:
    kwargs = dict(pov_size=(24, 32), spawn_facing_tree=True, log_break_ticks=3)
    env = VoxelTreechopEnv(**kwargs)
    obs, _ = env.reset(seed=5)
    chop = {"attack": 1, "forward": 1}
    for a in _random_actions(15, seed=0) + [chop] * 30:
        obs, *_ = env.step(a)
    state = pickle.loads(pickle.dumps(env.get_state()))
    np.testing.assert_array_equal(env.render_obs()["pov"], obs["pov"])
    tail = _random_actions(20, seed=1) + [chop] * 40

    def play(e: VoxelTreechopEnv) -> list:
        out = []
        for a in tail:
            o, r, term, trunc, info = e.step(a)
            out.append(
                (o["pov"].copy(), {k: int(v) for k, v in o["inventory"].items()}, r, term, trunc, info)
            )
        e.reset()  # the next episode's world comes from the restored RNG
        out.append(e.world.blocks.copy())
        return out

    original = play(env)
    for target in (env, VoxelTreechopEnv(**kwargs)):
        target.set_state(state)
        restored_obs = target.render_obs()
        np.testing.assert_array_equal(restored_obs["pov"], obs["pov"])
        replay = play(target)
        for a, b in zip(original[:-1], replay[:-1]):
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1:] == b[1:]
        np.testing.assert_array_equal(original[-1], replay[-1])
    assert sum(step[2] for step in original[:-1]) > 0  # the replayed stretch breaks logs
    with pytest.raises(ValueError, match="version"):
        env.set_state({"blocks": None})


# --- world generation -----------------------------------------------------------------------------


def test_trunk_near_spawn_and_spawn_on_the_ground() -> None:
    params = W.WorldParams()
    near = 0
    for seed in range(50):
        world, trunks, spawn, _ = W.generate(np.random.default_rng(seed), params)
        logs = np.argwhere(np.isin(world.blocks, W.LOG_BLOCKS)) + 0.5
        dist = np.hypot(logs[:, 0] - spawn[0], logs[:, 1] - spawn[1]).min()
        near += dist <= 8.0
        below = world.blocks[int(spawn[0]), int(spawn[1]), int(spawn[2]) - 1]
        assert below != W.AIR, f"seed {seed}: spawn floats"
        assert not physics.body_overlaps(world.blocks, spawn), f"seed {seed}: spawn inside a block"
        assert len(trunks) >= 20
    assert near >= 45  # >= 90% of seeds (by construction: all of them)


def test_world_knobs() -> None:
    rng = np.random.default_rng(0)
    flat, *_ = W.generate(rng, W.WorldParams(terrain_amplitude=0.0, tree_density=0.0, trees_near_spawn=0))
    grass_top = [
        np.flatnonzero(col == W.GRASS)[0] for col in flat.blocks[1:-1, 1:-1].reshape(-1, flat.shape[2])
    ]
    assert len(set(grass_top)) == 1 and not np.isin(flat.blocks, W.LOG_BLOCKS).any()
    wide, trunks, *_ = W.generate(rng, W.WorldParams(trunk_width=2))
    t = trunks[0]
    assert (wide.blocks[t.x : t.x + 2, t.y : t.y + 2, t.z] == t.log).all()
    facing = 0
    for seed in range(20):  # the crosshair starts on a trunk (terrain may hide it now and then)
        world, _, spawn, yaw = W.generate(np.random.default_rng(seed), W.WorldParams(spawn_facing_tree=True))
        agent = physics.Agent(spawn, np.zeros(3), yaw, 0.0)
        hit = world.raycast(agent.eye, agent.view_dir, 10.0)
        facing += hit is not None and hit[1] in W.LOG_BLOCKS
    assert facing >= 16
    with pytest.raises(ValueError, match="trunk_width"):
        VoxelTreechopEnv(trunk_width=3)


# --- movement -------------------------------------------------------------------------------------


def test_walking_sprinting_sneaking_and_walls() -> None:
    env = _flat_env()
    _run(env, 10, forward=1)
    assert env.agent.pos[1] == pytest.approx(9.5 + 10 * physics.WALK_SPEED)
    assert env.agent.pos[0] == pytest.approx(9.5)
    y0 = env.agent.pos[1]
    _run(env, 5, forward=1, sprint=1)
    assert env.agent.pos[1] - y0 == pytest.approx(5 * physics.WALK_SPEED * physics.SPRINT_FACTOR)
    x0 = env.agent.pos[0]
    _run(env, 5, right=1, sneak=1)  # yaw 0 looks along +y, so right is +x
    assert env.agent.pos[0] - x0 == pytest.approx(5 * physics.WALK_SPEED * physics.SNEAK_FACTOR)
    _put(env, W.STONE, *[(x, 15, GROUND + dz) for x in range(1, 17) for dz in (0, 1)])
    _run(env, 40, forward=1)
    assert env.agent.pos[1] == pytest.approx(15 - physics.HALF_WIDTH, abs=1e-4)  # stopped by the wall


def test_gravity_jump_and_steps() -> None:
    env = _flat_env()
    env.agent.pos[2] = GROUND + 3.0
    env.agent.on_ground = False
    _run(env, 30)
    assert env.agent.pos[2] == pytest.approx(GROUND, abs=1e-4) and env.agent.on_ground
    peak = GROUND
    env.step({"jump": 1})
    for _ in range(15):
        env.step({})
        peak = max(peak, env.agent.pos[2])
    assert 1.1 < peak - GROUND < 1.3 and env.agent.on_ground  # Minecraft's ~1.25 block jump
    _put(env, W.DIRT, *[(x, y, GROUND) for x in range(1, 17) for y in range(11, 17)])  # a step up ahead
    _run(env, 20, forward=1)
    assert env.agent.pos[1] < 11  # blocked without jumping
    _run(env, 20, forward=1, jump=1)
    _run(env, 15)  # land
    assert env.agent.pos[1] > 11.5 and env.agent.pos[2] == pytest.approx(GROUND + 1, abs=1e-4)
    wall = _flat_env()
    _put(wall, W.DIRT, *[(x, 12, z) for x in range(1, 17) for z in (GROUND, GROUND + 1)])
    _run(wall, 40, forward=1, jump=1)
    assert wall.agent.pos[1] == pytest.approx(12 - physics.HALF_WIDTH, abs=1e-4)  # two blocks: too high


def test_camera_clamps_pitch_and_wraps_yaw() -> None:
    env = _flat_env()
    env.step({"camera": np.array([30.0, 170.0], np.float32)})
    assert env.agent.pitch == pytest.approx(30.0) and env.agent.yaw == pytest.approx(170.0)
    assert env.agent.view_dir[2] < 0  # positive pitch looks down
    _run(env, 5, camera=np.array([30.0, 20.0]))
    assert env.agent.pitch == 90.0 and env.agent.yaw == pytest.approx(-90.0)
    _run(env, 8, camera=np.array([-40.0, 0.0]))
    assert env.agent.pitch == -90.0


# --- breaking, inventory, reward, episode end -----------------------------------------------------


def test_log_breaks_after_its_ticks_and_pays_one() -> None:
    env = _flat_env(log_break_ticks=5)
    _put(env, W.OAK_LOG, (9, 12, GROUND + 1))  # at eye level, 2 blocks ahead (reach 4.5)
    results = _run(env, 4, attack=1)
    assert env.world.blocks[9, 12, GROUND + 1] == W.OAK_LOG and all(r[1] == 0 for r in results)
    obs, reward, term, trunc, info = env.step({"attack": 1})
    assert env.world.blocks[9, 12, GROUND + 1] == W.AIR
    assert reward == 1.0 and obs["inventory"]["oak_log"] == 1 and info == {"broken": "oak_log"}
    assert not term and not trunc


def test_break_progress_resets_on_release_unless_kept() -> None:
    for keep, broken in ((False, False), (True, True)):
        env = _flat_env(log_break_ticks=4, keep_break_progress=keep)
        _put(env, W.BIRCH_LOG, (9, 12, GROUND + 1))
        _run(env, 3, attack=1)
        env.step({})
        env.step({"attack": 1})
        assert (env.world.blocks[9, 12, GROUND + 1] == W.AIR) == broken
    assert env.inventory["birch_log"] == 1


def test_reach_other_blocks_and_custom_tables() -> None:
    env = _flat_env(log_break_ticks=2)
    _put(env, W.OAK_LOG, (9, 15, GROUND + 1))  # 5 blocks ahead: out of reach
    _run(env, 10, attack=1)
    assert env.world.blocks[9, 15, GROUND + 1] == W.OAK_LOG
    _put(env, W.OAK_LEAVES, (9, 11, GROUND + 1))
    _run(env, 2, attack=1)
    assert (
        env.world.blocks[9, 11, GROUND + 1] == W.AIR and env.inventory["oak_log"] == 0
    )  # leaves drop nothing
    _put(env, W.STONE, (9, 11, GROUND + 1))
    _run(env, 50, attack=1)
    assert env.world.blocks[9, 11, GROUND + 1] == W.STONE  # unbreakable by hand
    dig = _flat_env(reward_table={"dirt": 1.0}, break_ticks={"grass_block": 1})
    dig.step({"camera": np.array([90.0, 0.0])})  # look at the grass under the feet
    _, reward, *_ = dig.step({"attack": 1})
    assert reward == 1.0 and dig.inventory["dirt"] == 1
    with pytest.raises(ValueError, match="break_ticks"):
        VoxelTreechopEnv(break_ticks={"lava": 1})


def test_esc_terminates_and_step_limit_truncates() -> None:
    env = VoxelTreechopEnv(pov_size=(16, 16), max_episode_steps=3)
    env.reset(seed=0)
    assert env.step({"ESC": 1})[2:4] == (True, False)
    env.reset(seed=0)
    flags = [env.step({})[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
