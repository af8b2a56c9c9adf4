"""The docs site's contracts that pytest's doctests and ``mkdocs build --strict`` cannot see.

The guides' examples themselves run as doctests (``--doctest-glob=docs/*.md`` in
pyproject.toml); these tests check that none escapes that, that every public module
has an API page, and that the README's test command is the one CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def _rendered_modules() -> set[str]:
    """The objects named by a ``::: name`` directive on any docs page."""
    names = set()
    for page in PAGES:
        names.update(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    return names


def _public_modules() -> list[str]:
    """jlstm's public modules that need their own API entry: the top-level modules, the
    cells, the NNX modules and the PyTorch interop (the packages jlstm.data and
    jlstm.train are rendered through their exports)."""
    found = ["jlstm", "jlstm.cells", "jlstm.nn", "jlstm.train", "jlstm.data"]
    for package in ("jlstm", "jlstm.cells", "jlstm.nn", "jlstm.interop"):
        folder = ROOT.joinpath(*package.split("."))
        found += [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem[0] != "_"]
    return found


def test_pages_exist():
    assert {"index.md", "quickstart.md", "results.md"} <= {p.name for p in PAGES}


@pytest.mark.parametrize("module", _public_modules())
def test_every_public_module_has_an_api_entry(module):
    assert module in _rendered_modules(), (
        f"{module} has no `::: {module}` directive under docs/api/ (add it to the page of its "
        "group, e.g. docs/api/cells.md for a new cell)"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_python_blocks_are_doctests(page):
    """A Python block without ``>>>`` would be shown but never run."""
    for lang, body in FENCE.findall(page.read_text(encoding="utf-8")):
        if lang in ("python", "py", "pycon"):
            assert ">>>" in body, f"{page.name}: a {lang} block that is not a doctest:\n{body}"
            assert body.endswith("\n\n"), (
                f"{page.name}: a doctest block must end with a blank line before its closing "
                f"fence (else the fence is read as expected output):\n{body}"
            )


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "python -m pytest" in line)
    assert command.strip() in (ROOT / "README.md").read_text(encoding="utf-8")
