"""MineRL 1.0 as a gymnasium env (facts: /work/shared/minerl/FACTS.md).

MineRL 1.0 is optional and heavy (JDK 8, a Minecraft build, a display): ``minerl`` and the old
``gym`` it runs on are imported only inside the functions here (DESIGN.md style 10), and this
path is not exercised by CI; the tests drive a faithful double of the API instead.

- ``MineRLHumanSurvival-v0`` is built as the VPT agent builds it,
  ``HumanSurvival(**VPT_ENV_KWARGS).make()``; the BASALT tasks and
  ``MineRLObtainDiamondShovel-v0`` come from the old ``gym.make`` (their settings are fixed by
  their registration).
- The old 4-tuple step becomes gymnasium's 5-tuple with explicit truncation: an own step counter
  with each task's step limit (HumanSurvival has none unless `max_episode_steps` is given), and
  old gym's ``info["TimeLimit.truncated"]`` read as truncation, never termination.
- A settings check like the official agent's ``validate_env`` runs on every env built, since a
  policy fed frames at another FOV, gamma, GUI scale, resolution or cursor size silently
  underperforms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from vpt_rl.envs.actions import MINERL_ACTION_KEYS, minerl_action_space, minerl_noop

#: The env settings the VPT agent uses (FACTS.md "How VPT creates and drives it").
VPT_ENV_KWARGS: dict[str, Any] = {
    "fov_range": [70, 70],
    "frameskip": 1,
    "gamma_range": [2, 2],
    "guiscale_range": [1, 1],
    "resolution": [640, 360],
    "cursor_size_range": [16.0, 16.0],
}
HUMAN_SURVIVAL_ID = "MineRLHumanSurvival-v0"
#: Step limits of the fixed tasks (FACTS.md "Spaces").
STEP_LIMITS: dict[str, int] = {
    "MineRLBasaltFindCave-v0": 3600,
    "MineRLBasaltMakeWaterfall-v0": 6000,
    "MineRLBasaltCreateVillageAnimalPen-v0": 6000,
    "MineRLBasaltBuildVillageHouse-v0": 14400,
    "MineRLObtainDiamondShovel-v0": 18000,
}
SUPPORTED_IDS: tuple[str, ...] = (HUMAN_SURVIVAL_ID, *STEP_LIMITS)
INVENTORY_MAX = 2304  # MineRL's inventory Box(0, 2304, ())

INSTALL_HELP = (
    "MineRL 1.0 is not installed (PyPI's `minerl` is the older, incompatible 0.4.4). Install it with "
    "`pip install git+https://github.com/minerllabs/minerl@v1.0.2` (it builds Minecraft with gradle "
    "at install time, so it needs network access); it needs JDK 8 at run time (e.g. "
    "`apt install openjdk-8-jdk`) and a display, or xvfb (`xvfb-run -a python train_ppo.py ...`). "
    "Without MineRL, use the built-in voxel world `vpt_rl/VoxelTreechop-v0`."
)


class MineRLSettingsError(ValueError):
    """The MineRL env does not have the settings the VPT policies were trained with."""


def default_reward_table(env_id: str) -> str | None:
    """The item reward a training env gets when none is configured: HumanSurvival has no reward
    of its own (and MineRL 1.0's handlers return 0, minerl #742), so it gets VPT's diamond table."""
    return "vpt_diamond" if env_id == HUMAN_SURVIVAL_ID else None


def _import_minerl() -> Any:
    try:
        import minerl
    except ImportError as exc:
        raise ImportError(INSTALL_HELP) from exc
    return minerl


def make_minerl_env(
    env_id: str,
    *,
    max_episode_steps: int | None = None,
    inventory: bool | None = None,
    check_settings: bool = True,
    **spec_kwargs: Any,
) -> MineRLEnv:
    """Build a MineRL 1.0 env as a gymnasium env.

    Args:
        env_id: one of `SUPPORTED_IDS`.
        max_episode_steps: truncate after this many steps; default: the task's limit
            (`STEP_LIMITS`), none for HumanSurvival.
        inventory: observe ``inventory`` beside ``pov``; default: when the task has it.
        check_settings: run `check_settings` (raises `MineRLSettingsError`).
        spec_kwargs: HumanSurvival only: overrides of `VPT_ENV_KWARGS`.
    """
    if env_id not in SUPPORTED_IDS:
        raise ValueError(f"unsupported MineRL env id {env_id!r}; supported: {list(SUPPORTED_IDS)}")
    _import_minerl()  # also registers MineRL's ids with the old gym
    if env_id == HUMAN_SURVIVAL_ID:
        from minerl.herobraine.env_specs.human_survival_specs import HumanSurvival

        raw = HumanSurvival(**{**VPT_ENV_KWARGS, **spec_kwargs}).make()
    else:
        if spec_kwargs:
            raise ValueError(
                f"{env_id} takes no env settings (they are fixed by its registration); got {sorted(spec_kwargs)}"
            )
        import gym  # the old gym that MineRL 1.0 runs on

        raw = gym.make(env_id)
        if max_episode_steps is None:
            max_episode_steps = STEP_LIMITS[env_id]
    try:
        return MineRLEnv(raw, env_id, max_episode_steps, inventory, check_settings)
    except BaseException:
        raw.close()  # it launched a Minecraft client
        raise


def check_settings(raw_env: Any, expected: Mapping[str, Any] | None = None) -> None:
    """Raise `MineRLSettingsError` naming the first setting that differs from VPT's: fov, gamma,
    GUI scale, resolution, cursor size (on ``env.task``, the env spec), and the action space,
    which must be exactly MineRL 1.0's 24 keys. ``frameskip`` is not stored on the spec, so it
    is not checked (as in the official agent)."""
    expected = dict(VPT_ENV_KWARGS if expected is None else expected)
    expected.pop("frameskip", None)
    task = getattr(getattr(raw_env, "unwrapped", raw_env), "task", None)
    if task is None:
        raise MineRLSettingsError(
            f"cannot check the MineRL env settings: {raw_env!r} has no `.task` env spec"
        )
    for name, want in expected.items():
        if not hasattr(task, name):
            raise MineRLSettingsError(f"MineRL env spec {type(task).__name__} has no setting {name!r}")
        got = getattr(task, name)
        if [float(v) for v in got] != [float(v) for v in want]:
            raise MineRLSettingsError(
                f"MineRL env setting {name} is {list(got)}, but the VPT policies need {list(want)}"
            )
    _check_action_space(raw_env.action_space)


def _check_action_space(action_space: Any) -> None:
    names = set(getattr(action_space, "spaces", {}))
    if names != set(MINERL_ACTION_KEYS):
        missing, extra = sorted(set(MINERL_ACTION_KEYS) - names), sorted(names - set(MINERL_ACTION_KEYS))
        raise MineRLSettingsError(
            f"MineRL action space must have exactly the 24 keys {list(MINERL_ACTION_KEYS)}; "
            f"missing {missing}, unexpected {extra}"
        )
    for name, space in action_space.spaces.items():
        if name == "camera":
            ok = tuple(space.shape) == (2,) and np.all(space.low == -180) and np.all(space.high == 180)
            want = "Box(-180, 180, (2,))"
        else:
            ok = getattr(space, "n", None) == 2
            want = "Discrete(2)"
        if not ok:
            raise MineRLSettingsError(f"MineRL action {name!r} must be {want}, got {space}")


class MineRLEnv(gymnasium.Env):
    """Gymnasium view of an old-gym MineRL 1.0 env (see the module docstring).

    Observations: ``pov`` uint8 (H, W, 3), plus ``inventory`` (item -> int64 count) if asked;
    other MineRL observations are dropped. Actions: MineRL's 24-key dict; missing keys are not
    pressed (filled with no-ops before reaching MineRL).

    Seeding: MineRL 1.0's ``reset`` takes no seed. ``reset(seed=s)`` calls the env's
    ``seed(s)`` (MineRL's old-gym method, which must come before ``reset``) and seeds this
    wrapper's ``np_random``; Minecraft itself is not deterministic (server timing, mobs), so a
    seed does not replay an episode.
    """

    metadata: dict[str, Any] = {"render_modes": [], "render_fps": 20}

    def __init__(
        self,
        raw_env: Any,
        env_id: str,
        max_episode_steps: int | None = None,
        inventory: bool | None = None,
        check: bool = True,
    ) -> None:
        if check:
            check_settings(raw_env)
        self.raw_env, self.env_id = raw_env, env_id
        self.max_episode_steps = max_episode_steps
        raw_obs = raw_env.observation_space.spaces
        has_inventory = "inventory" in raw_obs
        self.with_inventory = has_inventory if inventory is None else bool(inventory)
        if self.with_inventory and not has_inventory:
            raise ValueError(f"{env_id} does not observe the inventory; build it with inventory=False")
        pov_shape = tuple(raw_obs["pov"].shape)
        obs_spaces: dict[str, spaces.Space] = {"pov": spaces.Box(0, 255, pov_shape, np.uint8)}
        if self.with_inventory:
            self._items = tuple(raw_obs["inventory"].spaces)
            obs_spaces["inventory"] = spaces.Dict(
                {k: spaces.Box(0, INVENTORY_MAX, (), np.int64) for k in self._items}
            )
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = minerl_action_space()
        self._steps = 0

    def _obs(self, raw_obs: Mapping[str, Any]) -> dict[str, Any]:
        pov = np.asarray(raw_obs["pov"], dtype=np.uint8)
        if pov.shape != self.observation_space["pov"].shape:
            raise ValueError(
                f"MineRL pov has shape {pov.shape}, expected {self.observation_space['pov'].shape}"
            )
        obs: dict[str, Any] = {"pov": pov}
        if self.with_inventory:
            raw_inv = raw_obs["inventory"]
            obs["inventory"] = {
                k: np.asarray(raw_inv.get(k, 0), dtype=np.int64).reshape(()) for k in self._items
            }
        return obs

    def _action(self, action: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(action) - set(MINERL_ACTION_KEYS)
        if unknown:
            raise ValueError(f"unknown MineRL action keys {sorted(unknown)}")
        full = minerl_noop()
        for key, value in action.items():
            if key == "camera":
                full[key] = np.asarray(value, dtype=np.float32).reshape(2)
            else:
                full[key] = int(value)
        return full

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.raw_env.seed(int(seed))
        self._steps = 0
        return self._obs(self.raw_env.reset()), {}

    def step(self, action: Mapping[str, Any]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs, reward, done, info = self.raw_env.step(self._action(action))
        info = dict(info or {})
        if "error" in info:
            # MineRL answers a lost connection with a random observation, done=True and
            # info["error"]; raising lets EnvPool restart the instance instead of learning from it.
            raise RuntimeError(f"MineRL step failed: {info['error']}")
        self._steps += 1
        at_limit = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        # why: a time limit is a truncation (bootstrapped), never a termination (DESIGN.md "Decisions")
        old_gym_limit = "TimeLimit.truncated" in info  # set by old gym's TimeLimit when it ends the episode
        info.pop("TimeLimit.truncated", None)
        truncated = at_limit or old_gym_limit
        terminated = bool(done) and not truncated
        return self._obs(obs), float(reward), terminated, truncated, info

    def close(self) -> None:
        self.raw_env.close()
