"""Every reference in the code and docs resolves inside the repository a user clones
(docs/design.md "Style" 11).

Flagged: files that are not in the repository (the fact sheets and design notes the project was
built from: ``SPEC.md``, ``DESIGN.md``, ``FACTS.md``, paths under ``/work/`` or ``../shared/``),
project issue numbers (``issue 12 item 3``: the clone has no issue tracker; GitHub issues of other
projects are written with ``#``, e.g. ``openai/Video-Pre-Training issue #54``, and are fine), a bare
``SPEC N`` in code, ``docs/NAME.md`` that does not exist, a section ``FILE.md §N`` or
``docs/NAME.md "Heading"`` that the file does not have, and an item of
docs/implementation_details.md that does not exist. One test per part of the tree, so the report
names where each stale reference is.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg"}
SKIP_DIRS = {
    ".git",
    ".venv",
    ".venv-minerl",
    "runs",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
}
THIS = Path(__file__).resolve()

#: Parts of the tree, one test each.
SCOPES = {
    "vpt_rl": ["vpt_rl"],
    "tests": ["tests"],
    "docs": ["docs"],
    "bench": ["bench"],
    "scripts": ["scripts"],
    "entry points": ["train_ppo.py", "train_bc.py"],
    "configs and top level": ["configs", "README.md", "pyproject.toml", "requirements", ".ci"],
}

#: Parts whose files other engineers are still editing; their stale references are listed in the
#: failure and fixed last. Empty this set once they are.
PENDING: set[str] = set()

OUTSIDE = re.compile(r"\b(?:SPEC|DESIGN|FACTS)\.md\b|/work/|\.\./shared/")
ISSUE = re.compile(r"\bissues? \d+", re.IGNORECASE)
BARE_SPEC = re.compile(r"\bSPEC\b(?!\.md)")
DOC_PATH = re.compile(r"(?<![\w/.])(docs/[\w./-]+\.md)")
SECTION = re.compile(r"((?:[\w.-]+/)*[\w.-]+\.md)(?:'s)? §(\d+(?:\.\d+)?)")
HEADING_REF = re.compile(r'(docs/[\w-]+\.md) "([^"]+)"')
ITEM_REF = re.compile(r"implementation_details\.md,? items? (\d+b?(?:(?:, | and | or )\d+b?)*)")
OWN_ITEM_REF = re.compile(r"\bitems? (\d+b?(?:(?:, | and | or )\d+b?)*)")


def _files(paths: list[str]) -> list[Path]:
    out = []
    for name in paths:
        p = ROOT / name
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not SKIP_DIRS & set(f.relative_to(ROOT).parts) and f != THIS:
                    if f.suffix in SUFFIXES or f.parent.name == ".ci":
                        out.append(f)
    return out


@cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


@cache
def _sections(path: Path) -> frozenset[str]:
    """Section numbers of a markdown file: headings ``## 6.`` / ``### 6.7``, and ``6.i`` for the
    numbered list items under a heading ``## 6.`` (e.g. the surprises of docs/vpt_format.md §11)."""
    found: set[str] = set()
    current = None
    for line in _text(path).splitlines():
        m = re.match(r"#+ (\d+(?:\.\d+)*)\.? ", line)
        if m:
            found.add(m.group(1))
            current = m.group(1)
            continue
        if line.startswith("#"):
            current = None
            continue
        item = re.match(r"(\d+)\. ", line)
        if item and current:
            found.add(f"{current}.{item.group(1)}")
    return frozenset(found)


@cache
def _headings(path: Path) -> tuple[str, ...]:
    return tuple(line.lstrip("#").strip() for line in _text(path).splitlines() if line.startswith("#"))


@cache
def _items() -> frozenset[str]:
    """The numbered items of docs/implementation_details.md (``12.``, ``6b.``)."""
    text = _text(ROOT / "docs" / "implementation_details.md")
    return frozenset(re.findall(r"^(\d+b?)\. \*\*", text, re.M))


def _resolve_md(name: str, folder: Path) -> Path | None:
    for base in (ROOT, folder):
        if (base / name).is_file():
            return base / name
    return None


def problems_in(path: Path) -> list[str]:
    return problems_in_text(_text(path), path.relative_to(ROOT).as_posix(), path.parent)


def problems_in_text(text: str, rel: str, folder: Path) -> list[str]:
    """Stale references in ``text`` (the file ``rel``, in ``folder``), one ``rel:line: why`` each."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{n}"
        for m in OUTSIDE.finditer(line):
            out.append(f"{where}: {m.group(0)!r} is not in the repository")
        for m in ISSUE.finditer(line):
            out.append(f"{where}: {m.group(0)!r}: cite the docs or the implementation_details item instead")
        if BARE_SPEC.search(line) and rel != "docs/implementation_details.md":
            out.append(f"{where}: bare 'SPEC': write docs/vpt_format.md §N")
        for m in DOC_PATH.finditer(line):
            if not (ROOT / m.group(1)).is_file():
                out.append(f"{where}: {m.group(1)} does not exist")
        for m in SECTION.finditer(line):
            target = _resolve_md(m.group(1), folder)
            if target is not None and m.group(2) not in _sections(target):
                out.append(f"{where}: {m.group(1)} has no §{m.group(2)}")
        for m in HEADING_REF.finditer(line):
            target = ROOT / m.group(1)
            if target.is_file() and not any(m.group(2) in h for h in _headings(target)):
                out.append(f'{where}: {m.group(1)} has no heading "{m.group(2)}"')
        item_refs = ITEM_REF.findall(line)
        if rel == "docs/implementation_details.md":
            item_refs += OWN_ITEM_REF.findall(line)
        for group in item_refs:
            for item in re.findall(r"\d+b?", group):
                if item not in _items():
                    out.append(f"{where}: docs/implementation_details.md has no item {item}")
    return out


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param(
            s,
            marks=pytest.mark.xfail(
                strict=False, reason="citations in files being edited by others are fixed last"
            ),
        )
        if s in PENDING
        else s
        for s in SCOPES
    ],
)
def test_references_resolve_inside_the_repository(scope):
    problems = [p for f in _files(SCOPES[scope]) for p in problems_in(f)]
    assert not problems, f"{len(problems)} references do not resolve:\n" + "\n".join(problems)


def test_the_checker_catches_what_it_should():
    sections = _sections(ROOT / "docs" / "vpt_format.md")
    assert {"0", "3.3", "6.7", "11.2"} <= sections and "12" not in sections
    assert {"4", "6b", "36"} <= _items()
    bad = (
        "# SPEC.md 6.7 and issue 12 item 3, docs/vpt_format.md §12, docs/nowhere.md\n"
        '# docs/design.md "No such heading", docs/implementation_details.md item 999, SPEC 8\n'
    )
    good = (
        '# docs/vpt_format.md §6.7, §3.2 step 9; docs/design.md "Decisions"; docs/minerl_facts.md §6.1\n'
        "# openai/Video-Pre-Training issue #54; docs/implementation_details.md items 22 and 23\n"
    )
    found = problems_in_text(bad + good, "sample.py", ROOT / "vpt_rl")
    assert [p.split(":")[1] for p in found] == ["1"] * 4 + ["2"] * 3, found
