"""Fusion rules: ``common`` for every backend, plus one pack per backend whose rules only it can run.

:func:`rules_for` gives the rules for a backend (None: common only).
"""

from __future__ import annotations

import importlib

from ...errors import UnknownNameError

PACKS = {"onnxruntime": "edgecc.graph.rewrite.onnxruntime"}


def rules_for(backend: str | None = None) -> list:
    """The common rules, then those of ``backend``'s pack when it has one."""
    from . import common

    found = common.rules()
    if backend is not None and backend in PACKS:
        found += importlib.import_module(PACKS[backend]).rules()
    return found


def check_backend(backend: str) -> None:
    from ...backends import registry

    known = sorted(set(registry.names()) | set(PACKS))
    if backend not in known:
        raise UnknownNameError(f"unknown backend '{backend}' for rule packs; known: {', '.join(known)}")
