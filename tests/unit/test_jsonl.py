"""Contractor JSON line <-> MineRL action conversion (docs/vpt_format.md §8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vpt_rl.data.jsonl import (
    BINARY_KEYS,
    CAMERA_DEGREES_PER_PIXEL,
    KEYBOARD_TO_MINERL,
    DemoFormatError,
    ReadState,
    WriteState,
    json_to_minerl,
    minerl_to_json,
    parse_line,
)
from vpt_rl.envs.actions import MINERL_ACTION_KEYS, env_to_policy


def line(keys=(), dx=0.0, dy=0.0, buttons=(), new_buttons=(), hotbar=0, gui=False, x=640.0, y=360.0):
    return {
        "keyboard": {"keys": list(keys)},
        "mouse": {
            "dx": dx,
            "dy": dy,
            "buttons": list(buttons),
            "newButtons": list(new_buttons),
            "x": x,
            "y": y,
        },
        "hotbar": hotbar,
        "isGuiOpen": gui,
    }


def convert(steps, **state_kwargs):
    state = ReadState(**state_kwargs)
    return [json_to_minerl(parse_line(json.dumps(s), f"t.jsonl:{i + 1}"), state) for i, s in enumerate(steps)]


def test_binary_keys_are_minerl_action_space():
    assert set(BINARY_KEYS) | {"camera"} == set(MINERL_ACTION_KEYS)
    assert len(BINARY_KEYS) == 23


@pytest.mark.parametrize(
    "key,name",
    [
        ("key.keyboard.escape", "ESC"),
        ("key.keyboard.s", "back"),
        ("key.keyboard.q", "drop"),
        ("key.keyboard.w", "forward"),
        ("key.keyboard.1", "hotbar.1"),
        ("key.keyboard.9", "hotbar.9"),
        ("key.keyboard.e", "inventory"),
        ("key.keyboard.space", "jump"),
        ("key.keyboard.a", "left"),
        ("key.keyboard.d", "right"),
        ("key.keyboard.left.shift", "sneak"),
        ("key.keyboard.left.control", "sprint"),
        ("key.keyboard.f", "swapHands"),
    ],
)
def test_key_mapping(key, name):
    ((action, is_null),) = convert([line(keys=[key])])
    assert action[name] == 1
    assert sum(action[k] for k in BINARY_KEYS) == 1
    assert not is_null


def test_mouse_buttons_and_unknown_keys():
    ((action, is_null),) = convert([line(keys=["key.keyboard.t"], buttons=[0, 1, 2], new_buttons=[0, 1, 2])])
    assert (action["attack"], action["use"], action["pickItem"]) == (1, 1, 1)
    assert sum(action[k] for k in BINARY_KEYS) == 3  # "t" (chat) is not a MineRL key
    ((_, is_null),) = convert([line(keys=["key.keyboard.t"])])
    assert is_null  # an unmapped key alone is a null action


def test_float_camera_not_truncated():
    # regression: openai/Video-Pre-Training issue #54 truncated 5 px * 0.15 = 0.75 deg to 0
    ((action, _),) = convert([line(dx=5, dy=-3)])
    np.testing.assert_allclose(action["camera"], [-0.45, 0.75])
    assert CAMERA_DEGREES_PER_PIXEL == 360 / 2400
    _, camera = env_to_policy(action)
    assert camera != 60  # 0.75 deg is outside the null bin (|x| < 0.271)


def test_hotbar_change_becomes_press():
    out = convert([line(hotbar=0), line(hotbar=0), line(hotbar=4), line(hotbar=4), line(hotbar=2)])
    pressed = [[k for k in BINARY_KEYS if a[k]] for a, _ in out]
    assert pressed == [[], [], ["hotbar.5"], [], ["hotbar.3"]]
    assert [n for _, n in out] == [True, True, False, True, False]
    ((action, _),) = convert([line(hotbar=3)])  # episodes start on slot 0, as the released loader
    assert action["hotbar.4"] == 1


def test_null_action_rule():
    out = convert(
        [line(), line(dx=0.5), line(buttons=[1], new_buttons=[1]), line(keys=["key.keyboard.escape"])]
    )
    assert [n for _, n in out] == [True, False, False, False]


def test_stuck_attack_fixed_until_pressed_again():
    steps = [
        line(buttons=[0], new_buttons=[0]),
        line(buttons=[0]),
        line(buttons=[0, 1], new_buttons=[1]),
        line(buttons=[0], new_buttons=[0]),
        line(buttons=[0]),
    ]
    assert [a["attack"] for a, _ in convert(steps)] == [0, 0, 0, 1, 1]
    assert [n for _, n in convert(steps)][:2] == [True, True]
    assert [a["attack"] for a, _ in convert(steps, fix_stuck_attack=False)] == [1, 1, 1, 1, 1]
    # only a first tick that presses exactly attack counts as stuck
    assert convert([line(buttons=[0, 1], new_buttons=[0, 1])])[0][0]["attack"] == 1
    assert convert([line(), line(buttons=[0], new_buttons=[0])])[1][0]["attack"] == 1


def test_parse_errors_name_file_line_and_field():
    with pytest.raises(DemoFormatError, match=r"ep\.jsonl:7: not valid JSON"):
        parse_line("{bad", "ep.jsonl:7")
    with pytest.raises(DemoFormatError, match=r"ep\.jsonl:2: .*expected a JSON object"):
        parse_line("[1, 2]", "ep.jsonl:2")
    for field, mutate in [
        ("keyboard.keys", lambda s: s["keyboard"].pop("keys")),
        ("mouse.dx", lambda s: s["mouse"].update(dx="3")),
        ("mouse.newButtons", lambda s: s["mouse"].pop("newButtons")),
        ("hotbar", lambda s: s.update(hotbar=9)),
        ("isGuiOpen", lambda s: s.pop("isGuiOpen")),
        ("mouse.x", lambda s: (s.update(isGuiOpen=True), s["mouse"].pop("x"))),
    ]:
        step = line()
        mutate(step)
        with pytest.raises(DemoFormatError, match=rf"ep\.jsonl:3: .*{field}"):
            parse_line(json.dumps(step), "ep.jsonl:3")


def test_write_then_read_round_trip():
    rng = np.random.default_rng(0)
    write, read = WriteState(), ReadState()
    for _ in range(300):
        action = {k: int(rng.random() < 0.15) for k in BINARY_KEYS if k != "ESC"}
        action["camera"] = rng.normal(0, 4, size=2).astype(np.float32)
        text = json.dumps(minerl_to_json(action, write))
        back, _ = json_to_minerl(parse_line(text, "x:1"), read)
        for k in BINARY_KEYS:
            if k.startswith("hotbar."):
                continue
            assert back[k] == action.get(k, 0), k
        np.testing.assert_allclose(back["camera"], action["camera"], rtol=1e-12, atol=1e-12)
        assert env_to_policy(back) == env_to_policy(action)


def test_writer_reports_no_stuck_attack_and_tracks_hotbar():
    write = WriteState()
    first = minerl_to_json({"attack": 1, "camera": np.zeros(2)}, write)
    assert first["mouse"]["buttons"] == [0] and first["mouse"]["newButtons"] == []
    second = minerl_to_json({"attack": 1, "use": 1, "hotbar.3": 1, "camera": np.zeros(2)}, write)
    assert second["mouse"]["newButtons"] == [1]
    assert second["hotbar"] == 2 and "key.keyboard.3" in second["keyboard"]["keys"]
    third = minerl_to_json({"camera": np.zeros(2)}, write)
    assert third["hotbar"] == 2  # the slot stays selected
    assert set(KEYBOARD_TO_MINERL) >= set(second["keyboard"]["keys"])
