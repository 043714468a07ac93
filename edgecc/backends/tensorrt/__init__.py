"""TensorRT: NVIDIA's compiler for Jetson boards and NVIDIA GPUs. Engines are built on the device that
runs them (they do not move between GPU models or TensorRT versions).

Nothing here imports ``tensorrt`` at module level. Availability is decided in order: is the full
tensorrt package (builder + ONNX parser) installed, not only the lean runtime; does the driver report
a CUDA device (asked in a child process, see device.py); only then is tensorrt imported. TensorRT's
runtime segfaults when it deserialises an engine without a CUDA device, so it is never reached first.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..base import Availability, Backend, Compiler, Runner, op_id, unavailable
from .settings import TensorRtSettings
from .config import ShapeRange, TensorRtOptions, compute_capability
from .device import CudaProbe, probe_cuda
from .ops import ESTIMATE_LABEL, estimate_unsupported_ops, opset_outside_range

if TYPE_CHECKING:
    from ...artifact import Artifact
    from ...graph.io import PreparedModel
    from ...targets import Target

__all__ = ["TensorRtBackend", "TensorRtOptions", "ShapeRange", "tensorrt_availability", "INSTALL_HINT"]

INSTALL_HINT = (
    "on a Jetson, TensorRT comes with JetPack (sudo apt install nvidia-jetpack, or python3-libnvinfer), then "
    "make the venv with --system-site-packages and pip install \"edgecc[tensorrt]\"; on a workstation with an "
    "NVIDIA GPU and driver, pip install \"edgecc[tensorrt]\" with NVIDIA's package index reachable "
    "(PyPI's tensorrt fetches its wheels from https://pypi.nvidia.com)"
)
NO_GPU_HINT = "run edgecc on the Jetson or GPU machine itself, or reach a board with --device ssh://user@host"
LEAN_PACKAGES = ("tensorrt_lean", "tensorrt_dispatch")


def _find_spec(name: str) -> object | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _import_tensorrt() -> object:
    import tensorrt

    return tensorrt


def tensorrt_availability(
    find_spec: Callable[[str], object | None] = _find_spec,
    probe: Callable[[], CudaProbe] = probe_cuda,
    import_tensorrt: Callable[[], object] = _import_tensorrt,
) -> Availability:
    """Whether TensorRT can build and run here, and if not, why; never imports tensorrt before a
    CUDA device is confirmed. The callables are parameters so each branch can be exercised."""
    if find_spec("tensorrt") is None:
        lean = [p for p in LEAN_PACKAGES if find_spec(p) is not None]
        if lean:
            return Availability(False, f"only TensorRT's runtime-only package ({', '.join(lean)}) is installed: it cannot "
                                       "build engines; edgecc needs the full tensorrt package (builder and ONNX parser)")
        return Availability(False, "tensorrt is not installed")
    cuda = probe()
    if not cuda.devices:
        return Availability(False, f"no CUDA device here ({cuda.describe()}); TensorRT needs an NVIDIA GPU")
    try:
        trt = import_tensorrt()
    except Exception as e:  # noqa: BLE001 - a broken install (missing libnvinfer...) is a reason, not a crash
        return Availability(False, f"tensorrt cannot be imported ({type(e).__name__}: {e})")
    version = str(getattr(trt, "__version__", "unknown"))
    missing = [n for n in ("Builder", "OnnxParser") if not hasattr(trt, n)]
    if missing:
        return Availability(False, f"tensorrt {version} has no {' or '.join(missing)}: a runtime-only build; "
                                   "edgecc needs the builder and ONNX parser", {"tensorrt": version})
    versions = {"tensorrt": version}
    if cuda.driver_version:
        versions["cuda-driver"] = cuda.driver_version
    return Availability(True, cuda.describe(), versions)


class TensorRtBackend(Backend):
    name = "tensorrt"
    settings_model = TensorRtSettings
    description = "NVIDIA TensorRT on Jetson boards and NVIDIA GPUs (engine built on the device; FP32, FP16, INT8 from QDQ)"
    extra = "tensorrt"
    options_model = TensorRtOptions

    def availability(self) -> Availability:
        return tensorrt_availability()

    @property
    def install_command(self) -> str:
        return INSTALL_HINT

    def require(self) -> None:
        a = self.availability()
        if not a.available:
            hint = NO_GPU_HINT if a.reason.startswith("no CUDA device") else INSTALL_HINT
            raise unavailable(self.name, f"{a.reason}; {hint}")

    def precisions(self, target: Target) -> tuple[str, ...]:
        """fp32 always; fp16 from compute capability 5.3 (fast half precision); int8 from 6.1 (DP4A),
        for models that carry their own quantisation (QDQ)."""
        if target.tensorrt is None:
            return ()
        cc = compute_capability(target.tensorrt.compute_capability)
        return ("fp32",) + (("fp16",) if cc >= (5, 3) else ()) + (("int8",) if cc >= (6, 1) else ())

    def unsupported_ops(self, model: PreparedModel) -> list[str]:
        """With TensorRT here: the ops of the nodes its ONNX parser says it cannot take. Without it: the
        static table's estimate (see ops.py and ``estimated_unsupported_ops``)."""
        if not self.availability().available:
            return estimate_unsupported_ops(model.model)
        return parser_unsupported_ops(model)

    def estimated_unsupported_ops(self, model: PreparedModel) -> tuple[list[str], str]:
        """The static table's answer and the label that says it is an estimate (with the opset caveat)."""
        opset = opset_outside_range(model.model)
        return estimate_unsupported_ops(model.model), ESTIMATE_LABEL + (f"; note: {opset}" if opset else "")

    def compiler(self) -> Compiler:
        self.require()
        from .compile import TensorRtCompiler

        return TensorRtCompiler()

    def open_runner(self, artifact: Artifact, *, profile_layers: bool = False) -> Runner:
        self.require()
        from .run import TensorRtRunner

        return TensorRtRunner(artifact, profile_layers=profile_layers)


def parser_unsupported_ops(model: PreparedModel) -> list[str]:
    """Ask TensorRT's ONNX parser which nodes it supports (supports_model_v2 in TensorRT 10.1+,
    supports_model before) and return the op types of those it does not."""
    import onnx
    import tensorrt as trt

    from ...graph.io import save_model
    from .compile import make_logger

    logger = make_logger(trt)
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix="edgecc-trt-ops-") as tmp:
        path = save_model(model.model, Path(tmp) / "model.onnx")
        data = path.read_bytes()
        nodes = list(onnx.load(str(path), load_external_data=False).graph.node)
        if hasattr(parser, "supports_model_v2"):
            parser.supports_model_v2(data, str(path))
            subgraphs = [(list(parser.get_subgraph_nodes(i)), parser.is_subgraph_supported(i)) for i in range(parser.num_subgraphs)]
        else:
            _, subgraphs = parser.supports_model(data, str(path))
    missing = set()
    for indices, supported in subgraphs:
        if not supported:
            missing |= {op_id(nodes[i].domain, nodes[i].op_type) for i in indices if i < len(nodes)}
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        if hasattr(err, "node_operator") and err.node_operator():
            missing.add(err.node_operator())
    return sorted(missing)
