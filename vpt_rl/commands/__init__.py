"""`vpt-rl` subcommands: one module per command, each with ``add_parser(subparsers)`` and ``run(args) -> int``.

Keep heavy imports inside ``run`` so that ``vpt-rl --help`` stays fast.
"""

from __future__ import annotations

from vpt_rl.errors import VPTRLError


class CommandError(VPTRLError):
    """A user error (bad file, bad option): the CLI prints ``vpt-rl NAME: error: MESSAGE`` and returns 2."""
