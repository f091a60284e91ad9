"""Sharded checkpoints in `runs/NAME/checkpoints/`, one set per step (frames F, 12 digits):

    step_F.weights           the policy's plain state dict (139 keys for PPG, 134 for BC)      rank 0
    step_F.state.pt          the replicated training state: optimiser, counters, episode log    rank 0
    step_F.rank{R}.pt        rank R's own part: envs, roller memory, aux buffer, RNG           rank R
    step_F.manifest.json     written last by rank 0, after every rank finished: the set is
                             complete only with it (its files and world size listed)
    latest.weights           the newest complete step's weights (a hard link: no second copy)
    latest.json              names the newest complete step

Why sharded: a rank's own part (the aux buffer alone is ~5 GiB per rank at 1x with
configs/vpt_diamond.yaml, docs/scaling.md) must never cross the process group: gathering it on
rank 0 staged world_size x 5 GiB on one GPU under NCCL and wrote one huge file twice. Each rank
writes its own file, rank 0 the replicated part; resume reads the replicated part and its own
rank's file only. Every rank therefore needs to see the run folder (one node, or a shared file
system across nodes: docs/scaling.md).

Every file is written atomically (temp file + rename, `vpt_rl.atomic`); a set without its
manifest, or with a listed file missing, is never resumed from, so a kill at any point leaves the
previous complete checkpoint in force (docs/implementation_details.md item 31).
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpt_rl.atomic import atomic_torch_save, atomic_write_bytes, atomic_write_text
from vpt_rl.errors import VPTRLError

__all__ = [
    "CheckpointError",
    "capture_rng",
    "complete_steps",
    "load_latest",
    "load_rank_state",
    "load_rank_states",
    "load_state",
    "prune",
    "restore_rng",
    "save_checkpoint",
    "step_name",
]

STATE_VERSION = 2
_MANIFEST_RE = re.compile(r"^step_(\d{12})\.manifest\.json$")


class CheckpointError(VPTRLError, RuntimeError):
    """A checkpoint is missing or unreadable; the message names the file."""


def step_name(frames: int) -> str:
    """``step_000000004096`` for 4096 frames."""
    return f"step_{frames:012d}"


def rank_file(ckpt_dir: Path, name: str, rank: int) -> Path:
    """Rank ``rank``'s part of step ``name``."""
    return ckpt_dir / f"{name}.rank{rank}.pt"


def save_checkpoint(
    ckpt_dir: str | os.PathLike,
    frames: int,
    save_weights_fn: Callable[[Path], Any],
    state: dict[str, Any] | None,
    rank_state: dict[str, Any],
    keep_last: int,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] = lambda: None,
) -> Path:
    """Write one checkpoint set (module docstring); call it on every rank.

    Each rank writes ``rank_state`` (its envs, memory, buffers, RNG); rank 0 also writes the
    weights (``save_weights_fn(path)``, atomically: `vpt_rl.save_weights`) and ``state`` (the
    replicated part; ignored on other ranks). After ``barrier()`` (every rank's file is on disk)
    rank 0 writes the manifest, points ``latest`` at the set and prunes to ``keep_last`` sets
    (0 = keep all). Returns the step weights path.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = step_name(frames)
    weights = ckpt_dir / f"{name}.weights"
    atomic_torch_save({**rank_state, "version": STATE_VERSION, "rank": rank}, rank_file(ckpt_dir, name, rank))
    if rank == 0:
        save_weights_fn(weights)
        full = {
            **(state or {}),
            "version": STATE_VERSION,
            "frames": frames,
            "weights_file": weights.name,
            "world_size": world_size,
        }
        atomic_torch_save(full, ckpt_dir / f"{name}.state.pt")
    barrier()  # every rank's part is written before the manifest says the set is complete
    if rank == 0:
        files = [weights.name, f"{name}.state.pt"] + [
            rank_file(ckpt_dir, name, r).name for r in range(world_size)
        ]
        manifest = {"version": STATE_VERSION, "frames": frames, "world_size": world_size, "files": files}
        atomic_write_text(ckpt_dir / f"{name}.manifest.json", json.dumps(manifest, indent=1))
        _link_latest(weights, ckpt_dir / "latest.weights")
        atomic_write_text(ckpt_dir / "latest.json", json.dumps({"step": name, "frames": frames}))
        prune(ckpt_dir, keep_last)
    return weights


def _link_latest(src: Path, dst: Path) -> None:
    """``dst`` becomes the same file as ``src`` atomically: a hard link (no second copy of 1x's
    weights), or a copy where the file system has no hard links."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_write_bytes(dst, src.read_bytes())


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("version") == STATE_VERSION else None


