"""The ``edgecc`` command: parses flags, calls edgecc.api, prints. Exit codes are in edgecc.errors.

Each module here adds its commands to the one Typer app in ``common``; importing them registers them.
A new feature's commands go in a module of their own, listed below.
"""

from __future__ import annotations

from . import core, graph, quantize, report, search, tvm  # noqa: F401  (each registers its commands)
from .common import app


def main() -> None:
    app()


__all__ = ["app", "main"]
