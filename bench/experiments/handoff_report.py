"""The report of bench/experiments/handoff.py: the table, the diagnostics behind the ablations, the plot and
the docs block, all from the results that `handoff.collect` rebuilds from the run folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

COLORS = {
    "expert": "k",
    "bc": "C0",
    "bc_dagger": "C9",
    "rl_bc": "C1",
    "rl_bc_noprior": "C2",
    "rl_bc_nowarmup": "C4",
    "rl_scratch": "C3",
}


LABELS = {
    "expert": "demonstrator (scripted expert, recording noise)",
    "bc": "BC from the demonstrations",
    "bc_dagger": "BC after DAgger rounds (the demonstrator labels BC's own states)",
    "rl_bc": "RL from BC (KL prior, value warm-up)",
    "rl_bc_noprior": "RL from BC, no prior",
    "rl_bc_nowarmup": "RL from BC, no value warm-up",
    "rl_scratch": "RL from scratch",
}


ARMS = [arm for arm in LABELS if arm != "expert"]  # table and plot order (extra arms after)


def arm_order(results: dict) -> list[str]:
    """The built-in arms, then the extra ones (``--arm``) in the order they were added."""
    return ARMS + list(results.get("extra_arms", {}))


def label(results: dict, arm: str) -> str:
    """An arm's name in the tables: the built-in label, or for an extra arm its overrides."""
    if arm in LABELS:
        return LABELS[arm]
    pinned = [o for o in results.get("extra_arms", {}).get(arm, []) if "value_warmup" not in o]
    return f"RL from BC, `{' '.join(pinned)}` ({arm})"


def color(results: dict, arm: str) -> str:
    extra = list(results.get("extra_arms", {}))
    return COLORS[arm] if arm in COLORS else f"C{(5 + extra.index(arm)) % 10}"


def series(run_dir: Path, tag: str) -> list[tuple[float, float]]:
    """(env frames, value) of one logged tag of a PPG run (rows without it skipped)."""
    points = []
    for path in sorted(run_dir.glob("progress*.csv")):
        for row in csv.DictReader(open(path)):
            if row.get(tag, "") not in ("", "nan"):
                points.append((float(row["time/frames"]), float(row[tag])))
    return points


def curve(run_dir: Path) -> list[tuple[float, float]]:
    """(env frames, rollout/ep_return_mean) of a PPG run."""
    return series(run_dir, "rollout/ep_return_mean")


def at_budget(points: list[tuple[float, float]], frames: float) -> float:
    """The last value logged at or before ``frames`` (nan if none)."""
    before = [v for f, v in points if f <= frames]
    return before[-1] if before else float("nan")


def window_mean(points: list[tuple[float, float]], lo: float, hi: float) -> float:
    vals = [v for f, v in points if lo < f <= hi]
    return float(np.mean(vals)) if vals else float("nan")


