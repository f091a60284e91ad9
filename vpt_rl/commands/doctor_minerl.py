"""MineRL 1.0's install, as ``vpt-rl doctor`` checks it: the `minerl` package (1.0, not PyPI's 0.x),
Java 8, a display or xvfb-run for Minecraft's window, numpy < 1.24. Each is a FAIL when the planned
run's env is MineRL and a WARN otherwise (`Target.minerl`). Same shape as
`vpt_rl.commands.doctor_checks`: the machine is read only through `Probes`.
"""

from __future__ import annotations

import re

from vpt_rl.commands.doctor_checks import (
    MINERL_INSTALL,
    MINERL_NUMPY_BELOW,
    Line,
    Target,
    _bad,
    _version_tuple,
)
from vpt_rl.commands.doctor_probes import Probes

__all__ = ["check_display", "check_java", "check_minerl", "check_numpy", "java_major"]


def check_minerl(p: Probes, t: Target) -> list[Line]:
    """MineRL 1.0 installed (not PyPI's 0.4.4)."""
    version = p.module_version("minerl")
    bad = _bad(t.minerl)
    need = "" if t.minerl else " (only needed for MineRL env ids)"
    if version is None:
        return [Line(bad, "minerl", "not installed" + need, f"{MINERL_INSTALL} (JDK 8 at install; README)")]
    if version != "unknown" and _version_tuple(version)[:1] == (0,):
        return [
            Line(
                bad,
                "minerl",
                f"{version}: PyPI's `minerl` is MineRL 0.x, incompatible with VPT's MineRL 1.0" + need,
                f"pip uninstall minerl && {MINERL_INSTALL}",
            )
        ]
    return [Line("OK", "minerl", version)]


def java_major(version_output: str) -> int | None:
    """The Java major version in ``java -version``'s output: "1.8.0_392" -> 8, "17.0.2" -> 17."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if m is None:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_java(p: Probes, t: Target) -> list[Line]:
    """Java 8 on PATH (MineRL 1.0 runs its Minecraft client with it)."""
    bad = _bad(t.minerl)
    need = "" if t.minerl else " (only needed for MineRL)"
    fix = "install JDK 8 (e.g. apt-get install openjdk-8-jdk) and put its bin/ first on PATH"
    path = p.which("java")
    if path is None:
        return [Line(bad, "java", "no `java` on PATH" + need, fix)]
    code, out, err = p.run([path, "-version"])
    major = java_major(err + out)  # java -version writes to stderr
    if major is None:
        first = (err or out).strip().splitlines()[:1]
        return [Line(bad, "java", f"{path}: cannot read `java -version` ({first or code})" + need, fix)]
    if major != 8:
        return [Line(bad, "java", f"{path} is Java {major}: MineRL 1.0 needs Java 8" + need, fix)]
    return [Line("OK", "java", f"Java 8 ({path})")]


def check_display(p: Probes, t: Target) -> list[Line]:
    """A display for Minecraft's window: $DISPLAY, or xvfb-run to make one."""
    display = p.environ.get("DISPLAY")
    if display:
        return [Line("OK", "display", f"DISPLAY={display}")]
    xvfb = p.which("xvfb-run")
    if xvfb:
        return [
            Line(
                "OK",
                "display",
                f"no $DISPLAY; {xvfb} found: launch with `xvfb-run -a python train_ppo.py ...`",
            )
        ]
    need = "" if t.minerl else " (only needed for MineRL)"
    return [
        Line(
            _bad(t.minerl),
            "display",
            "no $DISPLAY and no xvfb-run on PATH: Minecraft cannot open its window" + need,
            "apt-get install xvfb and launch under `xvfb-run -a` (or VirtualGL for GPU rendering)",
        )
    ]


def check_numpy(p: Probes, t: Target) -> list[Line]:
    """numpy < 1.24 for MineRL 1.0 (it uses aliases numpy 1.24 removed)."""
    version = p.module_version("numpy")
    if version is None:
        return [Line("FAIL", "numpy", "not installed", "pip install -e . (README: setup)")]
    if _version_tuple(version)[:2] >= MINERL_NUMPY_BELOW:
        if t.minerl:
            return [
                Line(
                    "FAIL",
                    "numpy",
                    f"{version}: MineRL 1.0 needs numpy < 1.24",
                    "pip install 'numpy<1.24' (Python <= 3.11)",
                )
            ]
        return [Line("OK", "numpy", f"{version} (MineRL 1.0 would need < 1.24)")]
    return [Line("OK", "numpy", version)]
