"""Read a released VPT ``.model`` file (a small pickle) without executing anything from it.

A ``.model`` file is a pickled dict (docs/vpt_format.md §1.2) whose only globals are ``gym3.types`` space
classes. Why a restricted unpickler and not ``pickle.load``: a pickle can call any importable
function (``os.system`` ...); ``torch.load(weights_only=True)`` cannot be used either, because it
refuses the gym3 globals. Here ``find_class`` maps exactly four gym3 names to inert placeholders
and rejects every other global by name, so nothing from the file is ever run (docs/design.md "Decisions").
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from vpt_rl.model.weights import WeightsError

MAX_MODEL_FILE_BYTES = 1 << 20  # released files are ~1.8 KB; anything near this is not a .model file
ALLOWED_GLOBALS = frozenset({("gym3.types", n) for n in ("DictType", "TensorType", "Discrete", "Real")})


class Gym3Placeholder:
    """Inert stand-in for a ``gym3.types`` object: it only records its constructor args and state."""

    gym3_name = "?"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Gym3Placeholder:
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args); store only
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD: keep the state, run nothing
        self.state = state

    def __repr__(self) -> str:
        return f"gym3.types.{self.gym3_name}(state={self.state!r})"


_PLACEHOLDERS = {
    name: type(name, (Gym3Placeholder,), {"gym3_name": name}) for _, name in sorted(ALLOWED_GLOBALS)
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``gym3.types.{DictType,TensorType,Discrete,Real}`` (to placeholders)."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in ALLOWED_GLOBALS:
            return _PLACEHOLDERS[name]
        raise WeightsError(
            f"{self.source}: refused to unpickle global {module}.{name}: a .model file may only refer "
            f"to gym3.types.{{DictType,TensorType,Discrete,Real}} (nothing from the file is executed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError(f"{self.source}: unexpected persistent id in pickle: not a .model file")


def unpickle_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw dict stored in a ``.model`` file, with gym3 objects as placeholders."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file")
    if path.is_dir():
        raise WeightsError(f"{path}: is a directory, not a .model file")
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"{path}: file is empty")
    if size > MAX_MODEL_FILE_BYTES:
        raise WeightsError(
            f"{path}: {size} bytes is far too big for a .model file (released ones are ~2 KB): "
            f"is it a weights file? Pass it as the weights, not as --model-file"
        )
    try:
        data = path.read_bytes()
    except OSError as e:  # permissions, I/O errors
        raise WeightsError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), str(path)).load()
    except WeightsError:
        raise
    except Exception as e:  # UnpicklingError, EOFError, ValueError ... from a damaged file
        raise WeightsError(f"{path}: not a readable .model pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not the dict a .model file has")
    return obj


def _dig(obj: Any, keys: tuple[str, ...], source: str) -> Any:
    for i, key in enumerate(keys):
        if not isinstance(obj, dict) or key not in obj:
            where = ".".join(keys[: i + 1])
            raise WeightsError(f"{source}: not a VPT .model file: it has no {where!r} entry")
        obj = obj[key]
    return obj


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(policy_kwargs, pi_head_kwargs)`` from a ``.model`` file, as the official loaders take them.

    ``policy_kwargs`` = ``model.args.net.args``; ``pi_head_kwargs`` = ``model.args.pi_head_opts``
    with ``temperature`` converted to float (docs/vpt_format.md §1.2). Raises :class:`WeightsError` naming the
    file (and the global, for a pickle that asks for anything but gym3 space types).
    """
    source = str(path)
    obj = unpickle_model_file(path)
    policy_kwargs = _dig(obj, ("model", "args", "net", "args"), source)
    pi_head_kwargs = _dig(obj, ("model", "args", "pi_head_opts"), source)
    if not isinstance(policy_kwargs, dict) or not isinstance(pi_head_kwargs, dict):
        raise WeightsError(f"{source}: model.args.net.args and model.args.pi_head_opts must be dicts")
    pi_head_kwargs = dict(pi_head_kwargs)
    if "temperature" in pi_head_kwargs:
        try:
            pi_head_kwargs["temperature"] = float(pi_head_kwargs["temperature"])
        except (TypeError, ValueError):
            raise WeightsError(
                f"{source}: pi_head_opts.temperature {pi_head_kwargs['temperature']!r} is not a number"
            ) from None
    return dict(policy_kwargs), pi_head_kwargs
