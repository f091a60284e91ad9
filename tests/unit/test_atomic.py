"""Atomic writes: all-or-nothing, no temp files left, sensible permissions."""

from __future__ import annotations

import os
import stat

import pytest

from vpt_rl.atomic import atomic_torch_save, atomic_write, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path) -> None:
    path = tmp_path / "ckpt.bin"
    atomic_write_text(path, "good")

    def broken(f) -> None:
        f.write(b"partial")
        raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]


def test_new_files_are_0644_and_existing_modes_are_kept(tmp_path) -> None:
    path = tmp_path / "a" / "w.pt"
    atomic_torch_save({"x": 1}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.chmod(path, 0o640)
    atomic_torch_save({"x": 2}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
