"""A run's curves as one PNG, from its CSV files (`vpt-rl plot runs/NAME`, also written at the
end of every `train_ppo.py` / `train_bc.py` run as runs/NAME/progress.png).

Reads `progress.csv` and every `progress_from_*.csv` of resumed invocations, joined on the
x-axis (`time/frames`), and draws what a newcomer looks at first: the mean episode return, the
policy-phase losses, entropy and KL, and throughput (or, for a BC run, its losses and accuracies).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from vpt_rl.errors import VPTRLError

__all__ = ["PlotError", "plot_run", "read_progress"]

# (panel title, [(tag, label)]) for PPG runs and BC runs; panels without data are left out
PPG_PANELS = [
    ("episode return (mean of the last 20 episodes)", [("rollout/ep_return_mean", "return")]),
    (
        "policy-phase losses",
        [("train/policy_loss", "policy loss"), ("train/value_loss", "value loss (normalised)")],
    ),
    ("entropy and KL (nats per frame)", [("train/entropy", "entropy"), ("train/kl_prior", "KL to prior")]),
    ("throughput", [("time/fps", "env frames / s")]),
]
BC_PANELS = [
    ("negative log-likelihood", [("bc/nll", "train"), ("bc/val_loss", "validation")]),
    (
        "accuracy (argmax)",
        [
            ("bc/acc_buttons", "buttons (train)"),
            ("bc/val_acc_buttons", "buttons (val)"),
            ("bc/acc_camera", "camera (train)"),
            ("bc/val_acc_camera", "camera (val)"),
        ],
    ),
    ("throughput", [("time/fps", "demonstration frames / s")]),
]


class PlotError(VPTRLError, ValueError):
    """The run folder has nothing to plot; the message names the folder."""


def read_progress(run_dir: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """tag -> [(frames, value)] over every CSV of the run (sorted by frames, empty cells skipped)."""
    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("progress*.csv"))
    if not files:
        raise PlotError(f"{run_dir}: no progress.csv (is this a train_ppo.py / train_bc.py run folder?)")
    series: dict[str, list[tuple[float, float]]] = {}
    for path in files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                x = _number(row.get("time/frames"))
                if x is None:
                    continue
                for tag, cell in row.items():
                    y = _number(cell)
                    if y is not None and tag != "time/frames":
                        series.setdefault(tag, []).append((x, y))
    for points in series.values():
        points.sort()
    return series


def _number(cell: str | None) -> float | None:
    if cell is None or cell == "":
        return None
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw the run's curves to ``out`` (default runs/NAME/progress.png); returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display (CI, workers, ssh)
    import matplotlib.pyplot as plt

    from vpt_rl.atomic import atomic_write_bytes

    run_dir = Path(run_dir)
    series = read_progress(run_dir)
    panels = BC_PANELS if any(tag.startswith("bc/") for tag in series) else PPG_PANELS
    panels = [(title, [(t, lab) for t, lab in lines if t in series]) for title, lines in panels]
    panels = [(title, lines) for title, lines in panels if lines]
    if not panels:
        raise PlotError(f"{run_dir}: the CSV has none of the plotted tags yet")
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 3.2 * rows), squeeze=False)
    for ax, (title, lines) in zip(axes.flat, panels):
        for tag, label in lines:
            xs, ys = zip(*series[tag])
            ax.plot(xs, ys, label=label, linewidth=1.4)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("frames")
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(run_dir.name, fontsize=11)
    fig.tight_layout()
    out = Path(out) if out is not None else run_dir / "progress.png"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out
