#!/usr/bin/env python
"""Why does the value not learn? Measure the value targets and what a value could explain
(docs/benchmarks.md "Full difficulty: why the value does not learn (diagnosis)").

    python bench/experiments/value_probe.py --init BC.weights --settings full --frames 16384
    python bench/experiments/value_probe.py --runs bench/out/vdiag/runs/*      # RL runs' tags
    python bench/experiments/value_probe.py --quick                              # toy sizes (CI)

Two parts, each optional:

1. ``--init W``: roll W's policy (sampled actions, as in RL) for ``--frames`` frames in
   ``--envs`` envs of the chosen settings and keep, per frame, the reward, the episode ends and
   the policy's latent (the input of the detached true value head). Then, for each gamma of
   ``--gammas``: the discounted Monte-Carlo return G (cut at episode ends), the share of frames
   with G > 0.01 (where a target is non-zero), its mean and std (what the EWMA normaliser
   converges to; its variance floor is 1e-2), and how much of G a value could explain: a ridge
   regression (linear, like the value head) and a small MLP (what a trained trunk could add) on
   the latent, and the MLP on the chopping state the env knows (break progress, crosshair on a log
   in reach: what decides a short-horizon return), fitted on half of the envs and scored on the
   other half (explained variance pooled over the held-out frames, and the mean of per-batch
   values over 512-frame batches of 8 envs x 64 frames, which is how train/explained_variance
   is logged).
2. ``--runs DIR...``: per RL run folder, from progress.csv: explained variance in the first and
   second half and the last eighth (mean of the logged per-iteration values), its second-half
   median and its mean over the iterations with / without a reward in their batch, the share of
   iterations where it was undefined, value loss, reward per frame, return, pre-clip grad norm;
   and the true value head's normaliser (de-biased mean and std) in every kept checkpoint.

Writes ``--json`` (default bench/out/value_probe.json) and prints tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
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


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--init", type=Path, default=None, help="weights whose policy is rolled out")
    p.add_argument("--settings", choices=sorted(SETTINGS), default="full")
    p.add_argument("--frames", type=int, default=16384, help="frames rolled out (over all envs)")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument(
        "--seed", type=int, default=200_000, help="env i is reset with seed + i (+ 1000 per episode)"
    )
    p.add_argument("--gammas", type=float, nargs="+", default=[0.9, 0.99, 0.995, 0.999])
    p.add_argument("--runs", type=Path, nargs="*", default=[], help="RL run folders to summarise")
    p.add_argument("--json", type=Path, default=None, help="default bench/out/value_probe.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="toy sizes: a fresh tiny policy, 2 envs x 48 frames")
    args = p.parse_args()
    if args.quick:  # toy sizes; a flag given beside --quick still wins
        args.frames, args.envs = min(args.frames, 96), min(args.envs, 2)
    name = "value_probe_quick.json" if args.quick else "value_probe.json"
    args.json = args.json or ROOT / "bench" / "out" / name
    return args


# ----------------------------------------------------------------------------- rollout
def load(init: Path | None):
    from vpt_rl.algo.bc_setup import model_config_for
    from vpt_rl.algo.policy_init import build_policy
    from vpt_rl.commands.eval import load_policy

    if init is None:  # --quick: a fresh tiny policy
        cfg, _ = model_config_for(None, None, "tiny")
        return build_policy(cfg, aux_value_head=False, device=torch.device("cpu"), seed=0).eval()
    policy, _ = load_policy(init, None, "cpu")
    return policy


@torch.no_grad()
def rollout(policy, env_kwargs: dict, frames: int, n_envs: int, seed: int) -> dict[str, np.ndarray]:
    """[envs, T] reward, first (a new episode starts at this frame), latent (envs, T, D)."""
    from vpt_rl.envs.factory import make_env

    envs = [make_env(ENV_ID, policy.config.img_size, env_kwargs) for _ in range(n_envs)]
    steps = max(1, frames // n_envs)
    gen = torch.Generator().manual_seed(seed)
    episode = [0] * n_envs
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    first = np.ones(n_envs, dtype=bool)
    state = policy.initial_state(n_envs)
    rew = np.zeros((n_envs, steps), np.float32)
    firsts = np.zeros((n_envs, steps), bool)
    latents = None
    # privileged features of each frame (the env's own state, which the value cannot see
    # directly): break progress 0..7 one-hot, crosshair on a log in reach, on any block in reach
    priv = np.zeros((n_envs, steps, 10), np.float32)
    from vpt_rl.envs.voxel import world as W
    from vpt_rl.model import action_heads

    for t in range(steps):
        img = torch.from_numpy(np.stack([o["img"] for o in obs]))[:, None]
        out, state = policy(img, torch.from_numpy(first)[:, None], state)
        if latents is None:
            latents = np.zeros((n_envs, steps, out.latent.shape[-1]), np.float32)
        latents[:, t] = out.latent[:, 0].numpy()
        firsts[:, t] = first
        for i, env in enumerate(envs):
            u: Any = env.unwrapped  # VoxelTreechopEnv
            priv[i, t, min(int(u.break_progress), 7)] = 1.0
            tgt = u.target()
            priv[i, t, 8] = float(tgt is not None and "log" in W.BLOCK_NAMES[tgt[1]])
            priv[i, t, 9] = float(tgt is not None)
        action = action_heads.sample(out.logprobs, deterministic=False, generator=gen)
        for i, env in enumerate(envs):
            o, r, term, trunc, _ = env.step(
                {"buttons": int(action["buttons"][i, 0]), "camera": int(action["camera"][i, 0])}
            )
            rew[i, t] = r
            first[i] = term or trunc
            if first[i]:
                episode[i] += 1
                o, _ = env.reset(seed=seed + i + 1000 * episode[i])
            obs[i] = o
    for env in envs:
        env.close()
    assert latents is not None
    return {"reward": rew, "first": firsts, "latent": latents, "priv": priv}


def discounted(reward: np.ndarray, first: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma G_{t+1}, cut where the next frame starts a new episode (and 0 after the
    last frame: the rollout's tail is cut, like a time limit without a bootstrap)."""
    g = np.zeros_like(reward, dtype=np.float64)
    carry = np.zeros(reward.shape[0])
    for t in reversed(range(reward.shape[1])):
        nxt_first = first[:, t + 1] if t + 1 < reward.shape[1] else np.ones(reward.shape[0], bool)
        carry = reward[:, t] + gamma * carry * (~nxt_first)
        g[:, t] = carry
    return g


