"""onnxruntime: the reference every other backend is checked against, and the FP32 baseline."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..base import Availability, Backend, BackendOptions, Compiler, Runner, op_id
from .settings import OnnxRuntimeSettings

if TYPE_CHECKING:
    from ...artifact import Artifact
    from ...graph.io import PreparedModel
    from ...targets import Target


class OnnxRuntimeOptions(BackendOptions):
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime's graph optimisation level when the session is created"
    )
    intra_op_threads: int | None = Field(
        None, ge=1, description="threads per operator; default: the target's cores, capped at this machine's"
    )


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    settings_model = OnnxRuntimeSettings
    description = "ONNX Runtime on the CPU: the reference and the FP32 baseline"
    extra = None  # a core dependency of edgecc
    options_model = OnnxRuntimeOptions

    def availability(self) -> Availability:
        try:
            import onnxruntime
        except ImportError as e:
            return Availability(False, f"onnxruntime cannot be imported ({e})")
        return Availability(True, versions={"onnxruntime": onnxruntime.__version__})

    @property
    def install_command(self) -> str:
        return 'pip install "edgecc"'

    def precisions(self, target: Target) -> tuple[str, ...]:
        return ("fp32",)

    def calibrated_precisions(self, target: Target) -> tuple[str, ...]:
        return ("int8",)  # QDQ models run with onnxruntime's INT8 kernels

    def unsupported_ops(self, model: PreparedModel) -> list[str]:
        kernels = _cpu_kernels()
        local_functions = {f.domain for f in model.model.functions.values()}
        missing = set()
        for node in model.model.graph.all_nodes():
            domain = "" if node.domain == "ai.onnx" else node.domain
            if domain == "" and node.op_type == "Constant":
                continue  # no kernel: onnxruntime turns Constant nodes into initializers when it loads the model
            if domain in local_functions:
                continue  # model-local functions are inlined by onnxruntime
            version = model.model.opset_imports.get(domain, model.model.opset_imports.get("ai.onnx", 0))
            ranges = kernels.get((domain, node.op_type), ())
            if any(lo <= version <= hi for lo, hi in ranges):
                continue
            if _has_function_body(node.op_type, version, domain):
                continue  # onnxruntime expands ops that onnx defines as functions
            missing.add(op_id(domain, node.op_type))
        return sorted(missing)

    def compiler(self) -> Compiler:
        from .compile import OnnxRuntimeCompiler

        return OnnxRuntimeCompiler()

    def open_runner(self, artifact: Artifact, *, profile_layers: bool = False) -> Runner:
        from .run import OnnxRuntimeRunner

        return OnnxRuntimeRunner(artifact, profile_layers=profile_layers)


@functools.cache
def _cpu_kernels() -> dict[tuple[str, str], tuple[tuple[int, int], ...]]:
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    table: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for k in C.get_all_opkernel_def():
        if k.provider == "CPUExecutionProvider":
            table.setdefault((k.domain, k.op_name), []).append(tuple(k.version_range))
    return {key: tuple(v) for key, v in table.items()}


def _has_function_body(op_type: str, version: int, domain: str) -> bool:
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, version, domain)
    except onnx.defs.SchemaError:
        return False
    return schema.has_function or schema.has_context_dependent_function
