"""Frame preprocessing: bit-identical to the cv2 golden (docs/vpt_format.md §7, tests/data/vpt_reference/README.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

from vpt_rl.envs.obs import preprocess_frame, preprocess_frames


@pytest.fixture(scope="module")
def golden(reference_dir):
    with np.load(reference_dir / "preprocess_golden.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", ["noise", "smooth"])
def test_bit_identical_to_golden(golden, name):
    out = preprocess_frame(golden[f"frame_{name}"])
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, golden[f"resized_{name}"])


def test_batched_equals_golden(golden):
    frames = np.stack([golden["frame_noise"], golden["frame_smooth"]])
    out = preprocess_frames(frames)
    assert out.shape == (2, 128, 128, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], golden["resized_noise"])
    np.testing.assert_array_equal(out[1], golden["resized_smooth"])


def test_other_sizes(golden):
    out = preprocess_frame(golden["frame_noise"], size=(32, 48))
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    batched = preprocess_frames(golden["frame_smooth"][None], size=(32, 32))
    assert batched.shape == (1, 32, 32, 3)
    # a smooth frame shrinks to roughly the same mean colour
    np.testing.assert_allclose(batched.mean(axis=(0, 1, 2)), golden["frame_smooth"].mean(axis=(0, 1)), atol=3)


def test_non_contiguous_input(golden):
    frame = golden["frame_noise"]
    flipped = frame[:, ::-1]
    np.testing.assert_array_equal(preprocess_frame(flipped), preprocess_frame(np.ascontiguousarray(flipped)))


def test_already_at_size_is_returned_without_copy(golden):
    frame = golden["resized_noise"]
    assert preprocess_frame(frame) is frame
    batch = np.stack([frame, frame])
    assert preprocess_frames(batch) is batch


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (np.zeros((360, 640, 3), np.float32), r"shape \(360, 640, 3\) dtype float32"),
        (np.zeros((360, 640), np.uint8), r"shape \(360, 640\)"),
        (np.zeros((360, 640, 4), np.uint8), r"shape \(360, 640, 4\)"),
    ],
)
def test_bad_frames_raise_naming_shape_and_dtype(bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        preprocess_frame(bad)


def test_bad_inputs():
    with pytest.raises(TypeError, match="numpy uint8 array"):
        preprocess_frame([[[0, 0, 0]]])
    with pytest.raises(ValueError, match="NxHxWx3"):
        preprocess_frames(np.zeros((360, 640, 3), np.uint8))
    with pytest.raises(ValueError, match="size"):
        preprocess_frame(np.zeros((8, 8, 3), np.uint8), size=(0, 4))