def complete_steps(ckpt_dir: str | os.PathLike) -> list[tuple[int, str]]:
    """(frames, step name) of every complete set in ``ckpt_dir``, oldest first: a readable
    manifest whose listed files all exist."""
    ckpt_dir = Path(ckpt_dir)
    out = []
    for p in ckpt_dir.glob("step_*.manifest.json"):
        m = _MANIFEST_RE.match(p.name)
        if m is None:
            continue
        manifest = _read_manifest(p)
        if manifest is not None and all((ckpt_dir / f).is_file() for f in manifest.get("files", [])):
            out.append((int(m.group(1)), p.name[: -len(".manifest.json")]))
    return sorted(out)


def prune(ckpt_dir: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete sets (0 = keep all), and any incomplete
    set older than the newest complete one (left by a crash); the manifest goes first, so a set
    interrupted while being deleted is never taken for complete. Returns what was removed."""
    if keep_last <= 0:
        return []
    ckpt_dir = Path(ckpt_dir)
    complete = complete_steps(ckpt_dir)
    if not complete:
        return []
    keep = {name for _, name in complete[-keep_last:]}
    newest = complete[-1][0]
    removed: list[Path] = []
    names = {p.name.split(".", 1)[0] for p in ckpt_dir.glob("step_*")}
    for name in sorted(names):
        if name in keep or not re.fullmatch(r"step_\d{12}", name) or int(name[5:]) > newest:
            continue
        manifest = ckpt_dir / f"{name}.manifest.json"
        for p in [manifest, *sorted(ckpt_dir.glob(f"{name}.*"))]:
            if p.exists():
                p.unlink()
                removed.append(p)
    return removed


def load_latest(ckpt_dir: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """(replicated training state, weights path) of the newest complete checkpoint in ``ckpt_dir``.

    `latest.json` names it; if that set is incomplete or unreadable, the newest complete set is
    used instead. The state's ``"step"`` names the set (for `load_rank_state`).
    """
    ckpt_dir = Path(ckpt_dir)
    candidates = [name for _, name in reversed(complete_steps(ckpt_dir))]
    try:
        pointed = json.loads((ckpt_dir / "latest.json").read_text())["step"]
        if pointed in candidates:
            candidates.remove(pointed)
            candidates.insert(0, pointed)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for name in candidates:
        try:
            state = load_state(ckpt_dir / f"{name}.state.pt")
        except CheckpointError:
            continue
        state["step"] = name
        return state, ckpt_dir / state["weights_file"]
    raise CheckpointError(
        f"no readable checkpoint in {ckpt_dir} (a complete one has step_*.manifest.json and every "
        "file it lists)"
    )


def load_rank_state(ckpt_dir: str | os.PathLike, step: str, rank: int) -> dict[str, Any]:
    """Rank ``rank``'s own part of set ``step`` (read by that rank alone on resume)."""
    return load_state(rank_file(Path(ckpt_dir), step, rank))


def load_rank_states(ckpt_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every rank's part of the newest complete checkpoint, in rank order (tools and tests)."""
    state, _ = load_latest(ckpt_dir)
    return [load_rank_state(ckpt_dir, state["step"], r) for r in range(int(state["world_size"]))]


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a `.state.pt` or `.rank{R}.pt` written by `save_checkpoint`. weights_only=False
    because it holds numpy RNG and env states (plain pickles of this project's own objects): never
    point this at untrusted files (weights files, which users do exchange, are read with
    weights_only=True)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read the training state: {e}") from e
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: not a vpt_rl training state (version {STATE_VERSION})")
    return state


def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU and CUDA) and the named torch generators."""
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(rng: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Inverse of `capture_rng` (the named generators are set in place)."""
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    for name, g in (generators or {}).items():
        if name not in rng["generators"]:
            raise CheckpointError(f"training state has no RNG state for generator {name!r}")
        g.set_state(rng["generators"][name])
