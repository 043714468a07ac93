"""Artifact directories: a backend's files plus manifest.json, written atomically, verified on load.

An artifact is built in a staging directory beside its destination and renamed into place only when
complete, so a failed compile leaves whatever was at the destination untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from .atomic import write_atomic
from .errors import ArtifactError, BadInputError
from .graph.io import TensorSpec, sha256_file
from .targets import TARGET_ADAPTER, Target

MANIFEST = "manifest.json"
REFERENCE = "reference.npz"
FORMAT_VERSION = 1


class TensorSpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    dtype: str
    shape: list[int]

    def spec(self) -> TensorSpec:
        return TensorSpec(self.name, self.dtype, tuple(self.shape))


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="path or zoo:NAME the model was read from")
    name: str
    sha256: str = Field(description="sha256 of the model as read (the file's bytes, or the zoo model's serialisation)")
    flops: int | None = Field(None, description="FLOPs of one inference at the artifact's input shapes")


class Manifest(BaseModel):
    """What an artifact is: enough to run it again, check it, and rebuild it."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["edgecc-artifact"] = "edgecc-artifact"
    format_version: int = FORMAT_VERSION
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    backend: str
    precision: str
    versions: dict[str, str] = Field(description="edgecc, python, onnx, numpy and the backend's libraries")
    target: Target
    model: ModelInfo
    inputs: list[TensorSpecModel]
    outputs: list[TensorSpecModel]
    passes: list[str]
    options: dict[str, JsonValue]
    notes: list[str] = []
    compile_s: float
    files: dict[str, str] = Field(description="relative path -> sha256 of every file but the manifest")


class Artifact:
    """A loaded, verified artifact directory."""

    def __init__(self, path: Path, manifest: Manifest):
        self.path = path
        self.manifest = manifest

    @property
    def inputs(self) -> list[TensorSpec]:
        return [t.spec() for t in self.manifest.inputs]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [t.spec() for t in self.manifest.outputs]

    @property
    def total_bytes(self) -> int:
        """Bytes of the backend's files (the reference data and the manifest not counted)."""
        return sum((self.path / f).stat().st_size for f in self.manifest.files if f != REFERENCE)

    def file(self, relative: str) -> Path:
        return self.path / relative


def common_versions() -> dict[str, str]:
    import numpy
    import onnx

    from . import __version__

    return {"edgecc": __version__, "python": platform.python_version(), "onnx": onnx.__version__, "numpy": numpy.__version__}


def _checksums(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in files}


def _is_artifact_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def check_destination(out_dir: Path) -> None:
    """Refuse to write over a directory that is not an edgecc artifact (it might be the user's work)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise BadInputError(f"{out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()) and not _is_artifact_dir(out_dir):
            raise BadInputError(f"{out_dir}: exists, is not empty and is not an edgecc artifact; choose another -o")


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging directories left by a compile that was killed (its pid is gone) are removed."""
    import psutil

    for leftover in out_dir.parent.glob(f".{out_dir.name}.*.partial"):
        pid = leftover.name[len(out_dir.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _lock_path(out_dir: Path) -> Path:
    """The lock for writing ``out_dir``: in the user cache, so nothing is left beside the artifact."""
    from .cache import cache_dir

    return cache_dir("locks") / (hashlib.sha256(str(out_dir).encode()).hexdigest()[:24] + ".lock")


def write_artifact(out_dir: Path, build: Callable[[Path], Manifest]) -> Artifact:
    """Call ``build(staging_dir)`` to fill a staging directory and return the manifest (without
    ``files``); checksum the files, write the manifest and move the whole into ``out_dir`` atomically.

    An artifact already at ``out_dir`` is replaced only after the new one is complete; two processes
    writing the same ``out_dir`` take turns (a lock beside it), and the last one wins whole.
    """
    from filelock import FileLock

    out_dir = Path(out_dir).absolute()
    check_destination(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".partial", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; an artifact is an ordinary directory
    try:
        manifest = build(staging)
        manifest = manifest.model_copy(update={"files": _checksums(staging)})
        write_atomic(staging / MANIFEST, json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
        with FileLock(str(_lock_path(out_dir))):
            check_destination(out_dir)
            if out_dir.exists():
                old = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old.partial")
                os.replace(out_dir, old)
                os.replace(staging, out_dir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Artifact(out_dir, manifest)


def load_artifact(path: str | os.PathLike[str], *, verify: bool = True) -> Artifact:
    """Read an artifact directory; with ``verify``, refuse it when any file's checksum does not match."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root}: not an artifact directory (no such directory)")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(f"{root}: not an edgecc artifact (no {MANIFEST})")
    try:
        manifest = Manifest.model_validate_json(mpath.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        raise ArtifactError(f"{mpath}: invalid manifest: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if manifest.format_version != FORMAT_VERSION:
        raise ArtifactError(f"{mpath}: manifest format {manifest.format_version}, this edgecc reads {FORMAT_VERSION}")
    if verify:
        for rel, expected in manifest.files.items():
            f = root / rel
            if not f.is_file():
                raise ArtifactError(f"{root}: file {rel} listed in the manifest is missing; recompile")
            if sha256_file(f) != expected:
                raise ArtifactError(f"{root}: checksum of {rel} does not match the manifest (file changed or corrupt); recompile")
    return Artifact(root, manifest)


def target_from_manifest(manifest: Manifest) -> Target:
    return TARGET_ADAPTER.validate_python(manifest.target.model_dump())
