"""Backends behind one interface, found by name through a registry that third parties can extend.

Built-in backends are listed here by import path (imported only when asked for); other packages add
theirs through the ``edgecc.backends`` entry-point group, whose objects are Backend subclasses.

A backend's per-target settings model (``Backend.settings_model``, the type of a target's
``[target.<name>]`` table) is registered with edgecc.targets.settings when the backend is registered:
built-in ones here (their settings modules import no backend library), a third-party one when its entry
point is read (which imports its class, not its library). Targets files are validated with them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from ..errors import BadInputError, UnknownNameError, suggest
from ..targets.settings import BackendSettings, backend_settings
from .base import Availability, Backend, BackendOptions, Compiler, LayerTime, PRECISIONS, Runner
from .onnxruntime.settings import OnnxRuntimeSettings
from .openvino.settings import OpenVinoSettings
from .tensorrt.settings import TensorRtSettings
from .tvm.settings import TvmTargetSettings

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
# The built-in backends' target tables, in the order a target lists them.
_BUILTIN_SETTINGS: dict[str, type[BackendSettings]] = {
    "onnxruntime": OnnxRuntimeSettings, "openvino": OpenVinoSettings, "tvm": TvmTargetSettings, "tensorrt": TensorRtSettings,
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

    def register(
        self, name: str, factory: Callable[[], Backend], settings: type[BackendSettings] | None = None
    ) -> None:
        """Add backend ``name``, made by ``factory`` when first asked for; ``settings``, the model of a
        target's ``[target.<name>]`` table, is registered for targets files to be validated with."""
        if name in self._factories:
            raise BadInputError(f"a backend named '{name}' is already registered")
        if settings is not None:
            backend_settings.register(name, settings)
        self._factories[name] = factory

    def _load_entry_points(self) -> None:
        """Register the backends of the ``edgecc.backends`` entry-point group (their classes are imported,
        to read their settings model; they are made when first asked for)."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise BadInputError(f"entry point {ep.name} = {ep.value} of {ENTRY_POINT_GROUP} is not a Backend subclass")
            self.register(ep.name, cls, cls.settings_model)

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
for _name, _settings in _BUILTIN_SETTINGS.items():
    backend_settings.register(_name, _settings)
for _name, _path in _BUILTIN.items():
    registry.register(_name, lambda p=_path: _import(p)(), _BUILTIN_SETTINGS.get(_name))
backend_settings.add_loader(registry._load_entry_points)


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (built-in or from an installed package)."""
    return registry.get(name)
