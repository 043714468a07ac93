#!/usr/bin/env python3
"""Report import cycles between the modules of a package, read from the source (nothing is imported).

Every import counts, also those inside functions (a lazy import only hides a circle, it does not remove
it); imports under ``if TYPE_CHECKING:`` do not (they never run). ``from pkg import name`` is an edge to
``pkg.name`` when that is a module, else to ``pkg``. A package's ``__init__`` is the module ``pkg``.

    python scripts/import_cycles.py [edgecc] [--touching edgecc/targets edgecc/profiling ...]

Prints one line per cycle (the modules of a strongly connected component, and one path around it) and
exits 1 when there is any (or, with ``--touching``, any that includes one of those files or folders).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package folder ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                continue
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = here[: len(here) - node.level + 1] if node.level else []
                pkg = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in modules else pkg for a in node.names]
            for t in targets:
                while t and t not in modules:  # `import a.b.c` where only a.b is ours, or an outside module
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def path_around(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One import path from the component's first module back to itself, inside the component."""
    members, start = set(component), component[0]
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
            if w not in parents:
                parents[w] = v
                queue.append(w)
    return component


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="edgecc", help="the package folder (default: edgecc)")
    parser.add_argument("--touching", nargs="*", default=[], help="report only cycles through these files/folders")
    args = parser.parse_args(argv)
    root = Path(args.package).resolve()
    graph = import_graph(root)
    files = module_names(root)
    wanted = [Path(p).resolve() for p in args.touching]
    reported = 0
    for component in cycles(graph):
        if wanted and not any(files[m] == w or w in files[m].parents for m in component for w in wanted):
            continue
        reported += 1
        print(f"cycle of {len(component)}: {' -> '.join(path_around(graph, component))}")
        print(f"  modules: {', '.join(component)}")
    print(f"{reported} import cycle(s)" + (f" through {', '.join(args.touching)}" if wanted else ""))
    return 1 if reported else 0


if __name__ == "__main__":
    sys.exit(main())
