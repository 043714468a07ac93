"""OpenVINO: Intel's runtime for x86 CPUs (FP32, BF16 where the CPU has it), Intel GPUs and NPUs.

``openvino`` is imported inside functions only, so that this module imports without it and the
backend reports itself unavailable with the install command.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ...errors import UnsupportedError
from ..base import Availability, Backend, BackendOptions, Compiler, Runner, op_id
from .settings import OpenVinoSettings

if TYPE_CHECKING:
    from ...artifact import Artifact
    from ...graph.io import PreparedModel
    from ...targets import Target

Device = Literal["CPU", "GPU", "NPU", "AUTO"]
PerformanceHint = Literal["LATENCY", "THROUGHPUT"]

# OpenVINO's OPTIMIZATION_CAPABILITIES names for the precisions edgecc serves without calibration.
_CAPABILITY_PRECISIONS = {"FP32": "fp32", "BF16": "bf16", "FP16": "fp16"}
_ISA_BF16 = frozenset({"avx512_bf16", "amx_bf16"})
_ISA_FP16 = frozenset({"avx512_fp16", "amx_fp16"})


class OpenVinoOptions(BackendOptions):
    device: Device | None = Field(None, description="OpenVINO device; default: the target's openvino.device")
    performance_hint: PerformanceHint | None = Field(
        None, description="OpenVINO's PERFORMANCE_HINT; default: the target's openvino.performance_hint"
    )
    num_streams: int | None = Field(None, ge=1, description="NUM_STREAMS; default: what the performance hint picks")
    inference_num_threads: int | None = Field(
        None, ge=1, description="CPU threads; default: the target's cores, capped at this machine's when run"
    )
    cache: bool = Field(True, description="keep compiled models in the user cache directory (openvino/)")
    int8_quantizer: Literal["qdq", "nncf"] = Field(
        "qdq", description="INT8 from edgecc's QDQ model (qdq), or from NNCF's nncf.quantize on the FP32 model (nncf)",
        json_schema_extra={"precisions": ["int8"]},
    )


class OpenVinoBackend(Backend):
    name = "openvino"
    settings_model = OpenVinoSettings
    description = "OpenVINO on Intel CPUs (FP32; BF16 on CPUs with AVX512-BF16 or AMX), GPUs and NPUs"
    extra = "openvino"
    options_model = OpenVinoOptions

    def availability(self) -> Availability:
        try:
            import openvino
        except ImportError as e:
            return Availability(False, f"openvino cannot be imported ({e})")
        versions = {"openvino": openvino.__version__}
        try:
            devices = _devices()
        except RuntimeError as e:  # the package imports but its runtime cannot start
            return Availability(False, f"openvino {openvino.__version__} cannot create a Core ({_first_line(e)})", versions)
        if not devices:
            return Availability(False, "openvino finds no device here", versions)
        return Availability(True, f"devices: {', '.join(devices)}", versions)

    def precisions(self, target: Target) -> tuple[str, ...]:
        device = target.openvino.device if target.openvino is not None else "CPU"
        if device == "NPU":
            return ("fp16",)
        if device == "GPU":
            return ("fp32", "fp16")
        if target.name == "host" and device == "CPU":
            found = _host_precisions(device)
            if found is not None:
                return found
        isa = set(getattr(target, "isa", ()))
        return ("fp32",) + (("bf16",) if isa & _ISA_BF16 else ()) + (("fp16",) if isa & _ISA_FP16 else ())

    def calibrated_precisions(self, target: Target) -> tuple[str, ...]:
        return ("int8",)  # QDQ models (or NNCF's) run with INT8 kernels on every OpenVINO device

    def quantizes_itself(self, options: BackendOptions) -> bool:
        return isinstance(options, OpenVinoOptions) and options.int8_quantizer == "nncf"

    def unsupported_ops(self, model: PreparedModel) -> list[str]:
        """Ops OpenVINO's ONNX frontend leaves as framework nodes (it has no conversion for them)."""
        self.require()
        from openvino.frontend import FrontEndManager

        from ...graph.io import save_model

        frontend = FrontEndManager().load_by_framework("onnx")
        with tempfile.TemporaryDirectory(prefix="edgecc-ov-ops-") as tmp:
            path = save_model(model.model, Path(tmp) / "model.onnx")
            # The converted graph's framework nodes read their attributes from input_model: keep it
            # alive until the walk is done.
            try:
                input_model = frontend.load(str(path))
                converted = frontend.convert_partially(input_model)
            except RuntimeError as e:
                raise UnsupportedError(f"{model.source}: OpenVINO's ONNX frontend cannot read it: {_first_line(e)}") from None
            missing = _framework_ops(converted)
            del converted, input_model
        return sorted(missing)

    def compiler(self) -> Compiler:
        from .compile import OpenVinoCompiler

        return OpenVinoCompiler()

    def open_runner(self, artifact: Artifact, *, profile_layers: bool = False) -> Runner:
        from .run import OpenVinoRunner

        return OpenVinoRunner(artifact, profile_layers=profile_layers)


def _framework_ops(model: object) -> set[str]:
    """'domain::Op' of every framework node in ``model`` (an ov.Model) and its If/Loop bodies."""
    found: set[str] = set()
    for op in model.get_ordered_ops():  # type: ignore[attr-defined]
        kind = op.get_type_name()
        if kind.endswith("FrameworkNode") or kind == "NotSupportedONNXNode":
            attrs = op.get_attributes()
            found.add(op_id(str(attrs.get("ONNX_META_domain", "")), str(attrs.get("ONNX_META_type", kind))))
        for body in _bodies(op):
            found |= _framework_ops(body)
    return found


def _bodies(op: object) -> list[object]:
    if hasattr(op, "get_then_body"):
        return [op.get_then_body(), op.get_else_body()]
    if hasattr(op, "get_function"):  # Loop, TensorIterator: one body
        return [op.get_function(0)]
    return []


@functools.cache
def _devices() -> tuple[str, ...]:
    import openvino as ov

    return tuple(ov.Core().available_devices)


def _host_precisions(device: str) -> tuple[str, ...] | None:
    """What OpenVINO says ``device`` here can compute in, or None when openvino cannot say."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return None
    return _capability_precisions(device)


@functools.cache
def _capability_precisions(device: str) -> tuple[str, ...] | None:
    import openvino as ov
    import openvino.properties.device as device_props

    try:
        capabilities = set(ov.Core().get_property(device, device_props.capabilities()))
    except RuntimeError:  # the device is not present: decide from the ISA instead
        return None
    found = {_CAPABILITY_PRECISIONS[c] for c in capabilities if c in _CAPABILITY_PRECISIONS} | {"fp32"}
    return tuple(p for p in ("fp32", "bf16", "fp16") if p in found)


def _first_line(e: BaseException) -> str:
    """The first informative line of an OpenVINO error (its first line only names a source file)."""
    lines = [l.strip() for l in str(e).splitlines() if l.strip() and not l.startswith("Exception from ")]
    return lines[0] if lines else type(e).__name__
