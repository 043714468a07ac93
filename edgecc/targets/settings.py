"""Per-backend target settings: the base model and the registry a target validates its tables through.

A target lists the backends it serves as tables named after them (``[target.tvm]``, ``[target.openvino]``).
Each backend owns the model of its table (a BackendSettings subclass in its own package) and the backend
registry (edgecc.backends) registers it here, built-in backends when that registry is first imported and
third-party ones when their ``edgecc.backends`` entry points are read. This package sits below backends
and never imports them: it runs the loaders it was given (``add_loader``) the first time it needs a
model it does not know. The package root (edgecc/__init__.py) installs the loader that imports
edgecc.backends, so that targets validate the same whatever was imported first.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from ..errors import BadInputError


class BackendSettings(BaseModel):
    """Base of a backend's per-target settings (the target's table named after the backend); unknown
    keys are an error and a validated table does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SettingsRegistry:
    """Settings models by backend name, in the order they were registered (the order a target lists them)."""

    def __init__(self) -> None:
        self._models: dict[str, type[BackendSettings]] = {}
        self._loaders: list[Callable[[], None]] = []

    def register(self, backend: str, model: type[BackendSettings]) -> None:
        """Make ``model`` the type of a target's ``backend`` table; registering the same model again is a no-op."""
        if not (isinstance(model, type) and issubclass(model, BackendSettings)):
            raise BadInputError(f"backend {backend}: its settings model must subclass edgecc.targets.BackendSettings")
        known = self._models.get(backend)
        if known is not None and known is not model:
            raise BadInputError(f"backend {backend}: settings model {model.__name__} conflicts with {known.__name__}")
        self._models[backend] = model

    def add_loader(self, loader: Callable[[], None]) -> None:
        """``loader`` registers models (idempotent); it runs whenever a model is asked for that is not known yet."""
        if loader not in self._loaders:
            self._loaders.append(loader)

    def _load(self) -> None:
        for loader in list(self._loaders):
            loader()

    def get(self, backend: str) -> type[BackendSettings] | None:
        """The settings model of ``backend``'s table, or None when no registered backend has that name."""
        if backend not in self._models:
            self._load()
        return self._models.get(backend)

    def names(self) -> list[str]:
        """Backends with a settings model, in registration order."""
        self._load()
        return list(self._models)


#: the one registry; edgecc.backends fills it
backend_settings = SettingsRegistry()
