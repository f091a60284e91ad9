#!/usr/bin/env python
"""Does BC lose logs because its attack runs are too short? Measures the item "sustained attack"
of the BC start at full difficulty (docs/benchmarks.md "Full difficulty"): a log there needs
``log_break_ticks`` (8) uninterrupted attack ticks on the same block, and the progress resets when
the attack stops or the target changes.

    python bench/experiments/attack_runs.py --init BC.weights --expert --frames 4096 --envs 8
    python bench/experiments/attack_runs.py --init A.weights B.weights     # several policies
    python bench/experiments/attack_runs.py --quick --expert                # toy sizes (CI)

Each ``--init W`` policy is rolled out with sampled actions (as in RL) for ``--frames`` frames
over ``--envs`` envs of the chosen settings (env i reset with seed + i, + 1000 per episode);
``--expert`` rolls out the demonstrator the same way: the scripted expert, sighted, with the
recording's noise (``--noise``, 0.1: what `vpt-rl record --sighted --noise 0.1` records), driven
by its own action dicts on the same envs. Per frame it keeps the env's own state:

- before the action (what the frame shows): is the crosshair on a log in reach;
- the executed action: attack pressed, camera moved (non-zero degrees);
- after the action: the block the attack hit (the env turns the camera and walks first, then
  attacks what is under the crosshair), the env's break progress, and a log broken.

Figures per rollout: logs broken and reward per 1000 frames; the share of frames with the
crosshair on a log; P(attack | on a log), P(attack with a still camera | on a log) and the share
of on-log frames where the camera moved (a moving camera changes the target); and the attack
runs on a log as the env counts them (consecutive ticks whose attack hit the same log cell; the
env's break progress is checked against them): count, mean and median length, the share reaching
``log_break_ticks``, a length histogram, and how each run ended: the log broke, attack released,
the target changed with the camera moving / without (walking, jumping), the episode ended, or the
rollout was cut.

Writes ``--json`` (default bench/out/attack_runs.json) and prints one markdown row per policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# the handoff benchmark's two voxel settings, so the probe measures exactly what it trains on
from handoff import ENV_ID, SETTINGS  # noqa: E402
from value_probe import load  # noqa: E402  (a .weights file's policy, or a fresh tiny one)

ENDS = ("broken", "released", "camera", "walk", "episode_end", "cut")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--init", type=Path, nargs="+", action="extend", default=[],
                   help="weights whose policy is rolled out (repeatable)")  # fmt: skip
    p.add_argument("--expert", action="store_true", help="also roll out the scripted demonstrator")
    p.add_argument("--noise", type=float, default=0.1, help="the expert's noise (the recording's)")
    p.add_argument("--settings", choices=sorted(SETTINGS), default="full")
    p.add_argument("--frames", type=int, default=8192, help="frames rolled out (over all envs)")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument(
        "--seed", type=int, default=200_000, help="env i is reset with seed + i (+ 1000 per episode)"
    )
    p.add_argument("--json", type=Path, default=None, help="default bench/out/attack_runs.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="toy sizes: a fresh tiny policy, 2 envs x 48 frames")
    args = p.parse_args()
    if args.quick:  # toy sizes; a flag given beside --quick still wins
        args.frames, args.envs = min(args.frames, 96), min(args.envs, 2)
    if not args.init and not args.quick and not args.expert:
        p.error("nothing to measure: give --init W.weights, --expert or --quick")
    name = "attack_runs_quick.json" if args.quick else "attack_runs.json"
    args.json = args.json or ROOT / "bench" / "out" / name
    return args


# ----------------------------------------------------------------------------- policies
class Trace:
    """Per env and frame: the env's chopping state around each executed action."""

    def __init__(self, n_envs: int, steps: int) -> None:
        shape = (n_envs, steps)
        self.first = np.zeros(shape, bool)  # a new episode starts at this frame
        self.on_log = np.zeros(shape, bool)  # before the action: crosshair on a log in reach
        self.attack = np.zeros(shape, bool)  # executed action: attack pressed
        self.camera = np.zeros(shape, bool)  # executed action: camera moved
        self.hit_log = np.zeros(shape, bool)  # the attack hit a log (the env's target after turning)
        self.cell = np.full((*shape, 3), -1, np.int64)  # that log's cell
        self.broken_log = np.zeros(shape, bool)  # a log broke this frame
        self.progress = np.zeros(shape, np.int64)  # the env's break progress after the action
        self.reward = np.zeros(shape, np.float32)

    def before(self, i: int, t: int, u: Any, first: bool) -> None:
        from vpt_rl.envs.voxel import world as W

        tgt = u.target()
        self.first[i, t] = first
        self.on_log[i, t] = tgt is not None and tgt[1] in W.LOG_BLOCKS

    def after(self, i: int, t: int, u: Any, action: dict[str, Any], reward: float, info: dict) -> None:
        """``action``: the executed MineRL dict; ``u``: the env after the step, before any reset."""
        from vpt_rl.envs.voxel import world as W

        self.attack[i, t] = bool(np.asarray(action.get("attack", 0)).reshape(-1)[0])
        self.camera[i, t] = bool(np.any(np.asarray(action.get("camera", 0.0)) != 0))
        self.reward[i, t] = reward
        self.progress[i, t] = int(u.break_progress)
        broken = info.get("broken")
        if broken is not None and "log" in str(broken):
            # the attack hit the log the run was on (it broke: the cell is air now)
            self.broken_log[i, t] = self.hit_log[i, t] = True
            self.cell[i, t] = self.cell[i, t - 1] if t > 0 and self.hit_log[i, t - 1] else -2
        elif self.attack[i, t] and broken is None:
            # nothing changed the world after the attack (a broken leaf would have: the log now
            # behind it was not hit): the target now is the one it hit
            tgt = u.target()
            if tgt is not None and tgt[1] in W.LOG_BLOCKS:
                self.hit_log[i, t] = True
                self.cell[i, t] = tgt[0]