def ev(y: np.ndarray, pred: np.ndarray) -> float:
    vy = float(np.var(y))
    return float("nan") if vy <= 0 else 1.0 - float(np.var(y - pred)) / vy


def batch_ev(y_bt: np.ndarray, p_bt: np.ndarray, rows: int = 8, t: int = 64) -> tuple[float, float]:
    """Mean of the per-batch explained variances over [rows, t] blocks, and the share of
    blocks where it is undefined (all targets equal)."""
    vals, undefined = [], 0
    for r0 in range(0, y_bt.shape[0] - rows + 1, rows):
        for t0 in range(0, y_bt.shape[1] - t + 1, t):
            v = ev(y_bt[r0 : r0 + rows, t0 : t0 + t], p_bt[r0 : r0 + rows, t0 : t0 + t])
            undefined += not np.isfinite(v)
            if np.isfinite(v):
                vals.append(v)
    n = len(vals) + undefined
    return (float(np.mean(vals)) if vals else float("nan")), (undefined / n if n else float("nan"))


def ridge(x_tr, y_tr, x_te, lam: float):
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    a1 = np.concatenate([a, np.ones((len(a), 1))], 1)
    b1 = np.concatenate([b, np.ones((len(b), 1))], 1)
    reg = lam * np.eye(a1.shape[1])
    reg[-1, -1] = 0
    w = np.linalg.solve(a1.T @ a1 + reg, a1.T @ y_tr)
    return a1 @ w, b1 @ w


