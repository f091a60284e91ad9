"""`VPTRLError`: the one base of every user error the package raises.

A user error is bad input (a file, a key, a shape, a config field) or a run that cannot start as
asked. Its message names the problem, so the CLIs (`train_ppo.py`, `train_bc.py`, `vpt-rl`) catch
this one class, print ``PROG: error: MESSAGE`` and exit 2 without a traceback. Anything else that
escapes is a bug (or a training failure such as `vpt_rl.algo.phases.NonFiniteError`, exit 1) and
keeps its traceback.

Each subclass also keeps the built-in base it had (``ValueError`` for bad input,
``RuntimeError`` for a run that cannot go on), so ``except ValueError`` callers still catch it.
`tests/unit/test_errors.py` checks that every exception class in the package derives from it.
"""

from __future__ import annotations

__all__ = ["VPTRLError"]


class VPTRLError(Exception):
    """A user error: bad input (file, key, shape, config field) or a run that cannot start as
    asked; the message names the problem; the CLIs print it and exit 2 without a traceback."""