def new_envs(env_kwargs: dict, img_size: tuple[int, int], n_envs: int) -> list:
    from vpt_rl.envs.factory import make_env

    return [make_env(ENV_ID, img_size, env_kwargs) for _ in range(n_envs)]


@torch.no_grad()
def rollout_policy(policy, env_kwargs: dict, frames: int, n_envs: int, seed: int) -> Trace:
    """Sampled actions, as value_probe.py's rollout (and RL) take them."""
    from vpt_rl.envs.actions import policy_to_env
    from vpt_rl.model import action_heads

    envs = new_envs(env_kwargs, policy.config.img_size, n_envs)
    steps = max(1, frames // n_envs)
    trace = Trace(n_envs, steps)
    gen = torch.Generator().manual_seed(seed)
    episode = [0] * n_envs
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    first = np.ones(n_envs, dtype=bool)
    state = policy.initial_state(n_envs)
    for t in range(steps):
        img = torch.from_numpy(np.stack([o["img"] for o in obs]))[:, None]
        out, state = policy(img, torch.from_numpy(first)[:, None], state)
        for i, env in enumerate(envs):
            trace.before(i, t, env.unwrapped, bool(first[i]))
        action = action_heads.sample(out.logprobs, deterministic=False, generator=gen)
        for i, env in enumerate(envs):
            b, c = int(action["buttons"][i, 0]), int(action["camera"][i, 0])
            o, r, term, trunc, info = env.step({"buttons": b, "camera": c})
            trace.after(i, t, env.unwrapped, policy_to_env(b, c), float(r), info)
            first[i] = term or trunc
            if first[i]:
                episode[i] += 1
                o, _ = env.reset(seed=seed + i + 1000 * episode[i])
            obs[i] = o
    for env in envs:
        env.close()
    return trace


def rollout_expert(
    env_kwargs: dict, img_size: tuple[int, int], frames: int, n_envs: int, seed: int, noise: float
) -> Trace:
    """The demonstrator as `vpt-rl record --sighted --noise N` drives it (`record_episodes`): a
    `scripted_policy` per episode, its deviations seeded with the episode's reset seed; its
    MineRL action dicts go to the env under the policy-space wrapper (the same env otherwise)."""
    from vpt_rl.envs.voxel import scripted_policy

    envs = new_envs(env_kwargs, img_size, n_envs)
    inner = [env.env for env in envs]  # below PolicySpaceWrapper: takes MineRL dicts
    steps = max(1, frames // n_envs)
    trace = Trace(n_envs, steps)
    episode = [0] * n_envs
    obs, experts = [], []
    for i, env in enumerate(inner):
        obs.append(env.reset(seed=seed + i)[0])
        experts.append(scripted_policy(env, noise=noise, seed=seed + i, sighted=True))
    first = np.ones(n_envs, dtype=bool)
    for t in range(steps):
        for i, env in enumerate(inner):
            trace.before(i, t, env.unwrapped, bool(first[i]))
            action = experts[i].act(obs[i])[0]
            o, r, term, trunc, info = env.step(action)
            trace.after(i, t, env.unwrapped, action, float(r), info)
            first[i] = term or trunc
            if first[i]:
                episode[i] += 1
                ep_seed = seed + i + 1000 * episode[i]
                o, _ = env.reset(seed=ep_seed)
                experts[i] = scripted_policy(env, noise=noise, seed=ep_seed, sighted=True)
            obs[i] = o
    for env in envs:
        env.close()
    return trace


# ----------------------------------------------------------------------------- analysis
def attack_runs(tr: Trace) -> tuple[list[int], list[str], int]:
    """Runs of consecutive frames whose attack hit the same log cell: (lengths, how each ended,
    frames where the env's break progress disagrees with the run length: 0 expected)."""
    lengths: list[int] = []
    ends: list[str] = []
    mismatch = 0
    n_envs, steps = tr.first.shape
    for i in range(n_envs):
        t = 0
        while t < steps:
            if not tr.hit_log[i, t]:
                t += 1
                continue
            s = t
            while (
                t + 1 < steps
                and not tr.broken_log[i, t]
                and tr.hit_log[i, t + 1]
                and not tr.first[i, t + 1]
                and (tr.cell[i, t + 1] == tr.cell[i, t]).all()
            ):
                t += 1
            for k in range(s, t + 1):  # the env counts the same run
                if not tr.broken_log[i, k] and tr.progress[i, k] != k - s + 1:
                    mismatch += 1
            lengths.append(t - s + 1)
            n = t + 1
            if tr.broken_log[i, t]:
                ends.append("broken")
            elif n >= steps:
                ends.append("cut")
            elif tr.first[i, n]:
                ends.append("episode_end")
            elif not tr.attack[i, n]:
                ends.append("released")
            else:  # attack held, but it hit another block (or none) at frame n
                ends.append("camera" if tr.camera[i, n] else "walk")
            t += 1
    return lengths, ends, mismatch


def _share(mask: np.ndarray, of: np.ndarray | None = None) -> float:
    if of is not None:
        mask = mask[of]
    return float(mask.mean()) if mask.size else float("nan")


def summarise(name: str, tr: Trace, break_ticks: int) -> dict[str, Any]:
    frames = int(tr.first.size)
    lengths, ends, mismatch = attack_runs(tr)
    arr = np.array(lengths, np.int64)
    n = len(lengths)
    return {
        "policy": name,
        "frames": frames,
        "envs": int(tr.first.shape[0]),
        "episodes_ended": int(tr.first[:, 1:].sum()),
        "logs_per_1000": float(tr.broken_log.sum() / frames * 1000),
        "reward_per_1000": float(tr.reward.sum() / frames * 1000),
        "on_log_share": _share(tr.on_log),
        "p_attack_on_log": _share(tr.attack, tr.on_log),
        "p_attack_still_on_log": _share(tr.attack & ~tr.camera, tr.on_log),
        "camera_moved_on_log": _share(tr.camera, tr.on_log),
        "attack_share": _share(tr.attack),
        "runs": n,
        "run_mean": float(arr.mean()) if n else float("nan"),
        "run_median": float(np.median(arr)) if n else float("nan"),
        "run_reach_share": float((arr >= break_ticks).mean()) if n else float("nan"),
        "run_hist": {str(k): int((arr == k).sum()) for k in range(1, break_ticks)}
        | {f"{break_ticks}+": int((arr >= break_ticks).sum())},
        "run_ends": {e: ends.count(e) for e in ENDS},
        "run_ends_short": {
            e: sum(1 for ln, x in zip(lengths, ends) if x == e and ln < break_ticks) for e in ENDS
        },
        "progress_mismatch_frames": mismatch,
    }


COLS = [
    ("policy", "policy", "{}"),
    ("logs/1000f", "logs_per_1000", "{:.2f}"),
    ("on log", "on_log_share", "{:.3f}"),
    ("P(att|log)", "p_attack_on_log", "{:.3f}"),
    ("P(att,still|log)", "p_attack_still_on_log", "{:.3f}"),
    ("cam moved|log", "camera_moved_on_log", "{:.3f}"),
    ("runs", "runs", "{}"),
    ("run mean", "run_mean", "{:.2f}"),
    ("run median", "run_median", "{:.1f}"),
    ("runs >= ticks", "run_reach_share", "{:.3f}"),
    ("short runs end: released/camera/walk", None, "{}"),
]


def row(r: dict[str, Any]) -> str:
    cells = []
    for _, key, fmt in COLS:
        if key is None:
            e = r["run_ends_short"]
            cells.append(f"{e['released']}/{e['camera']}/{e['walk']}")
        else:
            cells.append(fmt.format(r[key]))
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    kw = dict(SETTINGS[args.settings])
    if args.quick:
        kw["max_episode_steps"] = 24  # episode ends inside the toy rollout
    break_ticks = int(kw.get("log_break_ticks", 1))
    result: dict[str, Any] = {"settings": args.settings, "env_kwargs": kw, "seed": args.seed,
                              "log_break_ticks": break_ticks, "rows": []}  # fmt: skip
    inits: list[Path | None] = list(args.init) or ([None] if args.quick else [])
    img_size: tuple[int, int] | None = None
    for init in inits:
        policy = load(init)
        img_size = (int(policy.config.img_size[0]), int(policy.config.img_size[1]))
        tr = rollout_policy(policy, kw, args.frames, args.envs, args.seed)
        result["rows"].append(summarise(str(init) if init else "fresh tiny", tr, break_ticks))
        print(row(result["rows"][-1]), file=sys.stderr, flush=True)
    if args.expert:
        if img_size is None:
            from vpt_rl.algo.bc_setup import model_config_for

            size = model_config_for(None, None, "tiny")[0].img_size
            img_size = (int(size[0]), int(size[1]))
        tr = rollout_expert(kw, img_size, args.frames, args.envs, args.seed, args.noise)
        result["rows"].append(summarise(f"expert (sighted, noise {args.noise})", tr, break_ticks))
    print(f"settings {args.settings}, {args.frames // args.envs * args.envs} frames over {args.envs} envs "
          f"per policy, seed {args.seed}, log_break_ticks {break_ticks}")  # fmt: skip
    print("| " + " | ".join(h for h, _, _ in COLS) + " |")
    print("|" + "---|" * len(COLS))
    for r in result["rows"]:
        print(row(r))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
