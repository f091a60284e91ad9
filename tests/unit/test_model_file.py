"""The restricted `.model` reader: real released files decode, and nothing in a file ever runs."""

from __future__ import annotations

import os
import pickle

import pytest

from vpt_rl.model.model_file import Gym3Placeholder, read_model_file, unpickle_model_file
from vpt_rl.model.weights import WeightsError

SHARED = {
    "recurrence_type": "transformer",
    "n_recurrence_layers": 4,
    "attention_mask_style": "clipped_causal",
    "attention_memory_size": 256,
    "timesteps": 128,
    "use_pointwise_layer": True,
    "pointwise_ratio": 4,
    "pointwise_use_activation": False,
    "recurrence_is_residual": True,
    "use_pre_lstm_ln": False,
    "img_shape": [128, 128, 3],
    "impala_chans": [16, 32, 32],
    "impala_kwargs": {"post_pool_groups": 1},
    "init_norm_kwargs": {"batch_norm": False, "group_norm_groups": 1},
    "diff_mlp_embedding": False,
    "only_img_input": True,
    "active_reward_monitors": {"env_reward": 1},
}


@pytest.mark.parametrize(
    "name, hidsize, width, heads, temperature",
    [("1x", 1024, 4, 8, 1.0), ("3x", 3072, 12, 24, 3.0)],
)
def test_released_model_files_decode(reference_dir, name, hidsize, width, heads, temperature):
    policy_kwargs, pi_head_kwargs = read_model_file(reference_dir / f"foundation-model-{name}.model")
    assert policy_kwargs == {**SHARED, "hidsize": hidsize, "impala_width": width, "attention_heads": heads}
    assert pi_head_kwargs == {"temperature": temperature}
    assert type(pi_head_kwargs["temperature"]) is float  # stored as int 1 / 3 in the pickle


def test_gym3_spaces_become_inert_placeholders(reference_dir):
    obj = unpickle_model_file(reference_dir / "foundation-model-1x.model")
    assert obj["version"] == 6616
    ac_space = obj["extra_args"]["ac_space"]
    assert isinstance(ac_space, Gym3Placeholder) and ac_space.gym3_name == "DictType"
    buttons = ac_space.state["_n2t"]["buttons"]
    assert buttons.gym3_name == "TensorType" and buttons.state["shape"] == (1,)
    assert buttons.state["eltype"].state == {"n": 8641, "dtype_name": "int64"}
    assert ac_space.state["_n2t"]["camera"].state["eltype"].state["n"] == 121


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1+1",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_rejected_without_running(tmp_path, protocol):
    marker = tmp_path / "PWNED"
    payload = {"model": {"args": {"net": {"args": {}}, "pi_head_opts": {}}}, "evil": _RunsShell(marker)}
    path = tmp_path / "evil.model"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(WeightsError, match=r"refused to unpickle global (posix|os|nt)\.system") as info:
        read_model_file(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_other_globals_are_rejected_by_name(tmp_path):
    path = tmp_path / "eval.model"
    path.write_bytes(pickle.dumps(_CallsEval()))
    with pytest.raises(WeightsError, match=r"builtins\.eval"):
        read_model_file(path)
    # a name that looks allowed but is not one of the four
    path.write_bytes(b"\x80\x04\x8c\ngym3.types\x8c\x06Binary\x93)\x81.")
    with pytest.raises(WeightsError, match=r"gym3\.types\.Binary"):
        read_model_file(path)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "file is empty"),
        (b"hello, not a pickle\n", "not a readable .model pickle"),
        (pickle.dumps([1, 2, 3]), "holds a list"),
        (pickle.dumps({"model": {"args": {}}}), "no 'model.args.net' entry"),
        (
            pickle.dumps({"model": {"args": {"net": {"args": {}}, "pi_head_opts": {"temperature": "hot"}}}}),
            "not a number",
        ),
    ],
)
def test_broken_model_files_name_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "broken.model"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=problem) as info:
        read_model_file(path)
    assert str(info.value).startswith(str(path))


def test_truncated_real_file_is_an_error(reference_dir, tmp_path):
    data = (reference_dir / "foundation-model-1x.model").read_bytes()
    path = tmp_path / "cut.model"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable .model pickle"):
        read_model_file(path)


def test_missing_directory_and_huge_files(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        read_model_file(tmp_path / "nope.model")
    with pytest.raises(WeightsError, match="is a directory"):
        read_model_file(tmp_path)
    big = tmp_path / "big.model"
    big.write_bytes(b"\0" * (2 << 20))
    with pytest.raises(WeightsError, match="too big for a .model file"):
        read_model_file(big)
