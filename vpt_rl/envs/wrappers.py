"""PolicySpaceWrapper: a MineRL-interface env seen in the policy's spaces.

Runs inside each pool worker (docs/design.md "Decisions"), so that only policy-size frames cross the
process boundary and the MineRL dict is built next to the env: observations become
``{"img": uint8 (H, W, 3)}``, actions arrive as policy indices ``{"buttons", "camera"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from vpt_rl.envs.actions import policy_action_space, policy_to_env
from vpt_rl.envs.obs import preprocess_frame


def inventory_counts(inventory: Mapping[str, Any]) -> dict[str, int]:
    """Non-zero item counts as plain ints (MineRL has 976 items; most are 0 in any episode)."""
    counts = {}
    for item, value in inventory.items():
        count = int(np.asarray(value).sum())
        if count:
            counts[item] = count
    return counts


class PolicySpaceWrapper(gymnasium.Wrapper):
    """Observations ``{"img": uint8 (H, W, 3)}`` at `img_size`; actions ``{"buttons": int,
    "camera": int}`` mapped to a MineRL action dict with `policy_to_env` (20 buttons + camera;
    keys it does not set, such as ESC, are not pressed).

    The frame is resized with `preprocess_frame` (cv2 INTER_LINEAR, as the released policies
    saw), which passes a frame already at `img_size` through untouched. Infos pass through;
    when the observation has an ``inventory``, ``info["inventory"]`` holds its non-zero counts
    (for "items collected" logs). ``get_state`` / ``set_state`` / ``render_obs`` reach the inner
    env, so a pool can capture and restore it.
    """

    def __init__(self, env: gymnasium.Env, img_size: tuple[int, int] = (128, 128)) -> None:
        super().__init__(env)
        if len(img_size) != 2 or any(int(s) != s or s <= 0 for s in img_size):
            raise ValueError(f"img_size must be (height, width) positive integers, got {img_size!r}")
        self.img_size = (int(img_size[0]), int(img_size[1]))
        pov = (
            env.observation_space.spaces.get("pov")
            if isinstance(env.observation_space, spaces.Dict)
            else None
        )
        if (
            not isinstance(pov, spaces.Box)
            or pov.dtype != np.uint8
            or len(pov.shape) != 3
            or pov.shape[2] != 3
        ):
            raise ValueError(
                f"PolicySpaceWrapper needs an observation Dict with 'pov' Box(uint8, (H, W, 3)); "
                f"{env} has {env.observation_space}"
            )
        self.observation_space = spaces.Dict({"img": spaces.Box(0, 255, (*self.img_size, 3), np.uint8)})
        self.action_space = policy_action_space()

    def observation(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Inner observation -> ``{"img": uint8 (H, W, 3)}``."""
        pov = np.asarray(obs["pov"])
        return {"img": np.ascontiguousarray(preprocess_frame(pov, self.img_size))}

    def action(self, action: Mapping[str, Any]) -> dict[str, Any]:
        """Policy indices -> MineRL action dict (scalar form of `policy_to_env`)."""
        try:
            buttons, camera = action["buttons"], action["camera"]
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(
                f"action must be a dict with 'buttons' and 'camera' indices, got {action!r}"
            ) from exc
        return policy_to_env(np.asarray(buttons).reshape(()), np.asarray(camera).reshape(()))

    @staticmethod
    def _info(obs: Mapping[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        inventory = obs.get("inventory") if isinstance(obs, Mapping) else None
        if isinstance(inventory, Mapping):
            return {**info, "inventory": inventory_counts(inventory)}
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self.observation(obs), self._info(obs, info)

    def step(self, action: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(self.action(action))
        return self.observation(obs), float(reward), bool(terminated), bool(truncated), self._info(obs, info)

    # --- state pass-through (exact resume) -------------------------------------------------------

    def _inner(self, name: str) -> Any:
        try:
            return self.env.get_wrapper_attr(name)
        except AttributeError:
            return None

    @property
    def supports_state(self) -> bool:
        """True when the inner env can capture, restore and re-render itself."""
        declared = self._inner("supports_state")
        if declared is not None and not callable(declared) and not declared:
            return False
        return all(callable(self._inner(n)) for n in ("get_state", "set_state", "render_obs"))

    def _require_state(self) -> None:
        if not self.supports_state:
            raise NotImplementedError(
                f"{self.env} has no get_state/set_state/render_obs to restore it exactly"
            )

    def get_state(self) -> Any:
        """The inner env's state (picklable)."""
        self._require_state()
        return self._inner("get_state")()

    def set_state(self, state: Any) -> None:
        """Restore the inner env; `render_obs` then gives the current observation."""
        self._require_state()
        self._inner("set_state")(state)

    def render_obs(self) -> dict[str, np.ndarray]:
        """The current observation in the policy's space (after `set_state`)."""
        self._require_state()
        return self.observation(self._inner("render_obs")())
