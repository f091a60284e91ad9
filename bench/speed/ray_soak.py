"""Soak of the Ray backend: hundreds of injected faults (an env that raises, an env that hangs past
the step timeout, an actor killed with ray.kill), with every env step accounted for: none lost,
none doubled. Prints the counts and timings; exits non-zero on a miscount (docs/benchmarks.md).

    python bench/speed/ray_soak.py                 # >= 200 faults over 4 envs (a few minutes)
    python bench/speed/ray_soak.py --quick         # a handful of faults, seconds (run in CI)

Accounting (as tests/unit/test_pool_faults.py counts a fault): the driver picks the faults, so it knows
which steps must fail. Each env counts its own steps; a good step is reported with the env's
episode clock ``t`` exactly one above the last one the driver saw (0 after the episode's end, with
the ended episode's clock in ``final_info``) and reward 1; a faulty step is reported restarted,
truncated, reward 0, ``t`` 0. So the sum of rewards equals the good steps sent, ``restarts``
equals the faults injected, and a step lost or run twice would break the clock.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

OUT = Path(__file__).resolve().parents[1] / "out" / "ray_soak.json"
QUICK = {"faults": 6, "envs": 2}
RAISE, HANG = 1, 2  # the ``buttons`` codes that make a SoakEnv step fail


class SoakEnv(gymnasium.Env):
    """Reward 1 per step, episode clock ``t`` in the frame and the info; fails on command."""

    def __init__(self, episode_len: int = 7) -> None:
        self.observation_space = spaces.Dict({"img": spaces.Box(0, 255, (4, 4, 3), np.uint8)})
        self.action_space = spaces.Dict({"buttons": spaces.Discrete(3), "camera": spaces.Discrete(2)})
        self.episode_len, self.t = episode_len, 0

    def _obs(self) -> dict[str, np.ndarray]:
        return {"img": np.full((4, 4, 3), self.t, np.uint8)}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"t": 0}

    def step(self, action: dict) -> tuple[dict, float, bool, bool, dict]:
        if int(action["buttons"]) == RAISE:
            raise RuntimeError("injected fault")
        if int(action["buttons"]) == HANG:
            time.sleep(600)
        self.t += 1
        return self._obs(), 1.0, self.t >= self.episode_len, False, {"t": self.t}


def make_soak_env(episode_len: int) -> SoakEnv:
    return SoakEnv(episode_len)


def soak(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    import ray_soak  # this file as a module: the actors import the env factory by this name

    from vpt_rl.config.ppg import RayEnvConfig
    from vpt_rl.envs.ray_pool import RayEnvPool

    n = args.envs
    fns = [functools.partial(ray_soak.make_soak_env, 5 + i) for i in range(n)]
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    pool = RayEnvPool(fns, RayEnvConfig(num_cpus=2 / n), step_timeout=args.hang_timeout, reset_timeout=120)
    rng = np.random.default_rng(args.seed)
    clock = [0] * n
    sent_good = injected = steps = 0
    reward_sum = 0.0
    kinds = {"raise": 0, "hang": 0, "kill": 0}
    fault_step_s, good_step_s = [], []
    try:
        pool.reset(seed=args.seed)
        while injected < args.faults:
            buttons = np.zeros(n, np.int64)
            faulty: dict[int, str] = {}
            for i in range(n):
                if rng.random() < args.rate and injected + len(faulty) < args.faults:
                    faulty[i] = ("raise", "hang", "kill")[rng.integers(0, 3)]
                    buttons[i] = {"raise": RAISE, "hang": HANG, "kill": 0}[faulty[i]]
            for i, kind in faulty.items():
                if kind == "kill":
                    ray.kill(pool._actors[pool._home[i][0]].handle, no_restart=True)
            t0 = time.perf_counter()
            _, reward, term, trunc, infos = pool.step({"buttons": buttons, "camera": np.zeros(n, np.int64)})
            (fault_step_s if faulty else good_step_s).append(time.perf_counter() - t0)
            restarted = infos.get("_restarted", np.zeros(n, bool))
            for i in range(n):
                if i in faulty:
                    assert restarted[i] and trunc[i] and not term[i] and reward[i] == 0, (i, faulty[i], infos)
                    assert infos["t"][i] == 0
                    clock[i] = 0
                    kinds[faulty[i]] += 1
                    continue
                assert not restarted[i], f"env {i} restarted without a fault: {infos['restarted'][i]}"
                assert reward[i] == 1.0, (i, reward[i])
                if term[i]:
                    assert infos["final_info"][i]["t"] == clock[i] + 1 and infos["t"][i] == 0
                    clock[i] = 0
                else:
                    assert infos["t"][i] == clock[i] + 1, f"env {i}: clock {clock[i]} -> {infos['t'][i]}"
                    clock[i] += 1
                sent_good += 1
            reward_sum += float(reward.sum())
            injected += len(faulty)
            steps += 1
        assert pool.restarts == injected, (pool.restarts, injected)
        assert reward_sum == sent_good, (reward_sum, sent_good)
    finally:
        pool.close()
        ray.shutdown()
    return {
        "envs": n,
        "steps": steps,
        "env_steps_sent": steps * n,
        "good_env_steps": sent_good,
        "reward_sum": reward_sum,
        "faults": injected,
        "by_kind": kinds,
        "restarts": injected,
        "lost_or_doubled": 0,
        "median_step_ms_without_fault": round(1000 * statistics.median(good_step_s), 2)
        if good_step_s
        else None,
        "median_step_s_with_fault": round(statistics.median(fault_step_s), 2) if fault_step_s else None,
        "hang_timeout_s": args.hang_timeout,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faults", type=int, default=210, help="faults to inject (>= 200 for the soak)")
    p.add_argument("--envs", type=int, default=4)
    p.add_argument("--rate", type=float, default=0.3, help="chance of a fault per env and step")
    p.add_argument("--hang-timeout", type=float, default=1.0, help="step_timeout: when a hang counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--quick", action="store_true", help=f"toy sizes ({QUICK}; flags given still win)")
    if p.parse_known_args()[0].quick:
        p.set_defaults(**QUICK)
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    logging.getLogger("vpt_rl.envs.ray_pool").setLevel(logging.ERROR)  # a warning per fault otherwise
    t0 = time.perf_counter()
    figures = soak(args)
    figures["wall_s"] = round(time.perf_counter() - t0, 1)
    print(
        f"Ray soak: {figures['faults']} faults ({figures['by_kind']}) over {figures['steps']} steps of "
        f"{figures['envs']} envs; {figures['good_env_steps']} good env steps, reward sum "
        f"{figures['reward_sum']:.0f}, restarts {figures['restarts']}: no step lost or doubled"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
