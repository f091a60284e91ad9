"""Reader of VPT-format demonstrations (mp4 + jsonl) and the mp4 helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vpt_rl.data.demos import DemoFormatError, draw_cursor, list_episodes, read_episode
from vpt_rl.data.video import FOURCC, VideoError, read_video, write_video
from vpt_rl.envs.actions import NULL_BUTTONS, NULL_CAMERA, env_to_policy

H, W = 72, 128  # small frames keep the test fast; the reader does not depend on 640x360


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


def frames_for(n: int) -> np.ndarray:
    """Distinct flat-colour RGB frames (compress well, so colours survive mp4 closely)."""
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]], dtype=np.uint8)
    return np.stack([np.broadcast_to(colours[i % 4], (H, W, 3)) for i in range(n)]).copy()


def write_episode(folder: Path, name: str, steps: list, frames: np.ndarray | None = None) -> Path:
    frames = frames_for(len(steps)) if frames is None else frames
    write_video(folder / f"{name}.mp4", frames)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    return folder / name


STEPS = [
    line(),  # null
    line(keys=["key.keyboard.w"]),
    line(dx=10.0, dy=-4.0),
    line(),  # null
    line(hotbar=2),  # hotbar change -> hotbar.3
    line(buttons=[0], new_buttons=[0], hotbar=2),
]


def test_video_round_trip_mp4v(tmp_path):
    frames = frames_for(8)
    write_video(tmp_path / "v.mp4", frames)
    back = read_video(tmp_path / "v.mp4")
    assert FOURCC == "mp4v" and back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 4  # lossy, but close, RGB order kept
    assert not list(tmp_path.glob(".*"))  # no partial file left behind


def test_read_episode_actions_and_null_filter(tmp_path):
    stem = write_episode(tmp_path, "ep", STEPS)
    ep = read_episode(stem, img_size=(32, 32), drop_null=True)
    assert ep.n_lines == 6 and ep.kept_t.tolist() == [1, 2, 4, 5]
    expected = [
        env_to_policy({"forward": 1}),
        env_to_policy({"camera": np.array([-0.6, 1.5])}),
        env_to_policy({"hotbar.3": 1}),
        env_to_policy({"attack": 1}),
    ]
    assert list(zip(ep.buttons_t.tolist(), ep.camera_t.tolist())) == expected
    assert ep.frames_thwc.shape == (4, 32, 32, 3) and ep.frames_thwc.dtype == np.uint8
    everything = read_episode(stem, img_size=(32, 32), drop_null=False)
    assert len(everything) == 6 and everything.kept_t.tolist() == list(range(6))
    assert (everything.buttons_t[[0, 3]] == NULL_BUTTONS).all() and (
        everything.camera_t[[0, 3]] == NULL_CAMERA
    ).all()


def test_frames_are_rgb_and_paired_with_lines(tmp_path):
    stem = write_episode(tmp_path, "ep", STEPS)
    ep = read_episode(stem, img_size=(16, 16), drop_null=False)
    expected = frames_for(6)[:, :16, :16].astype(int)
    assert np.abs(ep.frames_thwc.astype(int) - expected).max() < 20  # red stays red: BGR->RGB done


def test_stuck_attack_start(tmp_path):
    steps = [line(buttons=[0], new_buttons=[0]), line(buttons=[0]), line(buttons=[0], new_buttons=[0])]
    stem = write_episode(tmp_path, "ep", steps)
    ep = read_episode(stem, img_size=(16, 16), drop_null=True)
    assert ep.kept_t.tolist() == [2]  # the stuck attack makes lines 0 and 1 null
    assert ep.buttons_t.tolist() == [env_to_policy({"attack": 1})[0]]


def test_gui_cursor_drawn(tmp_path):
    frame = np.zeros((360, 640, 3), np.uint8)
    drawn = draw_cursor(frame, 640.0, 360.0)  # recording coords (1280x720): frame centre
    assert (drawn[180:188, 320:325] == 255).any() and drawn[:170].max() == 0
    box = np.argwhere(drawn.max(axis=-1) > 0)
    assert box.min(0).tolist() >= [180, 320] and box.max(0).tolist() <= [180 + 8, 320 + 8]  # 16 * 360/720
    steps = [line(keys=["key.keyboard.e"], gui=True, x=100.0, y=100.0), line(keys=["key.keyboard.e"])]
    black = np.zeros((2, 360, 640, 3), np.uint8)
    ep = read_episode(write_episode(tmp_path, "ep", steps, black), img_size=(128, 128), drop_null=False)
    assert ep.frames_thwc[0].max() > 100 and ep.frames_thwc[1].max() < 30
    assert ep.frames_thwc[0, 15:25, 5:15].max() > 100  # (x, y) = (100, 100) of 1280x720 -> row 18, col 10


def test_missing_and_corrupt_video(tmp_path):
    (tmp_path / "ep.jsonl").write_text(json.dumps(line()) + "\n")
    with pytest.raises(DemoFormatError, match=r"ep\.mp4: video file not found"):
        read_episode(tmp_path / "ep")
    with pytest.raises(DemoFormatError, match=r"ep\.mp4: video file not found"):
        list_episodes(tmp_path)
    (tmp_path / "ep.mp4").write_bytes(b"not a video" * 50)
    with pytest.raises(DemoFormatError, match=r"ep\.mp4: cannot open the video"):
        read_episode(tmp_path / "ep")
    good = tmp_path / "good.mp4"
    write_video(good, frames_for(4))
    (tmp_path / "ep.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    with pytest.raises(DemoFormatError, match=r"ep\.mp4: "):
        read_episode(tmp_path / "ep")
    with pytest.raises(VideoError, match="not found"):
        read_video(tmp_path / "nope.mp4")


def test_frame_count_mismatch(tmp_path):
    stem = write_episode(tmp_path, "ep", STEPS, frames_for(5))
    with pytest.raises(DemoFormatError, match=r"ep\.mp4: 5 video frames but ep\.jsonl has 6 lines"):
        read_episode(stem)
    stem = write_episode(tmp_path, "ep2", STEPS, frames_for(7))
    with pytest.raises(DemoFormatError, match=r"7 video frames but ep2\.jsonl has 6 lines"):
        read_episode(stem)


def test_bad_lines_name_file_and_line(tmp_path):
    stem = write_episode(tmp_path, "ep", STEPS)
    lines = (tmp_path / "ep.jsonl").read_text().splitlines()
    lines[3] = lines[3][:-5]
    (tmp_path / "ep.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DemoFormatError, match=r"ep\.jsonl:4: not valid JSON"):
        read_episode(stem)
    lines[3] = json.dumps({k: v for k, v in line().items() if k != "hotbar"})
    (tmp_path / "ep.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DemoFormatError, match=r"ep\.jsonl:4: missing or invalid field hotbar"):
        read_episode(stem)
    lines[3] = ""
    (tmp_path / "ep.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DemoFormatError, match=r"ep\.jsonl:4: empty line"):
        read_episode(stem)


def test_list_episodes(tmp_path):
    write_episode(tmp_path, "b", STEPS[:2])
    write_episode(tmp_path, "a", STEPS[:2])
    assert [p.name for p in list_episodes(tmp_path)] == ["a", "b"]
    (tmp_path / "c.mp4").write_bytes((tmp_path / "a.mp4").read_bytes())
    with pytest.raises(DemoFormatError, match=r"c\.jsonl: action file not found"):
        list_episodes(tmp_path)
    with pytest.raises(DemoFormatError, match="demonstration folder not found"):
        list_episodes(tmp_path / "a.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DemoFormatError, match="no episodes"):
        list_episodes(empty)
