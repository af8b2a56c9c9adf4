"""A griffe extension for the API pages: jlstm's reST habits in docstrings, as Markdown.

jlstm's docstrings are Google-style (``Args:``, ``Returns:``) with a few reST
habits that Markdown would print literally. Before mkdocstrings parses a
docstring this rewrites, outside code fences and doctests:

- ``:func:`name``` (and ``:class:``, ``:mod:``, ``:meth:``, ``:attr:``,
  ``:data:``, ``:exc:``, ``:obj:``): a cross-reference to the object, resolved
  from where the docstring sits (``~`` shows only the last name). It is
  *optional*: a name that is not on the site (an internal module) shows as
  code without a link, and does not fail ``mkdocs build --strict``.
- reST simple tables (rows between ``====  ====`` rules, a row whose first
  column is blank continuing the one above): a Markdown table.
- a paragraph ending in ``::``: ``:``, since the indented block after it is
  already a Markdown code block.
- ``Shapes:`` followed by an indented block: an admonition holding that block
  as code, so the shapes keep their lines and alignment.
- runs of ``>>>`` lines (with their ``...`` lines and expected output): fenced
  ``pycon`` blocks, so they render as code with prompts and outputs.

The docstrings themselves stay as they are (they are also read by ``help()``
and run by pytest's doctest).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(func|class|mod|meth|attr|data|exc|obj):`(~?)([^`]+)`"
)
RULE = re.compile(r"^=+( +=+)+\s*$")
STAR = re.compile(
    r"(?<=[\w)])\*(?=[\w(])"
)  # a product such as G*H, not emphasis


def _link(obj: griffe.Object, target: str, short: bool) -> str:
    """An optional autorefs cross-reference to ``target`` as seen from ``obj``."""
    target = target.rstrip("()")
    title = target.rsplit(".", 1)[-1] if short else target
    path = _resolve(obj, target)
    return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'


def _resolve(obj: griffe.Object, target: str) -> str:
    """The full path of ``target``, a name relative to ``obj``'s scope or already full."""
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            full = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            scope = scope.parent
            continue
        return f"{full}.{rest}" if rest else full
    return target


def _table(lines: list[str]) -> list[str]:
    """A reST simple table (its lines, rules included) as Markdown table lines."""
    rule = lines[0]
    spans = [m.span() for m in re.finditer(r"=+", rule)]
    starts = [s for s, _ in spans]

    def cells(line: str) -> list[str]:
        bounds = [*starts[1:], None]
        return [
            line[a:b].strip() if b else line[a:].strip()
            for a, b in zip(starts, bounds, strict=True)
        ]

    rules = [i for i, line in enumerate(lines) if RULE.match(line)]
    header_end = rules[1] if len(rules) > 2 else None
    rows: list[list[str]] = []
    header: list[str] | None = None
    for i, line in enumerate(lines):
        if RULE.match(line) or not line.strip():
            continue
        row = cells(line)
        if header_end is not None and i < header_end:
            header = (
                row
                if header is None
                else [
                    f"{a} {b}".strip()
                    for a, b in zip(header, row, strict=True)
                ]
            )
        elif rows and not row[0]:
            rows[-1] = [
                f"{a} {b}".strip()
                for a, b in zip(rows[-1], row, strict=True)
            ]
        else:
            rows.append(row)
    if header is None:
        header, rows = rows[0], rows[1:]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += [
        "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
        for row in rows
    ]
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def convert(text: str, obj: griffe.Object) -> str:
    """The docstring ``text`` of ``obj`` with the rewrites of the module docstring."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    fence = False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = not fence
            out.append(line)
            i += 1
            continue
        if fence:
            out.append(line)
            i += 1
            continue
        if stripped.startswith(">>>"):
            pad = line[: _indent(line)]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(
                    lines[i][len(pad) :]
                    if lines[i].startswith(pad)
                    else lines[i]
                )
                i += 1
            _gap(out)
            out += [
                f"{pad}```pycon",
                *(pad + b for b in block),
                f"{pad}```",
            ]
            continue
        if RULE.match(
            line
        ):  # a table is the run of non-blank lines from its first rule
            start = i
            while i < len(lines) and lines[i].strip():
                i += 1
            table = _table(lines[start:i])
            _gap(out)
            out += [_roles(row, obj) for row in table]
            continue
        if (
            stripped == "Shapes:"
            and i + 1 < len(lines)
            and _indent(lines[i + 1]) > _indent(line)
        ):
            pad = line[: _indent(line)]
            i += 1
            block = []
            while (
                i < len(lines)
                and lines[i].strip()
                and _indent(lines[i]) > len(pad)
            ):
                block.append(lines[i])
                i += 1
            inner = min(_indent(b) for b in block)
            block = [b[inner:] for b in block]
            out += [
                f"{pad}Shapes:",
                f"{pad}    ```text",
                *(f"{pad}    {b}" for b in block),
            ]
            out.append(f"{pad}    ```")
            continue
        if line.endswith("::") and not line.endswith(" ::"):
            line = line[:-1]
        elif line.endswith(" ::"):
            line = line[:-3]
        out.append(_roles(line, obj))
        i += 1
    return "\n".join(out)


def _gap(out: list[str]) -> None:
    """A blank line before a block that Markdown would otherwise run into the paragraph."""
    if out and out[-1].strip():
        out.append("")


def _roles(line: str, obj: griffe.Object) -> str:
    """Cross-references for the roles, and ``G*H`` kept literal (Markdown would read
    the stars of ``(G*H, I) ... (G*H, H)`` as emphasis), outside inline code."""
    parts = re.split(r"(`+[^`]*`+)", line)
    for k in range(
        0, len(parts), 2
    ):  # the even parts lie outside code spans
        parts[k] = STAR.sub(r"\\*", parts[k])
    return ROLE.sub(lambda m: _link(obj, m[3], m[2] == "~"), "".join(parts))


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()

        def visit(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member)

        visit(pkg)
