"""Backends behind one interface, found by name through a registry that third parties can extend.

Built-in backends are listed here by import path (imported only when asked for); other packages add
theirs through the ``edgecc.backends`` entry-point group, whose objects are Backend subclasses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from ..errors import BadInputError, UnknownNameError, suggest
from .base import Availability, Backend, BackendOptions, Compiler, LayerTime, PRECISIONS, Runner

__all__ = [
    "Availability", "Backend", "BackendOptions", "BackendRegistry", "Compiler", "LayerTime", "PRECISIONS",
    "Runner", "get_backend", "registry",
]

ENTRY_POINT_GROUP = "edgecc.backends"
_BUILTIN = {
    "onnxruntime": "edgecc.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "edgecc.backends.openvino:OpenVinoBackend",
    "tensorrt": "edgecc.backends.tensorrt:TensorRtBackend",
    "tvm": "edgecc.backends.tvm:TvmBackend",
}


def _import(path: str) -> type[Backend]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class BackendRegistry:
    """Backend factories by name; duplicates are rejected, unknown names fail with the known ones."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], Backend]] = {}
        self._instances: dict[str, Backend] = {}
        self._entry_points_loaded = False

    def register(self, name: str, factory: Callable[[], Backend]) -> None:
        if name in self._factories:
            raise BadInputError(f"a backend named '{name}' is already registered")
        self._factories[name] = factory

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self.register(ep.name, lambda ep=ep: ep.load()())

    def names(self) -> list[str]:
        self._load_entry_points()
        return list(self._factories)

    def get(self, name: str) -> Backend:
        self._load_entry_points()
        if name not in self._factories:
            known = self.names()
            raise UnknownNameError(f"unknown backend '{name}'{suggest(name, known)}; known: {', '.join(known)}")
        if name not in self._instances:
            backend = self._factories[name]()
            if backend.name != name:
                raise BadInputError(f"backend registered as '{name}' calls itself '{backend.name}'")
            self._instances[name] = backend
        return self._instances[name]


registry = BackendRegistry()
for _name, _path in _BUILTIN.items():
    registry.register(_name, lambda p=_path: _import(p)())


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (built-in or from an installed package)."""
    return registry.get(name)
