"""No import cycle inside `aiaic.models` (issue 16: models/pretrained <-> colorizer <-> backbones).

The graph is read from the source (ast), counting every `import` of an aiaic module: at module level,
inside functions, and under `if TYPE_CHECKING:` (a type-only import still ties two modules together:
the cycle the issue names ran through one). An import of a package counts as an edge to its
`__init__`; the implicit import of a module's parent packages does not (the usual package pattern).
Covered: `aiaic.models` (`PACKAGES`); the other two cycles of the issue (colorize, data/loader) are
another branch's, which can add its packages here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aiaic.models",)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The aiaic modules `path` imports (any depth, any block), resolved to modules in `known`."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                out.add(node.module)
            for alias in node.names:  # `from aiaic.models.backbones import ddcolor`: the submodule too
                sub = f"{node.module}.{alias.name}"
                if sub in known:
                    out.add(sub)
    return out


def graph(package: str) -> dict[str, set[str]]:
    folder = ROOT.joinpath(*package.split("."))
    files = sorted(folder.rglob("*.py"))
    names = {module_name(f): f for f in files}
    known = set(names)
    return {name: imports_of(f, known) - {name} for name, f in names.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    edges = graph(package)
    assert f"{package}.backbones.ddcolor" in edges and edges[f"{package}.colorizer"]  # the graph was read
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])
