"""A learned policy as the driver of a recording (DAgger): it acts, the scripted expert labels.

BC on expert demonstrations only sees the expert's own states; a BC policy that errs drifts into
states no demonstration shows, and its errors compound (Ross, Gordon & Bagnell 2011, "A Reduction
of Imitation Learning and Structured Prediction to No-Regret Online Learning": DAgger). Recording
with ``driver=PolicyDriver(...)`` executes the policy's actions (the expert's with probability
``beta``, the paper's mixture) and writes the expert's action for each visited state as the label,
so a second BC round learns what to do where the first one goes wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpt_rl.envs.actions import policy_to_env
from vpt_rl.envs.obs import preprocess_frame


class PolicyDriver:
    """``driver(obs, first) -> MineRL action dict`` from a weights file (BC mode loading).

    Keeps the policy's memory across steps and resets it when ``first`` is true (an episode
    start); frames are resized to the policy's input size as in training. ``seed`` seeds its
    action sampling (its own generator: the global RNG is left alone).
    """

    def __init__(self, weights: str | os.PathLike, seed: int = 0, device: str = "cpu") -> None:
        from vpt_rl.commands.eval import load_policy

        self.policy, self.load_text = load_policy(Path(weights), None, device)
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.state = self.policy.initial_state(1)

    @torch.no_grad()
    def __call__(self, obs: dict[str, Any], first: bool) -> dict[str, Any]:
        if first:
            self.state = self.policy.initial_state(1)
        img = preprocess_frame(np.asarray(obs["pov"]), tuple(self.policy.config.img_size))
        img_bt = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)[None, None]
        first_bt = torch.tensor([[first]], device=self.device)
        action, _, _, self.state = self.policy.act(img_bt, first_bt, self.state, False, self.generator)
        return policy_to_env(int(action["buttons"][0, 0]), int(action["camera"][0, 0]))
