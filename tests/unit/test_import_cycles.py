"""scripts/import_cycles.py finds import circles, and the layers below backends have none."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "scripts" / "import_cycles.py")
import_cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_cycles)


def test_finds_a_circle_through_a_lazy_import_and_ignores_type_checking(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .b import g\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("from .. import a\n\ndef g():\n    pass\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_cycles.import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.c"] == set() and graph["pkg.d"] == {"pkg.a"} and graph["pkg.sub"] == {"pkg.sub.b"}
    assert import_cycles.cycles(graph) == [["pkg.a", "pkg.sub.b"]]
    assert import_cycles.main([str(pkg)]) == 1
    assert import_cycles.main([str(pkg), "--touching", str(pkg / "c.py")]) == 0


def test_no_circle_through_targets_profiling_artifact_or_the_backend_contract():
    edgecc = ROOT / "edgecc"
    owned = [edgecc / "targets", edgecc / "profiling", edgecc / "artifact.py", edgecc / "backends" / "base.py",
             edgecc / "backends" / "__init__.py", edgecc / "__init__.py"]
    files = import_cycles.module_names(edgecc)
    through = [c for c in import_cycles.cycles(import_cycles.import_graph(edgecc))
               if any(files[m] == p or p in files[m].parents for m in c for p in owned)]
    assert through == []
