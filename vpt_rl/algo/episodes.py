"""Episode bookkeeping for the `rollout/*` tags and the end-of-run summary.

`EpisodeStats` runs beside one roller (one rank's envs): running return and length per env, and
a record of every episode that ends. `EpisodeLog` is the window the trainer logs from: with
several data-parallel ranks it is fed the records of all ranks in the order (env step, global env
index), which is exactly the order a single process stepping all the envs would see, so a 2-rank
run logs what a 1-rank run with twice the envs logs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

__all__ = ["EpisodeLog", "EpisodeRecord", "EpisodeStats"]


@dataclass(frozen=True, order=True)
class EpisodeRecord:
    """One finished episode: at which env step (counted per env from the run's start) it ended,
    in which env (global index over ranks), its return, length and items held (nan if unknown)."""

    step: int
    env: int
    ret: float
    length: int
    items: float = float("nan")


class EpisodeLog:
    """A window of the last ``window`` episodes, the run's first ``window`` returns, the count."""

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.items: deque[float] = deque(maxlen=window)
        self.first_returns: list[float] = []  # the summary's "start"
        self.completed = 0

    def add(self, record: EpisodeRecord) -> None:
        """Count one finished episode."""
        self.returns.append(record.ret)
        self.lengths.append(record.length)
        if np.isfinite(record.items):
            self.items.append(record.items)
        if len(self.first_returns) < self.window:
            self.first_returns.append(record.ret)
        self.completed += 1

    def mean_return(self) -> float:
        """Mean return over the window (nan before the first episode ends)."""
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def first_mean_return(self) -> float:
        """Mean return of the run's first `window` completed episodes (nan before the first)."""
        return float(np.mean(self.first_returns)) if self.first_returns else float("nan")

    def mean_items(self) -> float:
        """Mean number of items held at episode end over the window (nan if never reported)."""
        return float(np.mean(self.items)) if self.items else float("nan")

    def mean_length(self) -> float:
        """Mean episode length over the window (nan before the first episode ends)."""
        return float(np.mean(self.lengths)) if self.lengths else float("nan")

    def scalars(self) -> dict[str, float]:
        """The `rollout/ep_*` tags that are defined yet (each is absent until an episode ends)."""
        values = {
            "rollout/ep_return_mean": self.mean_return(),
            "rollout/ep_len_mean": self.mean_length(),
            "rollout/ep_items_mean": self.mean_items(),
        }
        return {tag: v for tag, v in values.items() if np.isfinite(v)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "items": list(self.items),
            "first_returns": list(self.first_returns),
            "completed": self.completed,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for name in ("returns", "lengths", "items"):
            window = getattr(self, name)
            window.clear()
            window.extend(d[name])
        self.first_returns = list(d.get("first_returns", []))
        self.completed = int(d["completed"])


class EpisodeStats(EpisodeLog):
    """One roller's envs: running return/length per env, its own window, and the records of the
    episodes that ended since the last `drain` (``env_offset``: global index of its env 0)."""

    def __init__(self, num_envs: int, window: int = 20, env_offset: int = 0) -> None:
        super().__init__(window)
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.len = np.zeros(num_envs, dtype=np.int64)
        self.env_offset = env_offset
        self.pending: list[EpisodeRecord] = []

    def step(
        self,
        reward: np.ndarray,
        ended: np.ndarray,
        items: dict[int, float] | None = None,
        rows: np.ndarray | None = None,
        step_index: int = 0,
    ) -> None:
        """Add one step's rewards; close the episodes that ``ended`` (``items``: position in
        ``rows`` -> items held at the episode end, where the env reports an inventory).
        ``rows``: the envs the arrays are for (default all); ``step_index``: the env step."""
        rows = np.arange(len(self.ret)) if rows is None else np.asarray(rows)
        self.ret[rows] += reward
        self.len[rows] += 1
        items = {int(rows[k]): v for k, v in (items or {}).items()}
        for i in rows[np.flatnonzero(ended)]:
            record = EpisodeRecord(
                step_index,
                int(i) + self.env_offset,
                float(self.ret[i]),
                int(self.len[i]),
                items.get(int(i), float("nan")),
            )
            self.add(record)
            self.pending.append(record)
            self.ret[i] = 0.0
            self.len[i] = 0

    def drain(self) -> list[EpisodeRecord]:
        """The records of the episodes that ended since the last call."""
        out, self.pending = self.pending, []
        return out

    def reset_envs(self, rows: np.ndarray) -> None:
        """Forget the running episodes of ``rows`` (they restart without being counted)."""
        self.ret[rows] = 0.0
        self.len[rows] = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "ret": self.ret.copy(),
            "len": self.len.copy(),
            "pending": [astuple(r) for r in self.pending],
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        self.ret, self.len = np.array(d["ret"]), np.array(d["len"])
        self.pending = [EpisodeRecord(*r) for r in d.get("pending", [])]
