"""``vpt-rl plot RUN_DIR [--out PNG]``: a run's return curve and main losses as one PNG.

Reads the run's progress.csv (and the CSVs of resumed invocations) and writes RUN_DIR/progress.png
unless --out says otherwise; train_ppo.py and train_bc.py write the same picture when they end.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vpt_rl.commands import CommandError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``plot`` with the ``vpt-rl`` subparsers."""
    parser = subparsers.add_parser(
        "plot",
        help="draw a run's return curve and main losses to a PNG",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a runs/NAME folder")
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default RUN_DIR/progress.png)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the PNG and print its path."""
    from vpt_rl.run_plot import PlotError, plot_run

    try:
        out = plot_run(args.run_dir, args.out)
    except PlotError as e:
        raise CommandError(str(e)) from None
    print(out)
    return 0
