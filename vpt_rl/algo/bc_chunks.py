"""Behavioural cloning: the loss (a pure function) and the chunk streams that feed it.

Training batches are ``B`` rows, each playing its episodes back to back in chunks of ``T``
frames. An episode that ends inside a chunk is followed at once by the next one with
``first=True`` at its first frame: the network masks memory at every ``first`` (docs/vpt_format.md §0), so
no padding is needed and memory is carried across the chunks of an episode (truncated backprop
through time: the trainer detaches the state between chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch

from vpt_rl.data.demos import Episode
from vpt_rl.model import action_heads


def bc_loss(
    logprobs: dict[str, torch.Tensor],
    action: dict[str, torch.Tensor],
    valid_bt: torch.Tensor | None = None,
    prior_logprobs: dict[str, torch.Tensor] | None = None,
    kl_coef: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Negative log-likelihood of the demonstrated actions (both heads summed, docs/vpt_format.md §6.7),
    optionally plus ``kl_coef`` * KL(prior || policy), averaged over valid frames.

    Returns ``loss`` (to minimise), ``nll``, ``kl`` (0 without a prior), ``acc_buttons`` and
    ``acc_camera`` (argmax accuracy); the keys are the TensorBoard tags under ``bc/``.
    """
    nll_bt = -action_heads.logprob(logprobs, action)
    if valid_bt is None:
        valid_bt = torch.ones_like(nll_bt, dtype=torch.bool)
    weight_bt = valid_bt.to(nll_bt.dtype)
    n = weight_bt.sum().clamp_min(1.0)

    def mean(x_bt: torch.Tensor) -> torch.Tensor:
        return (x_bt * weight_bt).sum() / n

    nll = mean(nll_bt)
    if prior_logprobs is not None:
        # why: keeps the cloned policy near the initial one (the same KL(prior||theta) as the RL
        # fine-tuning penalty, VPT paper section on RL fine-tuning)
        kl = mean(action_heads.kl(prior_logprobs, logprobs))
    else:
        kl = torch.zeros((), dtype=nll.dtype, device=nll.device)
    with torch.no_grad():
        acc_buttons = mean((logprobs["buttons"].argmax(-1) == action["buttons"]).to(nll.dtype))
        acc_camera = mean((logprobs["camera"].argmax(-1) == action["camera"]).to(nll.dtype))
    return {
        "loss": nll + kl_coef * kl,
        "nll": nll,
        "kl": kl,
        "acc_buttons": acc_buttons,
        "acc_camera": acc_camera,
    }


class ChunkTensors(TypedDict):
    """`Chunk.to_torch`: the batch as tensors on the training device."""

    img: torch.Tensor
    first: torch.Tensor
    action: dict[str, torch.Tensor]
    valid: torch.Tensor


@dataclass
class Chunk:
    """One batch: numpy arrays ``img_bthwc`` uint8, ``first_bt`` bool, ``buttons_bt`` /
    ``camera_bt`` int64, ``valid_bt`` bool (False only on validation padding)."""

    img_bthwc: np.ndarray
    first_bt: np.ndarray
    buttons_bt: np.ndarray
    camera_bt: np.ndarray
    valid_bt: np.ndarray

    def to_torch(self, device: torch.device | str) -> ChunkTensors:
        """Tensors on ``device``: img, first, action (dict), valid."""
        return {
            "img": torch.from_numpy(self.img_bthwc).to(device),
            "first": torch.from_numpy(self.first_bt).to(device),
            "action": {
                "buttons": torch.from_numpy(self.buttons_bt).to(device),
                "camera": torch.from_numpy(self.camera_bt).to(device),
            },
            "valid": torch.from_numpy(self.valid_bt).to(device),
        }


