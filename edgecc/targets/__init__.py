"""Named targets: the built-in registry (a data file in the package), user files, and ``host``.

models.py: the Target models; settings.py: per-backend target tables (each backend registers the model of
its ``[target.<backend>]`` table); host.py: every fact about the machine edgecc runs on."""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path

import platformdirs
from pydantic import ValidationError

from ..errors import BadInputError, UnknownNameError, suggest
from .host import detect_host
from .models import CpuTarget, GpuTarget, NpuTarget, Target, TARGET_ADAPTER
from .settings import BackendSettings, backend_settings

__all__ = [
    "BackendSettings", "CpuTarget", "GpuTarget", "NpuTarget", "Target", "TargetRegistry", "backend_settings",
    "detect_host", "load_registry", "user_targets_file",
]


def user_targets_file() -> Path:
    """The per-user targets file, read when it exists (e.g. ~/.config/edgecc/targets.toml)."""
    return Path(platformdirs.user_config_dir("edgecc")) / "targets.toml"


def _parse_targets(text: str, source: str) -> list[Target]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInputError(f"{source}: not valid TOML: {e}") from None
    entries = data.get("target", [])
    if not isinstance(entries, list):
        raise BadInputError(f"{source}: expected [[target]] tables")
    targets: list[Target] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        try:
            target = TARGET_ADAPTER.validate_python(entry)
        except ValidationError as e:
            where = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
            first = e.errors()[0]
            parts = first["loc"][1:] if first["loc"] and first["loc"][0] in ("cpu", "gpu", "npu") else first["loc"]
            loc = ".".join(str(p) for p in parts) or "kind"  # the first part is the union's tag
            raise BadInputError(f"{source}: target {where}: {loc}: {first['msg']}") from None
        if target.name in seen:
            raise BadInputError(f"{source}: target {target.name} is defined twice")
        if target.name == "host":
            raise BadInputError(f"{source}: 'host' is detected at run time and cannot be defined in a file")
        seen.add(target.name)
        targets.append(target)
    return targets


class TargetRegistry:
    """Targets by name. Later sources replace earlier ones with the same name (user files win)."""

    def __init__(self, targets: list[Target], sources: dict[str, str]):
        self._targets = {t.name: t for t in targets}
        self.sources = sources

    def names(self) -> list[str]:
        return ["host", *sorted(self._targets)]

    def get(self, name: str) -> Target:
        """The target called ``name``; unknown names fail with a suggestion and the known names."""
        if name == "host":
            return detect_host()
        try:
            return self._targets[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown target '{name}'{suggest(name, self.names())}; known: {', '.join(self.names())}"
            ) from None

    def all(self) -> list[Target]:
        return [self.get(n) for n in self.names()]


def load_registry(targets_file: str | os.PathLike[str] | None = None) -> TargetRegistry:
    """Built-in targets, then the user's config file if present, then ``targets_file`` if given."""
    builtin = resources.files(__package__).joinpath("builtin.toml").read_text(encoding="utf-8")
    targets = _parse_targets(builtin, "built-in targets")
    sources = {t.name: "built-in" for t in targets}
    files = [user_targets_file()] if user_targets_file().is_file() else []
    if targets_file is not None:
        path = Path(targets_file)
        if not path.is_file():
            raise BadInputError(f"{path}: targets file not found")
        files.append(path)
    for path in files:
        extra = _parse_targets(path.read_text(encoding="utf-8"), str(path))
        targets.extend(extra)
        sources.update({t.name: str(path) for t in extra})
    return TargetRegistry(targets, sources)
