"""Apache TVM: the Relax ONNX frontend, llvm code for x86 and aarch64 (cross-compiled here), schedules
from a MetaSchedule tuning database, run through the Relax VM locally or on a board over TVM RPC.

TVM in one place: options.py (the options model), library.py (the shared library: file, linker, loading,
outputs), lowering.py (ONNX -> Relax -> executable), compile.py (the Compiler), run.py (the Runner here),
rpc.py (the Runner on a board over TVM RPC), tune.py (the Tuner: MetaSchedule) and database.py (the
lasting tuning database). Imports go one way: options and library at the bottom; lowering, database,
run and rpc on them; tune on those; compile on tune; this module on top (scripts/import_cycles.py).

``tvm`` is imported inside functions only, so that this module imports without it and the backend
reports itself unavailable with the install command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import Availability, Backend, Compiler, Runner, Tuner, op_id
from .options import TvmOptions
from .settings import TvmTargetSettings

if TYPE_CHECKING:
    from ...artifact import Artifact
    from ...graph.io import PreparedModel
    from ...remote.device import RpcDevice
    from ...targets import Target

# Ops the frontend handles outside its converter table.
_DIRECT_OPS = frozenset({"If", "Constant"})


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

    def open_rpc_runner(self, artifact: Artifact, device: RpcDevice, *, timeout_s: float = 1800.0) -> Runner:
        """Run ``artifact`` on the board at ``device`` (rpc://host:port[/key]) over TVM RPC; the session
        ends after ``timeout_s``."""
        from .rpc import RpcRunner

        return RpcRunner(artifact, device, timeout_s=timeout_s)

    def tuner(self) -> Tuner:
        from .tune import TvmTuner

        return TvmTuner()


__all__ = ["TvmBackend", "TvmOptions"]
