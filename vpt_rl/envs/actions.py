"""MineRL 1.0 action dicts <-> VPT policy indices (docs/vpt_format.md §6).

The policy acts with two categorical heads: a joint button index (8641 classes: every legal
combination of 9 mutually exclusive groups, plus "inventory") and a joint camera index (121 =
11 x 11 mu-law bins). MineRL acts with a 24-key dict of binary keys plus a camera Box in degrees.

Scalars in give scalars out (python ints; camera a float32 array of shape (2,), as MineRL's
action space); arrays with leading batch dims ``S`` in give arrays of shape ``S`` out (camera
``S + (2,)``). Both directions are table lookups and numpy arithmetic, with no Python loop over
the batch.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

# --- names ---------------------------------------------------------------------------------------

HOTBAR_KEYS: tuple[str, ...] = tuple(f"hotbar.{i}" for i in range(1, 10))

#: The 20 policy buttons in VPT's factored order (docs/vpt_format.md §6.1).
BUTTONS_ALL: tuple[str, ...] = (
    "attack",
    "back",
    "forward",
    "jump",
    "left",
    "right",
    "sneak",
    "sprint",
    "use",
    "drop",
    "inventory",
    *HOTBAR_KEYS,
)

#: The 24 keys of MineRL 1.0's human-control action space (sorted, as MineRL lists them).
MINERL_ACTION_KEYS: tuple[str, ...] = (
    "ESC",
    "attack",
    "back",
    "camera",
    "drop",
    "forward",
    *HOTBAR_KEYS,
    "inventory",
    "jump",
    "left",
    "pickItem",
    "right",
    "sneak",
    "sprint",
    "swapHands",
    "use",
)

#: MineRL keys the policy never sees or produces; dropped on input (docs/vpt_format.md §6.1).
NON_POLICY_KEYS: frozenset[str] = frozenset({"ESC", "pickItem", "swapHands"})

#: The 9 mutually exclusive groups and their options, in joint-index order (docs/vpt_format.md §6.2).
#: Option names other than "none" and "camera" are the MineRL keys that press them.
BUTTON_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hotbar", ("none", *HOTBAR_KEYS)),
    ("fore_back", ("none", "forward", "back")),
    ("left_right", ("none", "left", "right")),
    ("sprint_sneak", ("none", "sprint", "sneak")),
    ("use", ("none", "use")),
    ("drop", ("none", "drop")),
    ("attack", ("none", "attack")),
    ("jump", ("none", "jump")),
    ("camera", ("none", "camera")),
)
# Groups where pressing both options cancels to "none" instead of the later option winning.
_CANCELLING_GROUPS = frozenset({"fore_back", "left_right"})

# --- sizes and null actions ----------------------------------------------------------------------

N_BUTTON_CLASSES = 8641
INVENTORY_BUTTONS = 8640  # the one class outside the mixed-radix product: "inventory" alone
N_CAMERA_BINS = 11
CAMERA_NULL_BIN = 5
N_CAMERA_CLASSES = N_CAMERA_BINS * N_CAMERA_BINS
NULL_BUTTONS = 0
NULL_CAMERA = CAMERA_NULL_BIN * N_CAMERA_BINS + CAMERA_NULL_BIN  # 60

# Camera quantiser used by agent.py (docs/vpt_format.md §6.4); not the ActionTransformer defaults.
CAMERA_MAXVAL = 10.0
CAMERA_BINSIZE = 2
CAMERA_MU = 10.0

# --- lookup tables (built once at import; read-only) ---------------------------------------------

_GROUP_SIZES = np.array([len(options) for _, options in BUTTON_GROUPS], dtype=np.int64)
# place value of each group in the mixed-radix index, last group fastest: [864, 288, ..., 2, 1]
_PLACE = np.concatenate([np.cumprod(_GROUP_SIZES[::-1])[::-1][1:], [1]]).astype(np.int64)
assert int(_PLACE[0] * _GROUP_SIZES[0]) == INVENTORY_BUTTONS
_CAMERA_GROUP = len(BUTTON_GROUPS) - 1
_BUTTON_COLUMN = {name: i for i, name in enumerate(BUTTONS_ALL)}


def _build_index_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (options (8641, 9), buttons (8641, 20) uint8, camera_on (8641,) bool)."""
    index = np.arange(INVENTORY_BUTTONS, dtype=np.int64)
    options = np.zeros((N_BUTTON_CLASSES, len(BUTTON_GROUPS)), dtype=np.int64)
    options[:INVENTORY_BUTTONS] = (index[:, None] // _PLACE) % _GROUP_SIZES
    buttons = np.zeros((N_BUTTON_CLASSES, len(BUTTONS_ALL)), dtype=np.uint8)
    for g, (_, names) in enumerate(BUTTON_GROUPS):
        for option, name in enumerate(names):
            if name in _BUTTON_COLUMN:
                buttons[:INVENTORY_BUTTONS, _BUTTON_COLUMN[name]] |= options[:INVENTORY_BUTTONS, g] == option
    buttons[INVENTORY_BUTTONS, _BUTTON_COLUMN["inventory"]] = 1
    camera_on = options[:, _CAMERA_GROUP] == 1
    # why: to_factored does not force the camera to null for "inventory" (docs/vpt_format.md §6.6).
    camera_on[INVENTORY_BUTTONS] = True
    for table in (options, buttons, camera_on):
        table.flags.writeable = False
    return options, buttons, camera_on


INDEX_TO_OPTIONS, INDEX_TO_BUTTONS, INDEX_CAMERA_ON = _build_index_tables()


def camera_to_bins(camera: Any) -> np.ndarray:
    """Quantise camera degrees (any shape) to mu-law bins 0..10, int64, same shape.

    Values are clipped to +-10 degrees; numpy rounds half to even, as the official code does.
    """
    x = np.asarray(camera, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"camera must be finite degrees, got {x.tolist()}")
    u = np.clip(x, -CAMERA_MAXVAL, CAMERA_MAXVAL) / CAMERA_MAXVAL
    encoded = np.sign(u) * np.log(1.0 + CAMERA_MU * np.abs(u)) / np.log(1.0 + CAMERA_MU) * CAMERA_MAXVAL
    return np.round((encoded + CAMERA_MAXVAL) / CAMERA_BINSIZE).astype(np.int64)


def bins_to_camera(bins: Any) -> np.ndarray:
    """Bin indices 0..10 (any shape) -> camera degrees at the bin centres, float64, same shape."""
    b = np.asarray(bins)
    if not np.issubdtype(b.dtype, np.integer) or b.size and (b.min() < 0 or b.max() >= N_CAMERA_BINS):
        raise ValueError(f"camera bins must be integers in [0, {N_CAMERA_BINS - 1}], got {b.tolist()}")
    v = b.astype(np.float64) * CAMERA_BINSIZE - CAMERA_MAXVAL
    return np.sign(v) * (CAMERA_MAXVAL / CAMERA_MU) * ((1.0 + CAMERA_MU) ** (np.abs(v) / CAMERA_MAXVAL) - 1.0)


# camera index -> degrees [pitch, yaw]; float32 like MineRL's camera Box
_CAMERA_TABLE = bins_to_camera(np.stack(np.divmod(np.arange(N_CAMERA_CLASSES), N_CAMERA_BINS), -1)).astype(
    np.float32
)
_CAMERA_TABLE.flags.writeable = False


# --- env -> policy -------------------------------------------------------------------------------


def _pressed_and_camera(env_action: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Return (pressed (*S, 20) bool, camera (*S, 2) float64, batch shape S) from an env dict."""
    unknown = sorted(set(env_action) - set(MINERL_ACTION_KEYS))
    if unknown:
        raise ValueError(f"env action has keys outside MineRL's action space: {unknown}")
    camera = np.asarray(env_action.get("camera", (0.0, 0.0)), dtype=np.float64)
    if camera.ndim == 0 or camera.shape[-1] != 2:
        raise ValueError(f"env action 'camera' must have shape (2,) or (N, 2), got {camera.shape}")
    raw = [env_action.get(k, 0) for k in BUTTONS_ALL]
    if camera.ndim == 1 and all(isinstance(v, (int, bool, np.integer, np.bool_)) for v in raw):
        # why: a single env step (the common case in workers) skips the per-key array work
        return np.array([v != 0 for v in raw]), camera, ()
    values = {k: np.asarray(env_action[k]) for k in BUTTONS_ALL if k in env_action}
    try:
        shape = np.broadcast_shapes(camera.shape[:-1], *(v.shape for v in values.values()))
    except ValueError:
        shapes = {k: v.shape for k, v in values.items()} | {"camera": camera.shape}
        raise ValueError(f"env action values have inconsistent batch shapes: {shapes}") from None
    pressed = np.zeros((*shape, len(BUTTONS_ALL)), dtype=bool)
    for key, value in values.items():  # loop over the 20 keys, not the batch
        pressed[..., _BUTTON_COLUMN[key]] = value != 0
    return pressed, np.broadcast_to(camera, (*shape, 2)), shape


def _build_option_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per button and non-camera group: option number (20, 8), membership (20, 8), cancel mask (8,)."""
    weights = np.zeros((len(BUTTONS_ALL), _CAMERA_GROUP), dtype=np.int64)
    for g, (_, names) in enumerate(BUTTON_GROUPS[:_CAMERA_GROUP]):
        for option, name in enumerate(names[1:], start=1):
            weights[_BUTTON_COLUMN[name], g] = option
    cancelling = np.array([name in _CANCELLING_GROUPS for name, _ in BUTTON_GROUPS[:_CAMERA_GROUP]])
    return weights, (weights > 0).astype(np.int64), cancelling


_OPTION_WEIGHTS, _GROUP_MEMBERS, _CANCELLING = _build_option_weights()


def _group_options(pressed: np.ndarray) -> np.ndarray:
    """Pressed keys (*S, 20) -> option index per group (*S, 8) for all groups but camera."""
    # why: the highest-listed pressed option wins, e.g. sprint+sneak -> sneak (docs/vpt_format.md §6.5)
    options = (pressed[..., :, None] * _OPTION_WEIGHTS).max(axis=-2)
    # why: forward+back and left+right cancel to "none" (docs/vpt_format.md §6.5)
    cancelled = _CANCELLING & ((pressed.astype(np.int64) @ _GROUP_MEMBERS) > 1)
    return np.where(cancelled, 0, options)


def env_to_policy(env_action: dict[str, Any]) -> tuple[Any, Any]:
    """MineRL action dict -> (button index, camera index) of the VPT policy (docs/vpt_format.md §6.5).

    Missing keys are not pressed (camera (0, 0)); ``ESC``, ``pickItem`` and ``swapHands`` are
    dropped. Scalar values (camera shape (2,)) give python ints; values with batch shape ``S``
    (camera ``S + (2,)``) give int64 arrays of shape ``S``.
    """
    pressed, camera, shape = _pressed_and_camera(env_action)
    bins = camera_to_bins(camera)
    camera_idx = bins[..., 0] * N_CAMERA_BINS + bins[..., 1]
    camera_meta = (bins != CAMERA_NULL_BIN).any(axis=-1)
    options = _group_options(pressed)
    buttons_idx = (options * _PLACE[:_CAMERA_GROUP]).sum(axis=-1) + camera_meta.astype(np.int64)
    # why: "inventory" excludes every other button and forces the null camera (docs/vpt_format.md §6.5)
    inventory = pressed[..., _BUTTON_COLUMN["inventory"]]
    buttons_idx = np.where(inventory, INVENTORY_BUTTONS, buttons_idx).astype(np.int64)
    camera_idx = np.where(inventory, NULL_CAMERA, camera_idx).astype(np.int64)
    if shape == ():
        return int(buttons_idx), int(camera_idx)
    return buttons_idx, camera_idx


# --- policy -> env -------------------------------------------------------------------------------


def _as_index(value: Any, name: str, n_classes: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} index must be an integer or integer array, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} index out of range [0, {n_classes - 1}]: min {arr.min()}, max {arr.max()}")
    return arr


def policy_to_env(buttons: Any, camera: Any) -> dict[str, Any]:
    """Policy indices -> MineRL action dict: the 20 button keys + ``camera`` (docs/vpt_format.md §6.6).

    A combination whose camera meta-action is "none" moves the camera by (0, 0) whatever the
    camera index; the inventory index (8640) keeps the camera (the official behaviour).
    Scalars give python ints and a float32 camera of shape (2,); arrays of shape ``S`` give int64
    arrays of shape ``S`` and a camera of shape ``S + (2,)``.
    """
    b = _as_index(buttons, "buttons", N_BUTTON_CLASSES)
    c = _as_index(camera, "camera", N_CAMERA_CLASSES)
    if b.shape != c.shape:
        raise ValueError(f"buttons and camera must have the same shape, got {b.shape} and {c.shape}")
    pressed = INDEX_TO_BUTTONS[b]
    degrees = np.where(INDEX_CAMERA_ON[b][..., None], _CAMERA_TABLE[c], np.float32(0.0))
    if b.ndim == 0:
        action: dict[str, Any] = {k: int(pressed[i]) for i, k in enumerate(BUTTONS_ALL)}
    else:
        action = {k: pressed[..., i].astype(np.int64) for i, k in enumerate(BUTTONS_ALL)}
    action["camera"] = degrees
    return action


# --- spaces and null actions ---------------------------------------------------------------------


def minerl_noop() -> dict[str, Any]:
    """A MineRL 1.0 no-op: all 24 keys, buttons 0 and camera float32 (0, 0)."""
    return {k: np.zeros(2, dtype=np.float32) if k == "camera" else 0 for k in MINERL_ACTION_KEYS}


def minerl_action_space() -> gymnasium.spaces.Dict:
    """MineRL 1.0's 24-key action space: ``Discrete(2)`` keys, camera ``Box(-180, 180, (2,))``."""
    return gymnasium.spaces.Dict(
        {
            k: gymnasium.spaces.Box(-180.0, 180.0, (2,), np.float32)
            if k == "camera"
            else gymnasium.spaces.Discrete(2)
            for k in MINERL_ACTION_KEYS
        }
    )


def policy_action_space() -> gymnasium.spaces.Dict:
    """The policy's action space: ``buttons`` Discrete(8641), ``camera`` Discrete(121)."""
    return gymnasium.spaces.Dict(
        {
            "buttons": gymnasium.spaces.Discrete(N_BUTTON_CLASSES),
            "camera": gymnasium.spaces.Discrete(N_CAMERA_CLASSES),
        }
    )
