"""No import cycle among aiaic's modules, found by reading their source with `ast` (nothing is imported).

Every import counts, wherever it stands: module level, inside a function, or under `TYPE_CHECKING`
(a cycle hidden in a function is still a cycle). `from aiaic.pkg import name` points at the module
`aiaic.pkg.name` where that is a module, else at the package `aiaic.pkg` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aiaic"

# the packages whose modules must import one another without a cycle: the whole package
COVERED = ["aiaic"]


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file} of every .py file under `package` (`__init__` names the package)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module name a `from ... import` statement reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """aiaic modules that `module` (source at `path`) imports, anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    return {name for name in found if name in known and name != module}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the aiaic modules it imports} over the whole package."""
    files = module_files(package)
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def _covered(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative depth-first search in sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_find_cycle_reports_the_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_are_read_everywhere(tmp_path):
    pkg = tmp_path / "aiaic"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "one.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from aiaic.sub.two import X\n"
    )
    (pkg / "sub" / "two.py").write_text("def f():\n    from . import one\n    return one\n")
    graph = import_graph(pkg)
    assert graph["aiaic.sub.one"] == {"aiaic.sub.two"}
    assert graph["aiaic.sub.two"] == {"aiaic.sub.one"}
    assert find_cycle(graph) == ["aiaic.sub.one", "aiaic.sub.two", "aiaic.sub.one"]


def test_no_import_cycle():
    graph = import_graph()
    for prefix in COVERED:
        assert any(_covered(name, [prefix]) for name in graph), f"no module under {prefix}"
    inside = {
        name: {d for d in deps if _covered(d, COVERED)}
        for name, deps in graph.items()
        if _covered(name, COVERED)
    }
    cycle = find_cycle(inside)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
