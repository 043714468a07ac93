"""The model as one shared library: its file in the artifact, the compiler that links it for a target's
CPU, the checks and settings for loading it here, and reading its outputs.

The lowest module of the TVM backend: compile, run, tune and rpc import from here, never the other way.
``tvm`` is imported inside functions only.
"""

from __future__ import annotations

import os
import platform
import shutil
from typing import TYPE_CHECKING

import numpy as np

from ...errors import ArtifactError, BackendUnavailable

if TYPE_CHECKING:
    from ...artifact import Artifact
    from ...targets import Target

LIBRARY_FILE = "model.so"
# The C++ compiler that links an exported library, per target triple prefix (arch).
CROSS_COMPILERS = {"aarch64": "aarch64-linux-gnu-g++"}
CROSS_COMPILER_PACKAGES = {"aarch64": "g++-aarch64-linux-gnu"}
THREADS_ENV = "TVM_NUM_THREADS"


def target_arch(target: Target) -> str:
    """The CPU architecture of ``target``'s code ('x86_64', 'aarch64')."""
    return target.tvm.mtriple.split("-", 1)[0] if target.tvm is not None else target.arch


def is_foreign(target: Target) -> bool:
    """True when ``target``'s code cannot run on this machine's CPU."""
    return target_arch(target) != platform.machine()


def linker_for(target: Target):
    """The fcompile for export_library: None (the host's compiler) or the cross compiler for ``target``."""
    arch = target_arch(target)
    if arch == platform.machine():
        return None
    cxx = CROSS_COMPILERS.get(arch)
    if cxx is None:
        raise BackendUnavailable(f"no cross compiler known for {arch} (target {target.name})")
    if shutil.which(cxx) is None:
        raise BackendUnavailable(
            f"cross-compiling for {target.name} ({arch}) needs {cxx}; install it with: "
            f"apt-get install {CROSS_COMPILER_PACKAGES[arch]}"
        )
    from tvm.support.cc import cross_compiler

    return cross_compiler(cxx)


def set_runtime_threads(threads: int) -> None:
    """TVM's thread pool reads TVM_NUM_THREADS when it starts; without it, it uses half the hardware
    threads (1 on a 2-vCPU machine). Must happen before the first parallel function runs."""
    os.environ[THREADS_ENV] = str(threads)


def check_local_arch(artifact: Artifact) -> None:
    """Refuse to load an artifact built for another CPU architecture than this machine's."""
    from ...targets.host import detect_host

    built = artifact.manifest.target.arch
    here = detect_host().arch
    if built != here:
        raise BackendUnavailable(
            f"{artifact.path}: this artifact is {built} code for {artifact.manifest.target.name} and cannot run on this "
            f"{here} machine; run it on the board with --device rpc://HOST:PORT (a TVM RPC server on the board)"
        )


def outputs_by_name(result: object, names: list[str]) -> dict[str, np.ndarray]:
    """The VM's result (one tensor or a tuple of them) as numpy arrays by output name."""
    items = list(result) if not hasattr(result, "numpy") else [result]  # type: ignore[call-overload]
    if len(items) != len(names):
        raise ArtifactError(f"the TVM module returned {len(items)} outputs, the artifact lists {len(names)}")
    return {name: item.numpy() for name, item in zip(names, items)}  # type: ignore[attr-defined]
