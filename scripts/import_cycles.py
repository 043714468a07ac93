"""Report import circles between edgecc's modules, read from the source (ast), nothing imported.

Every import counts, wherever it is written (module level, inside a function, under TYPE_CHECKING): a
lazy import still ties two modules together. ``--no-type-checking`` leaves out imports under
``if TYPE_CHECKING:``. Exits 1 when a circle is found inside the packages named with ``--within``
(default: anywhere in edgecc).

    python scripts/import_cycles.py                               # every circle in edgecc
    python scripts/import_cycles.py --within edgecc.backends.tvm  # circles among the TVM backend's modules
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path, modules: set[str], type_checking: bool) -> set[str]:
    """The edgecc modules ``path`` imports (a name imported from a package counts as its submodule when one exists)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if type_checking else _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import edgecc.x.y` of a name inside a module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--within", default="edgecc", help="only modules under this package (default: edgecc)")
    ap.add_argument("--no-type-checking", action="store_true", help="leave out imports under `if TYPE_CHECKING:`")
    args = ap.parse_args()
    files = sorted((ROOT / "edgecc").rglob("*.py"))
    modules = {module_name(f) for f in files}
    within = lambda m: m == args.within or m.startswith(args.within + ".")  # noqa: E731
    graph = {module_name(f): {t for t in imports_of(f, modules, not args.no_type_checking) if within(t)}
             for f in files if within(module_name(f))}
    found = cycles(graph)
    for component in found:
        members = set(component)
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
        print(f"circle of {len(component)} modules:\n  " + "\n  ".join(edges))
    print(f"{len(graph)} modules under {args.within}, {sum(map(len, graph.values()))} imports, {len(found)} circle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
