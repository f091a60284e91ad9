"""Env factories for training: one picklable callable per pool worker.

Each factory builds, inside its worker: the env (the voxel world, MineRL through the adapter in
vpt_rl/envs/minerl.py, or any gymnasium id with MineRL's interface), the item reward where the
env has no reward of its own, then `PolicySpaceWrapper`, so frames leave the worker at the
policy's size and actions arrive as policy indices (docs/design.md "Decisions").
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium

from vpt_rl.envs.rewards import ItemRewardWrapper
from vpt_rl.envs.wrappers import PolicySpaceWrapper

VOXEL_ID = "vpt_rl/VoxelTreechop-v0"


def is_minerl_id(env_id: str) -> bool:
    """MineRL 1.0 ids (``MineRL...``) go through the adapter, not gymnasium's registry."""
    return env_id.startswith("MineRL")


def make_env(
    env_id: str,
    img_size: tuple[int, int] = (128, 128),
    env_kwargs: Mapping[str, Any] | None = None,
    reward_table: str | Mapping[str, Any] | None = None,
) -> gymnasium.Env:
    """Build one training env (see the module docstring); `make_env_fns` binds its arguments.

    - voxel world: ``pov_size`` defaults to `img_size` (rendered at the policy's size, no
      resize), and `reward_table` is passed to the env, which rewards items itself;
    - MineRL ids: `make_minerl_env(env_id, **env_kwargs)`; the item reward wraps envs without a
      reward of their own (HumanSurvival: "vpt_diamond" by default), and replaces
      ObtainDiamondShovel's own reward only when `reward_table` is given;
    - other ids: ``gymnasium.make``, with an item reward when `reward_table` is given.
    """
    kwargs = dict(env_kwargs or {})
    env: gymnasium.Env
    if is_minerl_id(env_id):
        from vpt_rl.envs.minerl import default_reward_table, make_minerl_env

        env = make_minerl_env(env_id, **kwargs)
        table = reward_table if reward_table is not None else default_reward_table(env_id)
        if table is not None:
            env = ItemRewardWrapper(env, table)
    elif env_id == VOXEL_ID:
        import vpt_rl  # noqa: F401 -- registers the voxel world in this (worker) process

        kwargs.setdefault("pov_size", tuple(img_size))
        if reward_table is not None:
            kwargs.setdefault("reward_table", reward_table)
        # Kwargs go into the spec, not gymnasium.make(**kwargs): make() keeps `max_episode_steps`
        # for its own TimeLimit wrapper, whose counter is outside the env's get_state (exact
        # resume) and which would leave the env's own limit (default 1000) in force.
        spec = gymnasium.spec(env_id)
        env = gymnasium.make(dataclasses.replace(spec, kwargs={**spec.kwargs, **kwargs}))
    else:
        env = gymnasium.make(env_id, **kwargs)
        if reward_table is not None:
            env = ItemRewardWrapper(env, reward_table)
    return PolicySpaceWrapper(env, img_size)


def make_env_fns(
    env_id: str,
    num_envs: int,
    img_size: tuple[int, int],
    env_kwargs: Mapping[str, Any] | None = None,
    reward_table: str | Mapping[str, Any] | None = None,
) -> list[Callable[[], gymnasium.Env]]:
    """`num_envs` picklable factories (``functools.partial`` of `make_env`) for `EnvPool`.

    Seeds are not bound here: ``pool.reset(seed=s)`` gives env i the seed ``s + i``.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    img_size = (int(img_size[0]), int(img_size[1]))
    kwargs = dict(env_kwargs or {})
    return [functools.partial(make_env, env_id, img_size, kwargs, reward_table) for _ in range(num_envs)]


def make_pool(env_cfg: Any, img_size: tuple[int, int], rank: int = 0, run_name: str = "run") -> Any:
    """The vector env a trainer steps, built from an ``EnvConfig``: ``env.backend`` selects a local
    `EnvPool` (worker processes of this rank) or a `RayEnvPool` (actors on a Ray cluster, imported
    only then); both honour the same contract (docs/design.md "Public names": `EnvPool`)."""
    fns = make_env_fns(env_cfg.id, env_cfg.num_envs, img_size, env_cfg.kwargs, env_cfg.reward_table)
    if env_cfg.backend == "ray":
        from vpt_rl.envs.ray_pool import RayEnvPool

        return RayEnvPool(
            fns,
            ray_config=env_cfg.ray,
            step_timeout=env_cfg.step_timeout,
            reset_timeout=env_cfg.reset_timeout,
            max_worker_steps=env_cfg.max_worker_steps,
            name=f"{run_name}-rank{rank}",
        )
    from vpt_rl.envs.pool import EnvPool

    return EnvPool(
        fns,
        step_timeout=env_cfg.step_timeout,
        reset_timeout=env_cfg.reset_timeout,
        max_worker_steps=env_cfg.max_worker_steps,
    )
