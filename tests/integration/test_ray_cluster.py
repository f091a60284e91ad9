"""A two-node Ray cluster on this machine (scripts/ray_two_nodes.py, bounded, cleans up after
itself): envs placed on the node that has the custom resource (checked by the actors' node ids),
actors dying with a driver killed by SIGKILL, and close() ending them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed: the Ray backend is the optional extra vpt-rl[ray]")

ROOT = Path(__file__).resolve().parents[2]


def test_two_node_placement_owner_death_and_close():
    out = subprocess.run(
        [sys.executable, "scripts/ray_two_nodes.py", "--limit", "150"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,  # the script stops its nodes at its own 150 s limit
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for line in ("placement: OK", "owner death: OK", "close: OK", "two-node cluster: all OK"):
        assert line in out.stdout, out.stdout[-3000:]
