"""Run a TensorRT engine on this machine's GPU: device buffers, execute_async_v3, CUDA-event timing,
per-layer times through TensorRT's IProfiler.

Memory and streams come from polygraphy's CUDA wrapper (ctypes on libcudart); CUDA events through
the same library handle. Before anything is deserialised, the engine's manifest is checked against
the GPU and TensorRT here (a mismatched engine is refused, never loaded).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np

from ...errors import ArtifactError
from ..base import LayerTime, Runner, unavailable
from .device import current_gpu, probe_cuda
from .engine import ENGINE_FILE, check_engine_matches, read_engine_info

if TYPE_CHECKING:
    from ...artifact import Artifact


class CudaEvent:
    """A CUDA event (cudaEventCreate/Record/ElapsedTime) through polygraphy's libcudart handle."""

    def __init__(self) -> None:
        from polygraphy import cuda

        self._cuda = cuda.wrapper()
        self.ptr = ctypes.c_void_p()
        self._cuda.check(self._cuda.handle.cudaEventCreate(ctypes.byref(self.ptr)))

    def record(self, stream_ptr: int) -> None:
        self._cuda.check(self._cuda.handle.cudaEventRecord(self.ptr, ctypes.c_void_p(stream_ptr)))

    def elapsed_ms_since(self, start: CudaEvent) -> float:
        """Milliseconds between ``start`` and this event (waits for this event)."""
        self._cuda.check(self._cuda.handle.cudaEventSynchronize(self.ptr))
        ms = ctypes.c_float()
        self._cuda.check(self._cuda.handle.cudaEventElapsedTime(ctypes.byref(ms), start.ptr, self.ptr))
        return float(ms.value)

    def destroy(self) -> None:
        if self.ptr:
            self._cuda.handle.cudaEventDestroy(self.ptr)
            self.ptr = ctypes.c_void_p()


def make_profiler(trt):  # noqa: ANN001
    """A tensorrt.IProfiler summing each layer's time over the runs it sees."""

    class SummingProfiler(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.totals: dict[str, float] = {}

        def report_layer_time(self, layer_name, ms):  # noqa: ANN001
            self.totals[layer_name] = self.totals.get(layer_name, 0.0) + float(ms)

    return SummingProfiler()


def layer_types(engine_information: str) -> dict[str, str]:
    """Layer name -> TensorRT layer type from the engine inspector's JSON (engines built with DETAILED
    profiling verbosity list each layer as {"Name": ..., "LayerType": ...}); {} when it says less."""
    import json

    try:
        data = json.loads(engine_information)
    except ValueError:
        return {}
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    return {str(l["Name"]): str(l.get("LayerType", "")) for l in layers if isinstance(l, dict) and "Name" in l}


class TensorRtRunner(Runner):
    def __init__(self, artifact: Artifact, *, profile_layers: bool = False):
        super().__init__(artifact)
        import tensorrt as trt
        from polygraphy import cuda

        from .compile import make_logger

        info = read_engine_info(artifact.path)
        gpu = current_gpu()
        if gpu is None:
            raise unavailable("tensorrt", f"no CUDA device here ({probe_cuda().describe()})")
        check_engine_matches(info, gpu, trt.__version__, probe_cuda().driver_version)
        self._trt = trt
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(artifact.file(ENGINE_FILE).read_bytes())
        if self.engine is None:
            detail = "; ".join(self._logger.errors()[-2:]) or "no detail from TensorRT"
            raise ArtifactError(f"{artifact.path}: TensorRT cannot deserialise {ENGINE_FILE}: {detail}; recompile")
        self.context = self.engine.create_execution_context()
        self._profiler = None
        if profile_layers:
            self._profiler = make_profiler(trt)
            self.context.profiler = self._profiler
        self.stream = cuda.Stream()
        self._device: dict[str, object] = {}
        # numpy dtypes kept here: DeviceArray.dtype is deprecated in polygraphy and warns on every read
        self._dtypes: dict[str, np.dtype] = {}
        self._host_out: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            self.context.set_input_shape(spec.name, tuple(spec.shape))
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            buf = cuda.DeviceArray(shape=shape, dtype=dtype)
            self._device[name] = buf
            self._dtypes[name] = dtype
            if not self.context.set_tensor_address(name, buf.ptr):
                raise ArtifactError(f"{artifact.path}: TensorRT refused the buffer for tensor {name}")
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                self._host_out[name] = np.empty(shape, dtype=dtype)

    def _enqueue(self, feeds: dict[str, np.ndarray]) -> None:
        self._copy_inputs(feeds)
        if not self.context.execute_async_v3(self.stream.ptr):
            raise RuntimeError("TensorRT execute_async_v3 failed: " + "; ".join(self._logger.errors()[-2:]))

    def _copy_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        # The host arrays must outlive the asynchronous copies: kept until the next call.
        self._staged = [np.ascontiguousarray(feeds[s.name], dtype=self._dtypes[s.name]) for s in self.inputs]
        for spec, arr in zip(self.inputs, self._staged):
            self._device[spec.name].copy_from(arr, self.stream)  # type: ignore[attr-defined]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._enqueue(feeds)
        for name, host in self._host_out.items():
            self._device[name].copy_to(host, self.stream)  # type: ignore[attr-defined]
        self.stream.synchronize()
        wanted = {s.name: s.dtype for s in self.outputs}
        return {name: host.astype(wanted[name], copy=True) for name, host in self._host_out.items() if name in wanted}

    def device_times_ms(self, feeds: dict[str, np.ndarray], warmup: int, runs: int) -> list[float]:
        """Per-run GPU time of the engine alone (input copies before, output copies not included), from
        CUDA events recorded around execute_async_v3 on the runner's stream (ms)."""
        for _ in range(warmup):
            self._run(feeds)
        start, end = CudaEvent(), CudaEvent()
        times = []
        try:
            for _ in range(runs):
                self._copy_inputs(feeds)
                start.record(self.stream.ptr)
                if not self.context.execute_async_v3(self.stream.ptr):
                    raise RuntimeError("TensorRT execute_async_v3 failed")
                end.record(self.stream.ptr)
                times.append(end.elapsed_ms_since(start))
        finally:
            start.destroy()
            end.destroy()
        return times

    def layer_profile(self, feeds: dict[str, np.ndarray], runs: int) -> list[LayerTime] | None:
        if self._profiler is None:
            return None
        self._run(feeds)  # first run pays one-off costs: not counted
        self._profiler.totals.clear()
        for _ in range(runs):
            self._run(feeds)
        types: dict[str, str] = {}
        try:
            inspector = self.engine.create_engine_inspector()
            types = layer_types(inspector.get_engine_information(self._trt.LayerInformationFormat.JSON))
        except (AttributeError, RuntimeError):  # an older TensorRT without the inspector: names only
            pass
        layers = [LayerTime(name, types.get(name, ""), total / runs, "tensorrt") for name, total in self._profiler.totals.items()]
        return sorted(layers, key=lambda l: l.time_ms, reverse=True)

    def close(self) -> None:
        for buf in self._device.values():
            buf.free()  # type: ignore[attr-defined]
        self._device = {}
        if getattr(self, "stream", None) is not None:
            self.stream.free()
            self.stream = None
        self.context = None
        self.engine = None
        self._runtime = None
