"""One base for user errors (vpt_rl/errors.py): every exception class the package defines derives
from `VPTRLError` (a training failure excepted), and each CLI turns one into ``PROG: error: MESSAGE``
and exit 2 without a traceback, while anything else keeps its traceback."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import vpt_rl
from vpt_rl import cli
from vpt_rl.errors import VPTRLError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "vpt_rl"
#: Not user errors: a training failure (exit 1, the trainer already said why).
NOT_USER_ERRORS = {"vpt_rl.algo.phases.NonFiniteError"}
#: Imports a module may lack here (docs/design.md "Style" 10: optional heavy imports).
OPTIONAL = {"minerl", "ray"}


def _exception_classes() -> dict[str, type[BaseException]]:
    """``module.Name`` -> class, for every exception class defined in a module of the package."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(vpt_rl.__path__, "vpt_rl."):
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] in OPTIONAL:
                continue
            raise
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == info.name:
                found[f"{info.name}.{obj.__qualname__}"] = obj
    return found


def _error_classes_in_source() -> set[str]:
    """``module.Name`` of every top-level class named ``...Error`` in the package's source."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                names.add(f"{module}.{node.name}")
    return names


def test_every_exception_class_is_a_user_error():
    classes = _exception_classes()
    assert "vpt_rl.config.lib.ConfigError" in classes and NOT_USER_ERRORS <= set(classes)
    missing = sorted(
        name
        for name, cls in classes.items()
        if name not in NOT_USER_ERRORS and not issubclass(cls, VPTRLError)
    )
    assert not missing, f"derive these from vpt_rl.errors.VPTRLError (keeping their own base): {missing}"
    assert not any(issubclass(classes[name], VPTRLError) for name in NOT_USER_ERRORS)
    # no module was skipped that defines an error class the walk above did not see
    assert _error_classes_in_source() <= set(classes)


def test_user_errors_keep_their_builtin_base():
    """``except ValueError`` / ``except RuntimeError`` callers still catch them."""
    from vpt_rl.algo.bc_setup import BCSetupError
    from vpt_rl.checkpoint import CheckpointError
    from vpt_rl.config import ConfigError
    from vpt_rl.data.jsonl import DemoFormatError
    from vpt_rl.distributed import DistributedError
    from vpt_rl.model.weights import WeightsError
    from vpt_rl.run_lock import RunLockedError

    for cls in (BCSetupError, ConfigError, DemoFormatError, WeightsError):
        assert issubclass(cls, ValueError)
    for cls in (CheckpointError, DistributedError, RunLockedError):
        assert issubclass(cls, RuntimeError)
    assert vpt_rl.VPTRLError is VPTRLError


def test_config_validation_errors_are_config_errors():
    """A field checked in ``__post_init__`` raises ConfigError, built directly or from a file."""
    from vpt_rl.config import BCConfig, ConfigError, TrainConfig, load_bc_config
    from vpt_rl.config.bc import BCOptimConfig

    with pytest.raises(ConfigError, match="bc.lr must be > 0"):
        BCOptimConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="device must be"):
        TrainConfig(device="tpu")
    with pytest.raises(ConfigError, match="device must be"):
        BCConfig(device="tpu")
    with pytest.raises(ConfigError, match=r"^bc: bc\.lr must be > 0"):  # the section prefix stays
        load_bc_config([], ["bc.lr=-1"])


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    return err


def test_train_ppo_bad_config_key_exits_2(capsys, tmp_path):
    train_ppo = _load_script("train_ppo")
    assert train_ppo.main(["--runs-dir", str(tmp_path), "ppg.no_such_key=1"]) == 2
    assert "ppg.no_such_key" in _one_error_line(capsys, "train_ppo.py")


def test_train_bc_missing_data_folder_exits_2(capsys, tmp_path):
    train_bc = _load_script("train_bc")
    argv = ["--data", str(tmp_path / "nope"), "--runs-dir", str(tmp_path), "--run-name", "r"]
    assert train_bc.main(argv) == 2
    assert "demonstration folder not found" in _one_error_line(capsys, "train_bc.py")


def test_vpt_rl_inspect_missing_file_exits_2(capsys, tmp_path):
    assert cli.main(["inspect", str(tmp_path / "missing.weights")]) == 2
    assert "missing.weights" in _one_error_line(capsys, "vpt-rl inspect")


def test_any_user_error_subclass_exits_2(capsys, monkeypatch):
    """The CLI catches the base, not a list: a subclass it never named is still a user error."""

    class NewError(VPTRLError, ValueError):
        pass

    def run(args):
        raise NewError("the thing named here is wrong")

    monkeypatch.setattr("vpt_rl.commands.plot.run", run)
    assert cli.main(["plot", "somewhere"]) == 2
    assert _one_error_line(capsys, "vpt-rl plot").endswith("the thing named here is wrong\n")


def test_unexpected_exception_keeps_its_traceback(capsys, monkeypatch):
    """A bug is not a user error: `vpt-rl` lets it through, so Python prints its traceback."""

    def run(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("vpt_rl.commands.inspect.run", run)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["inspect", "any.weights"])
    assert "error:" not in capsys.readouterr().err