class EpisodeStream:
    """``n_rows`` rows streaming shuffled episodes back to back, ``chunk_len`` frames per call.

    Episodes are given by index (``load(i) -> Episode``); each epoch visits every episode once in
    a seeded order (``seed``, epoch), handing the next one to whichever row needs it. The whole
    position is ``get_state()`` (plain ints), so a resumed run continues exactly.
    """

    def __init__(
        self,
        n_episodes: int,
        load: Callable[[int], Episode],
        n_rows: int,
        chunk_len: int,
        seed: int,
        on_empty: Callable[[Episode], None] | None = None,
    ) -> None:
        if n_episodes <= 0:
            raise ValueError("EpisodeStream: no training episodes")
        self.n_episodes, self.load, self.n_rows, self.chunk_len, self.seed = (
            n_episodes,
            load,
            n_rows,
            chunk_len,
            seed,
        )
        self.on_empty = on_empty
        self.epoch, self.cursor = 0, 0
        self.rows: list[list[int]] = [[-1, 0] for _ in range(n_rows)]  # [episode index, next frame]
        self._loaded: dict[int, Episode] = {}

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_episodes)

    def _next_episode(self) -> int:
        empty_streak = 0
        while True:
            if self.cursor >= self.n_episodes:
                self.epoch, self.cursor = self.epoch + 1, 0
            index = int(self._order(self.epoch)[self.cursor])
            self.cursor += 1
            if len(self._episode(index)) > 0:
                return index
            empty_streak += 1
            if empty_streak > self.n_episodes:
                raise ValueError("EpisodeStream: every training episode is empty after null filtering")

    def _episode(self, index: int) -> Episode:
        if index not in self._loaded:
            episode = self.load(index)
            if len(episode) == 0 and self.on_empty is not None:
                self.on_empty(episode)
            self._loaded[index] = episode
        return self._loaded[index]

    def next_chunk(self) -> Chunk:
        """The next ``(n_rows, chunk_len)`` chunk."""
        rows = [self._row_chunk(r) for r in range(self.n_rows)]
        # drop episodes no row is playing any more (the load callable may cache them itself)
        playing = {row[0] for row in self.rows}
        self._loaded = {i: ep for i, ep in self._loaded.items() if i in playing}
        return Chunk(*(np.stack(parts) for parts in zip(*rows)))

    def _row_chunk(self, r: int) -> tuple[np.ndarray, ...]:
        row = self.rows[r]
        imgs, firsts, buttons, cameras = [], [], [], []
        need = self.chunk_len
        while need > 0:
            if row[0] < 0 or row[1] >= len(self._episode(row[0])):
                row[0], row[1] = self._next_episode(), 0
            episode = self._episode(row[0])
            start = row[1]
            stop = min(len(episode), start + need)
            imgs.append(episode.frames_thwc[start:stop])
            first = np.zeros(stop - start, dtype=bool)
            first[0] = start == 0
            firsts.append(first)
            buttons.append(episode.buttons_t[start:stop])
            cameras.append(episode.camera_t[start:stop])
            row[1] = stop
            need -= stop - start
        valid = np.ones(self.chunk_len, dtype=bool)
        return (
            np.concatenate(imgs),
            np.concatenate(firsts),
            np.concatenate(buttons),
            np.concatenate(cameras),
            valid,
        )

    def get_state(self) -> dict:
        """Position of the stream (epoch, cursor in the epoch's order, each row's episode/frame)."""
        return {"epoch": self.epoch, "cursor": self.cursor, "rows": [list(r) for r in self.rows]}

    def set_state(self, state: dict) -> None:
        """Restore a position from ``get_state()``."""
        if len(state["rows"]) != self.n_rows:
            raise ValueError(
                f"EpisodeStream: saved state has {len(state['rows'])} rows, config has {self.n_rows}"
            )
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self.rows = [[int(a), int(b)] for a, b in state["rows"]]
        self._loaded = {}


def validation_chunks(episodes: Sequence[Episode], n_rows: int, chunk_len: int) -> Iterator[Chunk]:
    """One pass over ``episodes`` (dealt round-robin to at most ``n_rows`` rows, each row's episodes
    back to back), in chunks; the tail is padded with ``valid=False`` frames."""
    episodes = [ep for ep in episodes if len(ep) > 0]
    if not episodes:
        return
    n_rows = min(n_rows, len(episodes))
    streams = []
    for r in range(n_rows):
        mine = episodes[r::n_rows]
        first = np.concatenate([np.arange(len(ep)) == 0 for ep in mine])
        streams.append(
            (
                np.concatenate([ep.frames_thwc for ep in mine]),
                first,
                np.concatenate([ep.buttons_t for ep in mine]),
                np.concatenate([ep.camera_t for ep in mine]),
            )
        )
    length = max(len(s[1]) for s in streams)
    for start in range(0, length, chunk_len):
        parts = []
        for img, first, buttons, camera in streams:
            sl = slice(start, start + chunk_len)
            n = len(first[sl])
            pad = chunk_len - n
            parts.append(
                (
                    np.concatenate([img[sl], np.zeros((pad, *img.shape[1:]), np.uint8)]),
                    np.concatenate([first[sl], np.ones(pad, dtype=bool)]),
                    np.concatenate([buttons[sl], np.zeros(pad, np.int64)]),
                    np.concatenate([camera[sl], np.full(pad, 60, np.int64)]),
                    np.arange(chunk_len) < n,
                )
            )
        yield Chunk(*(np.stack(p) for p in zip(*parts)))
