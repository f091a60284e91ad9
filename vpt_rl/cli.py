"""The ``vpt-rl`` console command: dispatches to the subcommands in ``vpt_rl/commands/``.

Also runnable as ``python -m vpt_rl.cli``. A user error (a `vpt_rl.errors.VPTRLError`: a file that
cannot be read, a config that does not validate) prints one line ``vpt-rl NAME: error: ...`` on
stderr and returns 2, without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from vpt_rl import __version__
from vpt_rl.errors import VPTRLError

# module names under vpt_rl.commands, in the order `vpt-rl --help` lists them
COMMANDS = ["inspect", "record", "export", "eval", "plot", "doctor"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="vpt-rl", description="RL fine-tuning tools for OpenAI's VPT Minecraft policies."
    )
    parser.add_argument("--version", action="version", version=f"vpt-rl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"vpt_rl.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vpt-rl`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (argparse already printed it)
        return e.code if isinstance(e.code, int) else 2
    try:
        return int(args.run(args))
    except VPTRLError as e:  # a user error: its message names the problem (vpt_rl/errors.py)
        print(f"vpt-rl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` & co.: stop quietly (Python docs, "Note on SIGPIPE")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
