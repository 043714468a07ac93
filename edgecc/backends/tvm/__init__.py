"""Apache TVM: the Relax ONNX frontend, llvm code for x86 and aarch64 (cross-compiled here), schedules
from a MetaSchedule tuning database, run through the Relax VM locally or on a board over TVM RPC.

``tvm`` is imported inside functions only, so that this module imports without it and the backend
reports itself unavailable with the install command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..base import Availability, Backend, BackendOptions, Compiler, Runner, op_id
from .settings import TvmTargetSettings

if TYPE_CHECKING:
    from ...artifact import Artifact
    from ...graph.io import PreparedModel
    from ...targets import Target

# Ops the frontend handles outside its converter table.
_DIRECT_OPS = frozenset({"If", "Constant"})


class TvmOptions(BackendOptions):
    schedule: Literal["auto", "measured", "sampled", "naive"] = Field(
        "auto",
        description="schedule for functions the database does not cover: 'measured' times a few schedules drawn "
        "from MetaSchedule's default rules and the plain loops here, keeping the fastest (this machine's "
        "architecture only); 'sampled' keeps the first draw, unmeasured; 'naive' keeps TVM's plain loops; "
        "'auto' (default): measured when the target is this machine's architecture, else sampled",
    )
    tuned: bool = Field(False, description="apply the tuning database's records for this target (edgecc tune)")
    trials: int = Field(
        0, ge=0, description="tune this many MetaSchedule trials into the database first, as edgecc tune does (tasks "
        "the database holds cost nothing), then compile with its records; 0 (default): no tuning. Lets compare and "
        "search try trial budgets: --vary tvm.trials=0,64,256",
    )
    db: str | None = Field(None, description="tuning database directory; default: the user cache (tvm/tuning)")
    num_threads: int | None = Field(
        None, ge=1, description="runtime threads; default: the target's cores, capped at this machine's when run"
    )


class TvmBackend(Backend):
    name = "tvm"
    settings_model = TvmTargetSettings
    description = "Apache TVM (Relax): llvm code for x86 and ARM CPUs, MetaSchedule auto-tuning, TVM RPC boards"
    extra = "tvm"
    options_model = TvmOptions

    def availability(self) -> Availability:
        try:
            import tvm
        except ImportError as e:
            return Availability(False, f"tvm cannot be imported ({e})")
        except Exception as e:  # a broken native library raises other errors at import
            return Availability(False, f"tvm fails at import ({type(e).__name__}: {e})")
        versions = {"tvm": tvm.__version__}
        try:
            import tvm_ffi

            versions["tvm-ffi"] = getattr(tvm_ffi, "__version__", "?")
        except ImportError:
            pass
        if tvm.support.libinfo().get("USE_LLVM", "OFF") in ("OFF", ""):
            return Availability(False, "this tvm build has no LLVM code generator", versions)
        return Availability(True, "llvm targets: x86_64, aarch64 (cross-compiled)", versions)

    def precisions(self, target: Target) -> tuple[str, ...]:
        return ("fp32",)

    def target_support(self, target: Target) -> str | None:
        why = super().target_support(target)
        if why is None and target.tvm is not None and target.tvm.kind != "llvm":
            return f"target {target.name}: edgecc's TVM backend builds llvm (CPU) code only, not {target.tvm.kind}"
        return why

    def unsupported_ops(self, model: PreparedModel) -> list[str]:
        """Ops with no converter in TVM's Relax ONNX frontend (the table it checks before importing)."""
        self.require()
        from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

        known = set(_get_convert_map()) | _DIRECT_OPS
        missing = set()
        for node in model.model.graph.all_nodes():
            if node.op_type not in known:
                missing.add(op_id(node.domain, node.op_type))
        return sorted(missing)

    def compiler(self) -> Compiler:
        from .compile import TvmCompiler

        return TvmCompiler()

    def open_runner(self, artifact: Artifact, *, profile_layers: bool = False) -> Runner:
        from .run import TvmRunner

        return TvmRunner(artifact, profile_layers=profile_layers)

    def open_remote_runner(self, artifact: Artifact, device: str, *, timeout_s: float = 1800.0) -> Runner:
        """Run ``artifact`` on the board at ``device`` (rpc://host:port[/key]) over TVM RPC; the session
        ends after ``timeout_s``."""
        from ...remote.rpc import RpcRunner

        return RpcRunner(artifact, device, timeout_s=timeout_s)


def library_path(artifact_dir: Path) -> Path:
    from .compile import LIBRARY_FILE

    return artifact_dir / LIBRARY_FILE


def check_local_arch(artifact: Artifact) -> None:
    """Refuse to load an artifact built for another CPU architecture than this machine's."""
    from ...errors import BackendUnavailable
    from ...targets.host import detect_host

    built = artifact.manifest.target.arch
    here = detect_host().arch
    if built != here:
        raise BackendUnavailable(
            f"{artifact.path}: this artifact is {built} code for {artifact.manifest.target.name} and cannot run on this "
            f"{here} machine; run it on the board with --device rpc://HOST:PORT (a TVM RPC server on the board)"
        )


__all__ = ["TvmBackend", "TvmOptions", "check_local_arch"]
