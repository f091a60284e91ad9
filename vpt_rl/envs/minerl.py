"""MineRL 1.0 as a gymnasium env (the facts it relies on: docs/environments.md "Real MineRL 1.0").

MineRL 1.0 is optional and heavy (JDK 8, a Minecraft build, a display): ``minerl`` and the old
``gym`` it runs on are imported only inside the functions here (everything else runs without
them), and this path is not exercised by CI; the tests drive a faithful double of the API
instead (tests/doubles/fake_minerl).

- ``MineRLHumanSurvival-v0`` is built as the VPT agent builds it,
  ``HumanSurvival(**VPT_ENV_KWARGS).make()``; the BASALT tasks and
  ``MineRLObtainDiamondShovel-v0`` come from the old ``gym.make`` (their settings are fixed by
  their registration).
- The old 4-tuple step becomes gymnasium's 5-tuple with explicit truncation. The real tasks end
  their episodes themselves at the step limit (inner timeout wrappers), so old gym's
  ``TimeLimit`` then writes ``info["TimeLimit.truncated"] = False``: its value says nothing, and
  the adapter counts steps itself (each task's limit; HumanSurvival has none unless
  `max_episode_steps` is given). An episode that ends at the limit is a truncation unless
  something else ended it on that very step: a death (the simulator's own ``done`` flag), ESC
  pressed in a BASALT task, or the diamond shovel obtained in ObtainDiamondShovel (terminations,
  never bootstrapped).
- MineRL 1.0.2's ObtainDiamondShovel wrapper never zeroes its step counter, so every episode
  after one that reached the limit would end on its first step; the adapter zeroes it at every
  reset, and an end it cannot explain is an error, not a termination.
- The adapter never steps MineRL after an episode's end (MineRL raises RuntimeError there).
- A settings check like the official agent's ``validate_env`` runs on every env built, since a
  policy fed frames at another FOV, gamma, GUI scale, resolution or cursor size silently
  underperforms.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from vpt_rl.envs.actions import MINERL_ACTION_KEYS, minerl_action_space, minerl_noop
from vpt_rl.errors import VPTRLError

#: The env settings the VPT agent uses (docs/environments.md "Real MineRL 1.0").
VPT_ENV_KWARGS: dict[str, Any] = {
    "fov_range": [70, 70],
    "frameskip": 1,
    "gamma_range": [2, 2],
    "guiscale_range": [1, 1],
    "resolution": [640, 360],
    "cursor_size_range": [16.0, 16.0],
}
HUMAN_SURVIVAL_ID = "MineRLHumanSurvival-v0"
#: Tasks whose episode ends when the action presses ESC (MineRL's BASALT envs).
ESC_ENDS = frozenset(
    {
        "MineRLBasaltFindCave-v0",
        "MineRLBasaltMakeWaterfall-v0",
        "MineRLBasaltCreateVillageAnimalPen-v0",
        "MineRLBasaltBuildVillageHouse-v0",
    }
)
SHOVEL_ID = "MineRLObtainDiamondShovel-v0"  # ends when the diamond shovel is obtained
#: Step limits of the fixed tasks (docs/environments.md "Real MineRL 1.0").
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
    "MineRL 1.0 is not installed (PyPI's `minerl` is the older, incompatible 0.4.4). Install JDK 8 "
    "first (e.g. `sudo apt install openjdk-8-jdk`): MineRL's install builds Minecraft with gradle, "
    "so the JDK is needed at install time (and at run time), as is network access. Then "
    "`pip install git+https://github.com/minerllabs/minerl@v1.0.2`. Running it needs a display, or "
    "xvfb (`xvfb-run -a python train_ppo.py ...`). "
    "Without MineRL, use the built-in voxel world `vpt_rl/VoxelTreechop-v0`."
)
#: The counter of MineRL 1.0.2's ObtainDiamondShovel wrapper that its reset forgets to zero
SHOVEL_STEP_COUNTER = "num_steps"


class MineRLSettingsError(VPTRLError, ValueError):
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
    try:
        # a v1.0.2 build reports 1.0.0 (the version is only set from MINERL_BUILD_VERSION), so
        # only the old 0.x line can be told apart, and refused here before an obscure ImportError
        version = metadata.version("minerl")
    except metadata.PackageNotFoundError:
        return minerl
    if version.split(".")[0] == "0":
        raise ImportError(f"minerl {version} is installed, not MineRL 1.0. {INSTALL_HELP}")
    return minerl


def _check_spec_kwargs(spec_kwargs: Mapping[str, Any]) -> None:
    """MineRL's EnvSpec silently drops keywords it does not know, ``frameskip`` included (its
    Python never reads it): a misspelt setting, or a frame skip, would pass unnoticed."""
    unknown = sorted(set(spec_kwargs) - set(VPT_ENV_KWARGS))
    if unknown:
        raise ValueError(
            f"unknown MineRL env settings {unknown} (MineRL would silently ignore them); "
            f"known: {sorted(VPT_ENV_KWARGS)}"
        )
    if spec_kwargs.get("frameskip", 1) != 1:
        raise ValueError(
            f"frameskip={spec_kwargs['frameskip']!r}: MineRL 1.0 never reads this setting, every step "
            "is one game tick; only frameskip=1 is accepted"
        )


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

        _check_spec_kwargs(spec_kwargs)
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
        raw.close()  # nothing runs before the first reset, but closing is cheap and safe
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
            ok = tuple(space.shape) == (2,) and bool(np.all(space.low == -180) and np.all(space.high == 180))
            want = "Box(-180, 180, (2,))"
        else:
            ok = getattr(space, "n", None) == 2
            want = "Discrete(2)"
        if not ok:
            raise MineRLSettingsError(f"MineRL action {name!r} must be {want}, got {space}")


class MineRLEnv(gymnasium.Env):
    """Gymnasium view of an old-gym MineRL 1.0 env (see the module docstring).

    Observations: ``pov`` uint8 (H, W, 3), a C-contiguous copy (MineRL's own is flipped upside
    down, a negative row stride, which ``torch.from_numpy`` refuses), plus ``inventory`` (item ->
    count) if asked, widened from MineRL's int32 to int64 as the voxel world's; other MineRL
    observations are dropped. The info passes through (HumanSurvival's ``isGuiOpen``,
    ``location_stats`` ...). Actions: MineRL's 24-key dict; missing keys are not pressed (filled
    with no-ops: MineRL's ESC wrapper indexes ``action["ESC"]`` and fails on a missing key).

    Episode ends: ``terminated`` for a death, ESC (BASALT) or the diamond shovel
    (ObtainDiamondShovel), even on the limit step; ``truncated`` at the step limit. A step after
    the end (or before the first reset) raises RuntimeError here, before MineRL sees it.

    Seeding: MineRL 1.0's ``reset`` takes no seed, and a seed given with ``seed(s)`` (MineRL's
    old-gym method, called before ``reset``; it must be a Python int) serves one reset only. So
    every ``reset`` seeds the world: ``reset(seed=s)`` with s (and seeds this wrapper's
    ``np_random``), a plain ``reset()`` with the next draw of ``np_random``, so a seeded sequence
    of episodes starts from the same worlds. Minecraft itself is not deterministic (server
    timing, mobs): a seed does not replay an episode.
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
        self._pov_shape = tuple(raw_obs["pov"].shape)
        obs_spaces: dict[str, spaces.Space] = {"pov": spaces.Box(0, 255, self._pov_shape, np.uint8)}
        if self.with_inventory:
            self._items = tuple(raw_obs["inventory"].spaces)
            obs_spaces["inventory"] = spaces.Dict(
                {k: spaces.Box(0, INVENTORY_MAX, (), np.int64) for k in self._items}
            )
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = minerl_action_space()
        self._steps = 0
        self._needs_reset = True
        self._step_counter = find_step_counter(raw_env) if env_id == SHOVEL_ID else None

    def _obs(self, raw_obs: Mapping[str, Any]) -> dict[str, Any]:
        # a C-contiguous copy: MineRL's pov is flipped (negative row stride), which torch.from_numpy
        # refuses; 0.7 MB per step is nothing next to a Minecraft tick, and the frame is ours
        pov = np.array(raw_obs["pov"], dtype=np.uint8, order="C", copy=True)
        if pov.shape != self._pov_shape:
            raise ValueError(f"MineRL pov has shape {pov.shape}, expected {self._pov_shape}")
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
        seed = None if seed is None else operator.index(seed)  # numpy integers too
        super().reset(seed=seed)
        # MineRL forgets a seed after one reset: seed every world, from np_random when not given;
        # its seed() asserts a Python int (a numpy integer fails)
        world_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self.raw_env.seed(world_seed)
        if self._step_counter is not None:
            # why: MineRL 1.0.2's ObtainDiamondShovel wrapper never zeroes this counter itself
            # (docs/environments.md "Real MineRL 1.0"), which would end every later episode on
            # its first step
            setattr(self._step_counter, SHOVEL_STEP_COUNTER, 0)
        self._steps = 0
        obs = self._obs(self.raw_env.reset())
        self._needs_reset = False
        return obs, {}

    def step(self, action: Mapping[str, Any]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            # MineRL raises RuntimeError on a step after done; refuse it here, before MineRL sees it
            raise RuntimeError(
                f"{self.env_id}: the episode has ended (or was never started): reset before stepping"
            )
        full = self._action(action)
        raw_obs, reward, done, info = self.raw_env.step(full)
        info = dict(info or {})
        if "error" in info:
            # MineRL answers a lost connection with a random observation, done=True and
            # info["error"]; raising lets EnvPool restart the instance instead of learning from it.
            self._needs_reset = True
            raise RuntimeError(f"MineRL step failed: {info['error']}")
        self._steps += 1
        # The key's presence marks old gym's TimeLimit; its value is False on the real tasks,
        # which end themselves at the limit (module docstring).
        old_gym_limit = info.pop("TimeLimit.truncated", None) is not None
        at_limit = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        terminated = bool(done) and self._ended_by_game(full, raw_obs, at_limit or old_gym_limit)
        # why: a time limit is a truncation (bootstrapped), never a termination
        # (docs/implementation_details.md item 4); a death or the task's own end on the limit
        # step is still a termination
        truncated = not terminated and (at_limit or old_gym_limit)
        self._needs_reset = bool(done) or terminated or truncated
        return self._obs(raw_obs), float(reward), terminated, truncated, info

    def _ended_by_game(self, action: Mapping[str, Any], raw_obs: Mapping[str, Any], limit: bool) -> bool:
        """Whether an episode MineRL ended (done=True) ended in the game (a termination) rather
        than at the step limit. Raises when neither explains it."""
        if self.env_id == HUMAN_SURVIVAL_ID or self._task_ended(action, raw_obs):
            return True  # HumanSurvival has no step limit inside MineRL: done is a death
        died = getattr(getattr(self.raw_env, "unwrapped", None), "done", None)
        if not isinstance(died, (bool, np.bool_)):
            return not limit  # MineRL without the simulator's flag: the best guess
        if died or limit:
            return bool(died)
        raise RuntimeError(
            f"{self.env_id} ended its episode at step {self._steps} of {self.max_episode_steps} for "
            "no reason the adapter knows (not a death, not the task's own end, not the step limit): "
            f"is the step counter of ObtainDiamondShovel's wrapper ({SHOVEL_STEP_COUNTER!r}) left "
            "over from an earlier episode? Restart the env."
        )

    def _task_ended(self, action: Mapping[str, Any], raw_obs: Mapping[str, Any]) -> bool:
        """Whether the task itself ended the episode on this step (a termination even at the
        step limit): ESC in a BASALT task, the diamond shovel in ObtainDiamondShovel."""
        if self.env_id in ESC_ENDS and action["ESC"]:
            return True
        if self.env_id == SHOVEL_ID and "inventory" in raw_obs:
            return int(np.asarray(raw_obs["inventory"].get("diamond_shovel", 0))) > 0
        return False

    def close(self) -> None:
        self.raw_env.close()


def find_step_counter(raw_env: Any) -> Any | None:
    """The wrapper in ``raw_env``'s ``.env`` chain that holds ObtainDiamondShovel's step counter
    (`SHOVEL_STEP_COUNTER`, an int in the instance's own attributes: old gym's wrappers forward
    attribute reads, so ``hasattr`` would find it on every layer), or None with a warning."""
    layer, seen = raw_env, set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        if isinstance(vars(layer).get(SHOVEL_STEP_COUNTER), int):
            return layer
        layer = vars(layer).get("env")
    warnings.warn(
        f"MineRLObtainDiamondShovel-v0: no wrapper with an int {SHOVEL_STEP_COUNTER!r} in the env's "
        "`.env` chain, so the adapter cannot zero the step counter that MineRL 1.0.2 forgets at "
        "reset. With that MineRL, every episode after one that reached the step limit ends on "
        "its first step (the adapter then raises); another MineRL may not need it.",
        RuntimeWarning,
        stacklevel=3,
    )
    return None