def mlp(x_tr, y_tr, x_te, seed: int = 0, steps: int = 1500):
    torch.manual_seed(seed)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a = torch.tensor((x_tr - mu) / sd, dtype=torch.float32)
    b = torch.tensor((x_te - mu) / sd, dtype=torch.float32)
    y = torch.tensor(y_tr, dtype=torch.float32)
    ys = float(y.std()) or 1.0
    net = torch.nn.Sequential(torch.nn.Linear(a.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(steps):
        idx = torch.randint(0, len(a), (512,))
        loss = ((net(a[idx]).squeeze(-1) - y[idx] / ys) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return net(a).squeeze(-1).numpy() * ys, net(b).squeeze(-1).numpy() * ys


def analyse(data: dict[str, np.ndarray], gammas: list[float], quick: bool) -> list[dict]:
    r, f, z = data["reward"], data["first"], data["latent"]
    n_envs = r.shape[0]
    half = max(1, n_envs // 2)
    rows = []
    for g in gammas:
        G = discounted(r, f, g)
        y_tr, y_te = G[:half].reshape(-1), G[half:].reshape(-1)
        x_tr, x_te = z[:half].reshape(-1, z.shape[-1]), z[half:].reshape(-1, z.shape[-1])
        row = {
            "gamma": g,
            "frames": int(r.size),
            "reward_frames": float((r > 0).mean()),
            "nonzero_target": float((G > 0.01).mean()),
            "mean": float(G.mean()),
            "std": float(G.std()),
            "normaliser_std": math.sqrt(max(float(G.var()), 1e-2)),
        }
        best = None
        for lam in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5):
            p_tr, p_te = ridge(x_tr, y_tr, x_te, lam)
            e = ev(y_te, p_te)
            if best is None or (np.isfinite(e) and e > best[0]):
                best = (e, lam, p_te)
        assert best is not None
        row["ridge_ev_train"] = ev(y_tr, ridge(x_tr, y_tr, x_tr, best[1])[0])
        row["ridge_ev_heldout"], row["ridge_lambda"] = best[0], best[1]
        row["ridge_batch_ev"], row["batch_undefined"] = batch_ev(
            G[half:], best[2].reshape(G[half:].shape), rows=min(8, n_envs - half), t=min(64, r.shape[1])
        )
        p_tr, p_te = mlp(x_tr, y_tr, x_te, steps=50 if quick else 1500)
        row["mlp_ev_train"], row["mlp_ev_heldout"] = ev(y_tr, p_tr), ev(y_te, p_te)
        # the same MLP on the privileged features (break progress, crosshair on a log): how much
        # of the return a value that knew the chopping state could explain
        q = data["priv"]
        p_tr, p_te = mlp(
            q[:half].reshape(-1, q.shape[-1]),
            y_tr,
            q[half:].reshape(-1, q.shape[-1]),
            steps=50 if quick else 1500,
        )
        row["priv_ev_train"], row["priv_ev_heldout"] = ev(y_tr, p_tr), ev(y_te, p_te)
        p_tr, p_te = mlp(
            np.concatenate([x_tr, q[:half].reshape(-1, q.shape[-1])], 1),
            y_tr,
            np.concatenate([x_te, q[half:].reshape(-1, q.shape[-1])], 1),
            steps=50 if quick else 1500,
        )
        row["latent_priv_ev_heldout"] = ev(y_te, p_te)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- runs
def read_csv(path: Path) -> list[dict[str, float]]:
    out = []
    with open(path) as fh:
        for row in csv.DictReader(fh):
            out.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out


def normalisers(run: Path) -> list[tuple[int, float, float]]:
    """(frames, de-biased mean, std) of the true value head in every weights file kept."""
    from vpt_rl.model.weights_file import read_state_dict

    out = []
    for w in sorted((run / "checkpoints").glob("step_*.weights")):
        sd = read_state_dict(str(w))
        rm, rms, c = (float(sd[f"value_head.normalizer.{k}"].float().reshape(())) for k in
                      ("running_mean", "running_mean_sq", "debiasing_term"))  # fmt: skip
        mean = rm / max(c, 1e-5)
        out.append(
            (
                int(w.stem.split("_")[1].split(".")[0]),
                mean,
                math.sqrt(max(rms / max(c, 1e-5) - mean**2, 1e-2)),
            )
        )
    return sorted(out)


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def summarise_run(run: Path) -> dict:
    rows = read_csv(run / "progress.csv")
    n = len(rows)

    def mean_of(key: str, lo: float, hi: float) -> float:
        vals = [
            r[key]
            for r in rows[int(lo * n) : max(int(hi * n), int(lo * n) + 1)]
            if key in r and np.isfinite(r[key])
        ]
        return float(np.mean(vals)) if vals else float("nan")

    ev_rows = [r for r in rows if "train/explained_variance" in r]
    out = {
        "run": run.name,
        "iterations": n,
        "frames": int(rows[-1].get("time/frames", 0)) if rows else 0,
        "ev_first_half": mean_of("train/explained_variance", 0, 0.5),
        "ev_second_half": mean_of("train/explained_variance", 0.5, 1.0),
        "ev_last_eighth": mean_of("train/explained_variance", 0.875, 1.0),
        "ev_undefined_share": (n - len(ev_rows)) / n if n else float("nan"),
        "value_loss_first_half": mean_of("train/value_loss", 0, 0.5),
        "value_loss_second_half": mean_of("train/value_loss", 0.5, 1.0),
        "reward_per_frame": mean_of("rollout/reward_mean", 0, 1.0),
        "return_first_eighth": mean_of("rollout/ep_return_mean", 0, 0.125),
        "return_second_half": mean_of("rollout/ep_return_mean", 0.5, 1.0),
        "return_last": rows[-1].get("rollout/ep_return_mean", float("nan")) if rows else float("nan"),
        "value_mean_second_half": mean_of("rollout/value_mean", 0.5, 1.0),
        # the logged value is the mean over iterations of a per-batch statistic: split by whether
        # the iteration's batch held a reward (without one, the targets are the value's own
        # bootstrap and any variation of the value makes the statistic negative)
        "ev_second_half_with_reward": _mean(
            [
                r["train/explained_variance"]
                for r in rows[n // 2 :]
                if "train/explained_variance" in r and r.get("rollout/reward_mean", 0) > 0
            ]
        ),
        "ev_second_half_no_reward": _mean(
            [
                r["train/explained_variance"]
                for r in rows[n // 2 :]
                if "train/explained_variance" in r and r.get("rollout/reward_mean", 0) == 0
            ]
        ),
        "share_iterations_no_reward": float(np.mean([r.get("rollout/reward_mean", 0) == 0 for r in rows]))
        if rows
        else float("nan"),
        "ev_second_half_median": float(
            np.median(
                [r["train/explained_variance"] for r in rows[n // 2 :] if "train/explained_variance" in r]
                or [np.nan]
            )
        ),
        "grad_norm": mean_of("train/grad_norm", 0, 1.0),
    }
    try:
        out["normaliser"] = normalisers(run)
    except Exception as e:  # a run without kept checkpoints, or another format
        out["normaliser"] = f"unavailable: {e}"
    return out


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    result: dict = {"settings": args.settings, "env_kwargs": SETTINGS[args.settings]}
    if args.init is not None or args.quick:
        kw = dict(SETTINGS[args.settings])
        if args.quick:
            kw["max_episode_steps"] = 24
        policy = load(args.init)
        data = rollout(policy, kw, args.frames, args.envs, args.seed)
        result["rollout"] = {"init": str(args.init), "frames": int(data["reward"].size), "envs": args.envs,
                             "episodes_ended": int(data["first"][:, 1:].sum()),
                             "return_per_500_frames": float(data["reward"].sum() / data["reward"].size * 500)}  # fmt: skip
        result["targets"] = analyse(data, args.gammas, args.quick)
        print(json.dumps(result["rollout"]))
        hdr = ["gamma", "nonzero_target", "mean", "std", "normaliser_std", "ridge_ev_train", "ridge_ev_heldout",
               "ridge_batch_ev", "batch_undefined", "mlp_ev_train", "mlp_ev_heldout", "priv_ev_train",
               "priv_ev_heldout", "latent_priv_ev_heldout"]  # fmt: skip
        print("| " + " | ".join(hdr) + " |")
        for row in result["targets"]:
            print("| " + " | ".join(f"{row[h]:.3g}" for h in hdr) + " |")
    if args.runs:
        result["runs"] = [summarise_run(r) for r in args.runs if (r / "progress.csv").is_file()]
        for r in result["runs"]:
            print(json.dumps(r))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