def mean_curve(curves: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames logged by every seed, and the mean, min and max return there."""
    if not curves:
        return (np.array([]),) * 4
    common = sorted(set.intersection(*(set(f for f, _ in pts) for pts in curves.values())))
    values = np.array([[dict(pts)[f] for f in common] for pts in curves.values()])
    return np.array(common), values.mean(0), values.min(0), values.max(0)


def seeds_of(results: dict) -> list[int]:
    return sorted({int(seed) for entry in results["arms"].values() for seed in entry["eval"]})


def diagnostics(args, results: dict) -> list[str]:
    """What the prior and the warm-up do, per RL arm (seed means): the return at fractions of the
    budget (with min..max), the lowest return in the first eighth (a collapse of the BC start
    shows there), the KL to the prior and the value's explained variance early and late."""
    frames = float(results.get("rl_frames") or 0)
    fracs = (0.125, 0.25, 0.5, 0.75, 1.0)
    head = " | ".join(f"{f * frames / 1000:.0f}k" for f in fracs)
    lines = [
        "",
        f"| arm (seeds) | training return at {head} frames | lowest in the first eighth | "
        "lowest after the first 10% | KL to the prior, first / last eighth | "
        "explained variance, first / last eighth | pooled explained variance, first / second half |",
        "|---|" + "---|" * (len(fracs) + 5),
    ]
    for arm in arm_order(results):
        curves = results["arms"].get(arm, {}).get("curves", {})
        seeds = sorted(curves)
        if not seeds:  # BC has no curves
            continue
        runs = [args.out / "runs" / f"{arm}-s{seed}" for seed in seeds]
        ret = [curves[seed] for seed in seeds]  # read once, by collect
        cells = []
        for f in fracs:
            v = np.array([at_budget(c, f * frames) for c in ret])
            cells.append(f"{v.mean():.1f} ({v.min():.1f} .. {v.max():.1f})")
        low = np.mean([min((v for f, v in c if f <= frames / 8), default=np.nan) for c in ret])
        # the bar: the seed-mean curve's lowest point once 10% of the budget has passed
        steps, mean, _, _ = mean_curve(curves)
        late = mean[steps > frames / 10] if len(steps) else np.array([])
        low_late = f"{late.min():.1f}" if len(late) else "n/a"
        lines.append(
            f"| {label(results, arm)} ({len(seeds)}) | " + " | ".join(cells) + f" | {low:.1f} | {low_late} | "
            f"{_early_late(runs, 'train/kl_prior', frames)} | "
            f"{_early_late(runs, 'train/explained_variance', frames)} | "
            f"{_halves(runs, 'aux/explained_variance_pooled', frames)} |"
        )
    return lines


def _early_late(runs: list[Path], tag: str, frames: float) -> str:
    """Seed mean of a tag over the first and the last eighth of the budget."""
    s = [series(r, tag) for r in runs]
    early = np.nanmean([window_mean(x, 0, frames / 8) for x in s])
    late = np.nanmean([window_mean(x, frames * 7 / 8, frames) for x in s])
    return f"{early:.3f} / {late:.3f}"


def _halves(runs: list[Path], tag: str, frames: float) -> str:
    """Seed mean of a tag over the first and the second half of the budget ("n/a" where a run
    never logged it: runs made before the tag existed)."""
    s = [series(r, tag) for r in runs]
    if not any(s):
        return "n/a"
    first = np.nanmean([window_mean(x, 0, frames / 2) for x in s if x])
    second = np.nanmean([window_mean(x, frames / 2, frames) for x in s if x])
    return f"{first:.3f} / {second:.3f}"


def write_summary(args, results: dict) -> None:
    expert = results.get("expert", float("nan"))
    lines = [
        f"Settings `{args.settings}` ({json.dumps(results.get('env_kwargs', args.env_kwargs))}); "
        f"RL budget {results.get('rl_frames')} env frames per run; seeds {seeds_of(results)}; eval "
        f"{args.eval_episodes} held-out episodes per checkpoint.",
        "",
        "| arm | eval return, mean | min .. max over seeds | of the demonstrator |",
        "|---|---|---|---|",
        f"| {LABELS['expert']} | {expert:.2f} | | 100% |",
    ]
    for arm in arm_order(results):
        evals = list(results["arms"].get(arm, {}).get("eval", {}).values())
        if evals:
            r = np.array(evals)
            lines.append(
                f"| {label(results, arm)} | {r.mean():.2f} | {r.min():.2f} .. {r.max():.2f} | {r.mean() / expert:.0%} |"
            )
    for seed, by_round in sorted(results.get("dagger_rounds", {}).items()):
        arms = results["arms"]
        chain = {0: arms.get("bc", {}).get("eval", {}).get(seed), **dict(sorted(by_round.items()))}
        chain[max(chain) + 1] = arms.get("bc_dagger", {}).get("eval", {}).get(seed)
        cells = ", ".join(f"round {r}: {v:.2f}" for r, v in chain.items() if v is not None)
        lines += ["", f"DAgger driver (BC seed {seed}) after each round: {cells}."]
    bc, scratch = (mean_curve(results["arms"].get(a, {}).get("curves", {})) for a in ("rl_bc", "rl_scratch"))
    if len(bc[0]) and len(scratch[0]):
        bc_at, scratch_at = dict(zip(bc[0], bc[1])), dict(zip(scratch[0], scratch[1]))
        above = [bc_at[f] > scratch_at[f] for f in sorted(bc_at.keys() & scratch_at.keys())]
        first = next((f for f, m in zip(bc[0], bc[1]) if m > expert), None)
        lines += [
            "",
            f"RL from BC above RL from scratch (seed means) at {sum(above)} of {len(above)} logged budgets; "
            + (
                f"its mean training return first exceeds the demonstrator at {first:,.0f} frames."
                if first
                else "its mean training return does not reach the demonstrator in this budget."
            ),
        ]
    lines += diagnostics(args, results)
    text = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(text)
    print(text)
    tag = getattr(args, "tag", args.settings)
    png = args.docs.parent / "img" / f"handoff_{tag}.png"
    plot(results, expert, png, args.settings)
    if args.docs.is_file():
        start, end = f"<!-- handoff:{tag}:start -->", f"<!-- handoff:{tag}:end -->"
        doc = args.docs.read_text()
        block = f"{start}\n{text}\n![handoff curves, {args.settings}](img/{png.name})\n{end}"
        if start in doc and end in doc:
            doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
            args.docs.write_text(doc)


def plot(results: dict, expert: float, png: Path, settings: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm in arm_order(results):
        frames, mean, lo, hi = mean_curve(results["arms"].get(arm, {}).get("curves", {}))
        if len(frames):
            ax.plot(frames, mean, color=color(results, arm), label=label(results, arm))
            ax.fill_between(frames, lo, hi, color=color(results, arm), alpha=0.15)
    for arm in ("bc", "bc_dagger"):
        bc = list(results["arms"].get(arm, {}).get("eval", {}).values())
        if bc:
            ax.axhline(np.mean(bc), color=COLORS[arm], ls=":", label=f"{LABELS[arm]} (eval)")
    ax.axhline(expert, color="k", ls="--", label=LABELS["expert"])
    ax.set_xlabel("env frames")
    ax.set_ylabel("training return (mean of last 20 episodes)")
    start = ", RL from the DAgger BC" if results["arms"].get("bc_dagger") else ""
    ax.set_title(f"BC -> RL handoff, {settings} settings{start} (lines: seed mean; bands: min..max)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    print(f"plot: {png}")
