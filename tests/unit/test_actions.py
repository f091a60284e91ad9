"""Action mapping against the official goldens (docs/vpt_format.md §6, tests/data/vpt_reference/README.md §4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vpt_rl.envs import actions as A
from vpt_rl.envs.actions import (
    BUTTONS_ALL,
    MINERL_ACTION_KEYS,
    bins_to_camera,
    camera_to_bins,
    env_to_policy,
    minerl_action_space,
    minerl_noop,
    policy_action_space,
    policy_to_env,
)


@pytest.fixture(scope="module")
def golden(reference_dir):
    return json.loads((reference_dir / "action_mapping_golden.json").read_text())


@pytest.fixture(scope="module")
def combination_table(reference_dir):
    return json.loads((reference_dir / "button_combination_table.json").read_text())


def assert_env_action_equal(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)  # the 20 buttons in factored order, then camera
    for key in BUTTONS_ALL:
        assert got[key] == expected[key], key
        assert type(got[key]) is int, key
    assert got["camera"].shape == (2,) and got["camera"].dtype == np.float32
    np.testing.assert_allclose(got["camera"], expected["camera"], rtol=0, atol=1e-5)


def test_constants_match_golden_meta(golden):
    meta = golden["meta"]
    assert list(BUTTONS_ALL) == meta["buttons_all_order"]
    assert list(MINERL_ACTION_KEYS) == meta["env_action_keys"]
    assert [[n, list(o)] for n, o in A.BUTTON_GROUPS] == meta["button_groups"]
    assert A.N_BUTTON_CLASSES == meta["n_button_classes"]
    assert A.N_CAMERA_CLASSES == meta["n_camera_classes"]
    assert A.NULL_CAMERA == meta["camera_null_idx"] and A.NULL_BUTTONS == meta["null_buttons_idx"]
    np.testing.assert_allclose(
        bins_to_camera(np.arange(11)), meta["camera_bin_centers_env_units"], atol=1e-12
    )


def test_button_combination_table_all_8641(combination_table):
    table = combination_table["table"]
    assert len(table) == 8641 and table[8640] == "inventory"
    np.testing.assert_array_equal(A.INDEX_TO_OPTIONS[:8640], np.array(table[:8640]))


def test_every_index_round_trips_through_env_dict():
    buttons = np.arange(A.N_BUTTON_CLASSES)
    camera = np.full_like(buttons, 17)  # bins (1, 6): both non-null
    env = policy_to_env(buttons, camera)
    back_b, back_c = env_to_policy(env)
    np.testing.assert_array_equal(back_b, buttons)
    # camera is forced to null where the camera meta-action is off, and on input for inventory
    cam_on = A.INDEX_TO_OPTIONS[:, -1] == 1
    expected_c = np.where(cam_on, 17, 60)
    np.testing.assert_array_equal(back_c, expected_c)


@pytest.mark.parametrize("i", range(42))
def test_env_to_policy_golden(golden, i):
    case = golden["env_to_policy_cases"][i]
    buttons, camera = env_to_policy(case["env_action"])
    assert (buttons, camera) == (case["joint_buttons"], case["joint_camera"]), case["note"]
    assert type(buttons) is int and type(camera) is int
    assert_env_action_equal(policy_to_env(buttons, camera), case["roundtrip_env_action"])


@pytest.mark.parametrize("i", range(14))
def test_policy_to_env_golden(golden, i):
    case = golden["policy_to_env_cases"][i]
    assert_env_action_equal(policy_to_env(case["buttons"], case["camera"]), case["env_action"])


def test_camera_idx_table(golden):
    table = golden["camera_idx_table"]
    assert len(table) == 121
    for entry in table:
        degrees = bins_to_camera(entry["bins"])
        np.testing.assert_allclose(degrees, entry["env_camera"], atol=1e-12)
        np.testing.assert_array_equal(camera_to_bins(degrees), entry["bins"])
        got = policy_to_env(1, entry["idx"])["camera"]  # index 1 = camera meta on only
        np.testing.assert_allclose(got, entry["env_camera"], atol=1e-5)


def test_batched_equals_scalar(golden):
    cases = golden["env_to_policy_cases"]
    batched = {k: np.array([c["env_action"][k] for c in cases]) for k in MINERL_ACTION_KEYS}
    buttons, camera = env_to_policy(batched)
    assert buttons.shape == camera.shape == (42,) and buttons.dtype == np.int64
    np.testing.assert_array_equal(buttons, [c["joint_buttons"] for c in cases])
    np.testing.assert_array_equal(camera, [c["joint_camera"] for c in cases])
    env = policy_to_env(buttons, camera)
    assert env["camera"].shape == (42, 2) and env["attack"].shape == (42,)
    for n, (b, c) in enumerate(zip(buttons, camera)):
        single = policy_to_env(int(b), int(c))
        for key in BUTTONS_ALL:
            assert env[key][n] == single[key]
        np.testing.assert_array_equal(env["camera"][n], single["camera"])


def test_batched_2d_shape_and_official_unbatched_layout():
    rng = np.random.default_rng(0)
    buttons = rng.integers(0, A.N_BUTTON_CLASSES, size=(3, 5))
    camera = rng.integers(0, A.N_CAMERA_CLASSES, size=(3, 5))
    env = policy_to_env(buttons, camera)
    assert env["jump"].shape == (3, 5) and env["camera"].shape == (3, 5, 2)
    # the official dict layout: button arrays (1,) and camera (1, 2) -> batch of one
    official = {k: np.array([1 if k == "forward" else 0]) for k in BUTTONS_ALL} | {
        "camera": np.array([[0.0, 1.0]])
    }
    b, c = env_to_policy(official)
    assert b.shape == (1,) and b[0] == 288 + 1 and c[0] == 61


def test_missing_keys_are_not_pressed_and_esc_dropped():
    assert env_to_policy({}) == (0, 60)
    assert env_to_policy({"attack": 1}) == (4, 60)
    assert env_to_policy({"attack": 1, "ESC": 1, "pickItem": 1, "swapHands": 1}) == (4, 60)
    assert env_to_policy({"camera": [0.0, 1.0]}) == (1, 61)
    assert env_to_policy(minerl_noop()) == (0, 60)
    out = policy_to_env(0, 60)
    assert not {"ESC", "pickItem", "swapHands"} & set(out)


def test_inventory_quirks():
    # input: inventory wins over every other button and forces the null camera
    assert env_to_policy({"inventory": 1, "attack": 1, "hotbar.3": 1, "camera": [5.0, -5.0]}) == (8640, 60)
    # output: the inventory index keeps a non-null camera (not forced), only inventory pressed
    out = policy_to_env(8640, 0)
    np.testing.assert_allclose(out["camera"], [-10.0, -10.0])
    assert [k for k in BUTTONS_ALL if out[k]] == ["inventory"]
    # camera meta off: camera forced to (0, 0) whatever the camera index
    np.testing.assert_array_equal(policy_to_env(4, 0)["camera"], [0.0, 0.0])


def test_group_rules():
    assert env_to_policy({"forward": 1, "back": 1}) == (0, 60)
    assert env_to_policy({"left": 1, "right": 1, "jump": 1}) == (2, 60)
    assert env_to_policy({"sprint": 1, "sneak": 1}) == (64, 60)
    assert env_to_policy({"hotbar.1": 1, "hotbar.5": 1}) == (4320, 60)
    assert env_to_policy({"hotbar.9": np.int64(1), "attack": True})[0] == 9 * 864 + 4
    # scalar values that are not python/numpy ints take the array path and agree
    assert env_to_policy({"hotbar.9": np.array(1.0), "attack": 1.0, "camera": np.array([0.0, 1.0])}) == (
        9 * 864 + 5,
        61,
    )


def test_camera_quantisation_edges_and_clipping():
    edge = 0.27098161521014075
    np.testing.assert_array_equal(
        camera_to_bins([edge - 1e-6, edge + 1e-6, -edge + 1e-6, -edge - 1e-6]), [5, 6, 5, 4]
    )
    np.testing.assert_array_equal(camera_to_bins([180.0, -180.0, 10.0, -10.0]), [10, 0, 10, 0])
    with pytest.raises(ValueError, match="finite"):
        camera_to_bins([np.nan, 0.0])
    with pytest.raises(ValueError, match="bins"):
        bins_to_camera([11])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="buttons index out of range"):
        policy_to_env(8641, 60)
    with pytest.raises(ValueError, match="camera index out of range"):
        policy_to_env(0, -1)
    with pytest.raises(ValueError, match="integer"):
        policy_to_env(1.0, 60)
    with pytest.raises(ValueError, match="same shape"):
        policy_to_env(np.zeros(3, int), np.zeros(2, int))
    with pytest.raises(ValueError, match="outside MineRL"):
        env_to_policy({"atack": 1})
    with pytest.raises(ValueError, match="camera"):
        env_to_policy({"camera": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="inconsistent batch shapes"):
        env_to_policy({"attack": np.zeros(3), "camera": np.zeros((2, 2))})


def test_spaces():
    space = minerl_action_space()
    assert list(space.keys()) == list(MINERL_ACTION_KEYS)
    assert space["camera"].shape == (2,) and space["camera"].dtype == np.float32
    assert space.contains(minerl_noop())
    space.seed(0)
    for _ in range(20):
        sample = space.sample()
        b, c = env_to_policy(sample)
        assert policy_action_space().contains({"buttons": b, "camera": c})
        out = policy_to_env(b, c)
        assert space.contains(minerl_noop() | out)
        assert env_to_policy(out) == (b, c)
