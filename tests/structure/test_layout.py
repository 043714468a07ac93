"""The package's shape, checked: no import circles, no module past 450 lines, no function body past 80 lines
(issue 12's limits; see README "Where things go")."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edgecc"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _load_checker():
    """scripts/import_cycles.py, the command that prints the circles, is the checker here too."""
    spec = importlib.util.spec_from_file_location("import_cycles", PACKAGE.parent / "scripts" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


import_cycles = _load_checker()


def test_no_import_circles():
    assert import_cycles.cycles(import_cycles.import_graph(PACKAGE)) == []


def test_no_module_over_the_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_over_the_limit():
    long = {}
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                if body and (n := body[-1].end_lineno - body[0].lineno + 1) > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(PACKAGE)}:{node.name}"] = n
    assert long == {}
