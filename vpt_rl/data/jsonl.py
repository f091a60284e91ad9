"""VPT contractor JSON lines <-> MineRL 1.0 action dicts, both directions (facts: docs/vpt_format.md §8).

One line of ``NAME.jsonl`` describes one video frame: the keys and mouse buttons held during that
tick, the mouse motion in pixels, the selected hotbar slot and whether a GUI is open. Reading
needs a little per-episode state (the stuck-attack fix and hotbar changes), kept in
``ReadState``; writing needs the previous tick's buttons and the hotbar slot, kept in
``WriteState``. Both directions use the same tables, so ``record -> read`` round-trips exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vpt_rl.errors import VPTRLError

CAMERA_DEGREES_PER_PIXEL = 360.0 / 2400.0
"""Mouse pixels -> camera degrees (docs/vpt_format.md §8). Kept as a float: the released converter built an
integer array and truncated 0.75 degrees to 0 (openai/Video-Pre-Training issue #54)."""

KEYBOARD_TO_MINERL: dict[str, str] = {
    "key.keyboard.escape": "ESC",
    "key.keyboard.s": "back",
    "key.keyboard.q": "drop",
    "key.keyboard.w": "forward",
    **{f"key.keyboard.{k}": f"hotbar.{k}" for k in range(1, 10)},
    "key.keyboard.e": "inventory",
    "key.keyboard.space": "jump",
    "key.keyboard.a": "left",
    "key.keyboard.d": "right",
    "key.keyboard.left.shift": "sneak",
    "key.keyboard.left.control": "sprint",
    "key.keyboard.f": "swapHands",
}
MOUSE_TO_MINERL: dict[int, str] = {0: "attack", 1: "use", 2: "pickItem"}
MINERL_TO_KEYBOARD = {v: k for k, v in KEYBOARD_TO_MINERL.items()}
MINERL_TO_MOUSE = {v: k for k, v in MOUSE_TO_MINERL.items()}

BINARY_KEYS: tuple[str, ...] = tuple(
    sorted(list(KEYBOARD_TO_MINERL.values()) + list(MOUSE_TO_MINERL.values()))
)
"""The 23 binary keys of MineRL 1.0's action space (with ``camera`` it is the 24-key Dict)."""

ATTACK_BUTTON = 0
RECORDING_HEIGHT = 720
"""Contractor recordings were made at 1280x720; ``mouse.x``/``mouse.y`` are in those pixels."""
RECORDING_WIDTH = 1280


class DemoFormatError(VPTRLError, ValueError):
    """A demonstration file is malformed; the message names the file (and line, for JSON)."""


def noop_action() -> dict[str, Any]:
    """A MineRL action dict with every binary key 0 and camera (0, 0) degrees."""
    action: dict[str, Any] = {key: 0 for key in BINARY_KEYS}
    action["camera"] = np.zeros(2, dtype=np.float64)
    return action


@dataclass
class ReadState:
    """Per-episode state of the JSON -> action conversion (start a fresh one per episode)."""

    fix_stuck_attack: bool = True
    line_index: int = 0
    attack_stuck: bool = False
    # The released loader starts from slot 0, so a first line on another slot is a hotbar press
    # (a new env episode also starts on slot 0, so that press is what an agent would need).
    last_hotbar: int = 0


@dataclass
class WriteState:
    """Per-episode state of the action -> JSON conversion (start a fresh one per episode)."""

    tick: int = 0
    hotbar: int = 0
    prev_buttons: list[int] | None = None
    prev_keys: list[str] = field(default_factory=list)


def parse_line(text: str, where: str) -> dict[str, Any]:
    """Parse and validate one JSON line; ``where`` ("FILE:LINE") prefixes every error."""
    try:
        step = json.loads(text)
    except json.JSONDecodeError as e:
        raise DemoFormatError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(step, dict):
        raise DemoFormatError(f"{where}: expected a JSON object, got {type(step).__name__}")
    keyboard, mouse = step.get("keyboard"), step.get("mouse")
    if not isinstance(keyboard, dict) or not isinstance(keyboard.get("keys"), list):
        raise DemoFormatError(f"{where}: missing or invalid field keyboard.keys (a list of key names)")
    if not isinstance(mouse, dict):
        raise DemoFormatError(f"{where}: missing or invalid field mouse (an object)")
    for name in ("dx", "dy"):
        if not _is_number(mouse.get(name)):
            raise DemoFormatError(f"{where}: missing or invalid field mouse.{name} (a number)")
    for name in ("buttons", "newButtons"):
        value = mouse.get(name)
        if not isinstance(value, list) or not all(
            isinstance(b, int) and not isinstance(b, bool) for b in value
        ):
            raise DemoFormatError(f"{where}: missing or invalid field mouse.{name} (a list of integers)")
    hotbar = step.get("hotbar")
    if not isinstance(hotbar, int) or isinstance(hotbar, bool) or not 0 <= hotbar <= 8:
        raise DemoFormatError(f"{where}: missing or invalid field hotbar (an integer 0..8), got {hotbar!r}")
    if not isinstance(step.get("isGuiOpen"), bool):
        raise DemoFormatError(f"{where}: missing or invalid field isGuiOpen (true/false)")
    if step["isGuiOpen"]:
        for name in ("x", "y"):
            if not _is_number(mouse.get(name)):
                raise DemoFormatError(f"{where}: a GUI is open but mouse.{name} is missing or not a number")
    return step


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def json_to_minerl(step: Mapping[str, Any], state: ReadState) -> tuple[dict[str, Any], bool]:
    """Convert one validated line to ``(MineRL action dict, is_null)``, updating ``state``.

    ``is_null`` is the VPT paper's null action (docs/vpt_format.md §8): no mapped key held, no mouse
    motion, no mouse button held -- and, here, no hotbar change (a scroll-wheel slot change is a real action;
    the released loader dropped such frames and so lost the change).
    """
    mouse = step["mouse"]
    buttons = list(mouse["buttons"])
    # Stuck attack (docs/vpt_format.md §8): a recording whose first tick reports attack as newly
    # pressed had the button stuck down; ignore it until a later tick presses it again.
    if state.fix_stuck_attack and state.line_index == 0 and list(mouse["newButtons"]) == [ATTACK_BUTTON]:
        state.attack_stuck = True
    elif state.attack_stuck and ATTACK_BUTTON in mouse["newButtons"]:
        state.attack_stuck = False
    if state.attack_stuck:
        buttons = [b for b in buttons if b != ATTACK_BUTTON]

    action = noop_action()
    is_null = True
    for key in step["keyboard"]["keys"]:
        name = KEYBOARD_TO_MINERL.get(key)
        if name is not None:
            action[name] = 1
            is_null = False
    for button in buttons:
        name = MOUSE_TO_MINERL.get(button)
        if name is not None:
            action[name] = 1
            is_null = False

    dx, dy = float(mouse["dx"]), float(mouse["dy"])
    camera = np.array([dy * CAMERA_DEGREES_PER_PIXEL, dx * CAMERA_DEGREES_PER_PIXEL], dtype=np.float64)
    if dx != 0.0 or dy != 0.0:
        is_null = False
    else:
        # docs/vpt_format.md §8: a camera value beyond +-180 is set to 0 when the mouse did not move (with the
        # camera computed from dx, dy this cannot trigger; kept so the rule is visible).
        camera[np.abs(camera) > 180.0] = 0.0
    action["camera"] = camera

    hotbar = int(step["hotbar"])
    if hotbar != state.last_hotbar:
        action[f"hotbar.{hotbar + 1}"] = 1
        is_null = False
    state.last_hotbar = hotbar
    state.line_index += 1
    return action, is_null


def minerl_to_json(
    action: Mapping[str, Any],
    state: WriteState,
    gui_open: bool = False,
    mouse_xy: tuple[float, float] = (RECORDING_WIDTH / 2, RECORDING_HEIGHT / 2),
) -> dict[str, Any]:
    """Convert one MineRL action dict to a contractor-format JSON object, updating ``state``.

    The camera is written as float pixels (degrees / 0.15) so that the reader recovers the same
    degrees. ``hotbar`` is the selected slot after this tick's keys (a ``hotbar.k`` press selects
    slot k-1). On the first tick nothing is reported as *newly* pressed: the recording starts with
    the expert's first decision, not with a click, so the reader's stuck-attack rule stays off.
    """
    keys = [MINERL_TO_KEYBOARD[name] for name in MINERL_TO_KEYBOARD if _pressed(action.get(name, 0))]
    buttons = [code for name, code in MINERL_TO_MOUSE.items() if _pressed(action.get(name, 0))]
    for k in range(1, 10):
        if _pressed(action.get(f"hotbar.{k}", 0)):
            # the highest pressed slot wins, as in env_to_policy (docs/vpt_format.md §6.5)
            state.hotbar = k - 1
    camera = np.asarray(action.get("camera", (0.0, 0.0)), dtype=np.float64).reshape(2)
    prev_buttons = buttons if state.prev_buttons is None else state.prev_buttons
    line = {
        "tick": state.tick,
        "keyboard": {"keys": keys, "newKeys": [k for k in keys if k not in state.prev_keys]},
        "mouse": {
            "x": float(mouse_xy[0]),
            "y": float(mouse_xy[1]),
            "dx": float(camera[1] / CAMERA_DEGREES_PER_PIXEL),
            "dy": float(camera[0] / CAMERA_DEGREES_PER_PIXEL),
            "buttons": buttons,
            "newButtons": [b for b in buttons if b not in prev_buttons],
        },
        "hotbar": state.hotbar,
        "isGuiOpen": bool(gui_open),
    }
    state.tick += 1
    state.prev_buttons = buttons
    state.prev_keys = keys
    return line


def _pressed(value: Any) -> bool:
    return bool(np.asarray(value).reshape(-1)[0]) if np.size(value) else False
