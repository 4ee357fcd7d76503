"""No import circle anywhere in autolor2c/, and the search's rooms import one way: the arrows at the top of
search/__init__.py.

Imports are read with ast, at module level and inside functions alike (an import in a function runs too, only
later), with relative imports resolved; an import from a lazy face (a package whose ``__init__`` maps names to
modules in ``_HOME``) counts as an import of every module the face takes names from.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import autolor2c.search

PACKAGE = Path(__file__).resolve().parents[1] / "autolor2c"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _nearest(dotted: str, modules: dict[str, Path]) -> str | None:
    """The module ``dotted`` names, or the package that holds the name (None: not ours)."""
    while dotted and dotted not in modules:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_nearest(a.name, modules) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for a in node.names:  # `from package import module` imports the module, else the package
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else _nearest(base, modules))
    if is_package:  # a lazy face: _HOME = {name: module under the face}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_HOME" for t in node.targets):
                found.update(f"{name}.{home}" for home in ast.literal_eval(node.value).values())
    return {m for m in found if m and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected group of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle_in(graph, set(g)) for g in groups]


def _circle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths = [[start]]
    while paths:  # breadth first: a shortest way back to start
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & group):
            if w == start:
                return path + [start]
            if w not in path:
                paths.append(path + [w])
    return sorted(group)


def test_no_import_circle_in_the_package():
    circles = _circles(_graph())
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_circle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import x\n")
    modules = {"p.a": tmp_path / "a.py", "p.b": tmp_path / "b.py"}
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph == {"p.a": {"p.b"}, "p.b": {"p.a"}}
    assert _circles(graph) == [["p.a", "p.b", "p.a"]]


def test_the_search_rooms_import_one_way_as_the_arrows_say():
    arrows = next(line for line in autolor2c.search.__doc__.splitlines() if "<-" in line)
    level = {room.strip(): k for k, step in enumerate(arrows.split("<-")) for room in step.split(",")}
    search = PACKAGE / "search"
    rooms = {d.name for d in search.iterdir() if (d / "__init__.py").is_file()}
    assert set(level) == rooms, "every room of search/ stands once in the arrows of search/__init__.py"

    def room(module: str) -> str | None:
        m = re.match(r"autolor2c\.search\.(\w+)", module)
        return m.group(1) if m and m.group(1) in rooms else None

    wrong = sorted({f"{room(a)} -> {room(b)} ({a} imports {b})" for a, deps in _graph().items() for b in deps
                    if room(a) and room(b) and room(a) != room(b) and level[room(b)] >= level[room(a)]})
    assert not wrong, "\n".join(wrong)
