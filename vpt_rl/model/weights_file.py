"""Reading weights files safely: torch (``weights_only=True``) or safetensors, every failure a
:class:`WeightsError` that names the file and the problem in one line.

Why one line: the CLI prints it as ``vpt-rl NAME: error: FILE: PROBLEM`` (no traceback), and a
user must see at once whether the file is missing, cut short, something else, or unsafe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vpt_rl.errors import VPTRLError

_LIST_LIMIT = 8  # keys shown in a message


class WeightsError(VPTRLError, ValueError):
    """A weights or ``.model`` file cannot be read or does not fit the policy; names file and keys."""


# --------------------------------------------------------------------------------------------
# reading files


def sniff_format(path: str | os.PathLike) -> str:
    """Name a file's format from its first bytes: "torch-zip", "safetensors", "torch-legacy" or "unknown".

    Why by content and not by suffix: released files are called ``.weights``, ours may be
    ``.safetensors``, and users rename files; the bytes do not lie.
    """
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if len(head) > 8 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len <= os.path.getsize(path) - 8:
            return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol opcode: torch's pre-1.6 (non-zip) format
        return "torch-legacy"
    return "unknown"


FORMAT_NAMES = {
    "torch-zip": "PyTorch zip archive (torch.save)",
    "safetensors": "safetensors",
    "torch-legacy": "PyTorch legacy pickle (pre-1.6 torch.save)",
    "unknown": "unknown",
}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    # torch's messages go on for several sentences of advice; the first one names the problem
    return f"{type(e).__name__}: {text[0].split('. ')[0]}" if text else type(e).__name__


def _load_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files; each becomes one clear line
        msg = str(e)
        if "Weights only load failed" in msg:
            match = re.search(r"GLOBAL (\S+)", msg)
            if match:
                raise WeightsError(
                    f"{path}: the file contains code or Python objects that a weights file must not "
                    f"have (it asks for {match.group(1)}); refused to unpickle it"
                ) from None
            raise WeightsError(
                f"{path}: not a PyTorch weights file (torch.load with weights_only=True refused it)"
            ) from None
        if "magic number" in msg:
            raise WeightsError(
                f"{path}: not a PyTorch weights file (a pickle without torch.save's header)"
            ) from None
        if "zip archive" in msg or "central directory" in msg or "archive is corrupted" in msg:
            raise WeightsError(f"{path}: truncated or corrupt zip archive ({_first_line(e)})") from None
        raise WeightsError(f"{path}: could not be read as a PyTorch file ({_first_line(e)})") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # SafetensorError and friends
        raise WeightsError(f"{path}: not a valid safetensors file ({_first_line(e)})") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a torch or safetensors file without executing anything.

    Torch files go through ``torch.load(..., weights_only=True)``. Every failure (missing file,
    directory, empty, truncated, not a weights file, a pickle that would run code, a dict that is
    not ``{str: Tensor}``) raises :class:`WeightsError` naming the file. A nested
    ``{"state_dict": ...}`` is *not* unwrapped (strictness); the error says so.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file")
    if path.is_dir():
        raise WeightsError(f"{path}: is a directory, not a weights file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: file is empty")
    try:
        fmt = sniff_format(path)
    except OSError as e:  # permissions, I/O errors
        raise WeightsError(f"{path}: cannot be read ({e.strerror or e})") from None
    if fmt == "safetensors" or path.suffix == ".safetensors":
        obj: Any = _load_safetensors(path)
    elif fmt in ("torch-zip", "torch-legacy"):
        obj = _load_torch(path)
    else:
        with open(path, "rb") as f:
            head = f.read(64)
        if head.startswith(b"version https://git-lfs"):
            raise WeightsError(
                f"{path}: is a Git LFS pointer, not the weights: fetch them with `git lfs pull`"
            )
        hint = " (an HTML page: a failed download?)" if head.lstrip()[:1] == b"<" else ""
        raise WeightsError(
            f"{path}: not a weights file (neither a PyTorch zip/pickle nor safetensors; "
            f"starts with {head[:12]!r}){hint}"
        )
    return _as_state_dict(obj, str(path))


def _as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Check that ``obj`` is a flat ``{str: Tensor}`` mapping; explain what it is otherwise."""
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source}: holds a {type(obj).__name__}, not a state dict (a dict of tensors)")
    bad_keys = [k for k in obj if not isinstance(k, str)]
    if bad_keys:
        raise WeightsError(f"{source}: state dict keys must be strings; got {bad_keys[:_LIST_LIMIT]!r}")
    non_tensor = {k: type(v).__name__ for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    if non_tensor:
        nested = [k for k in non_tensor if isinstance(obj[k], Mapping)]
        hint = ""
        if nested:
            hint = (
                f"; it looks like a training checkpoint that nests the weights under {nested[0]!r}: "
                f"save that entry on its own (torch.save(ckpt[{nested[0]!r}], path))"
            )
        shown = ", ".join(f"{k} ({t})" for k, t in list(non_tensor.items())[:_LIST_LIMIT])
        more = f" and {len(non_tensor) - _LIST_LIMIT} more" if len(non_tensor) > _LIST_LIMIT else ""
        raise WeightsError(f"{source}: values that are not tensors: {shown}{more}{hint}")
    return dict(obj)
