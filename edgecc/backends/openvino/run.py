"""Run an OpenVINO artifact on this machine: compile the IR for the device, then infer."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from ...cache import cache_dir
from ...errors import UnsupportedError
from ...targets.host import local_threads
from ..base import LayerTime, Runner, unavailable
from .compile import MODEL_FILE

if TYPE_CHECKING:
    from ...artifact import Artifact

# Manifest precision -> the ov.Type name INFERENCE_PRECISION_HINT takes. Always set: on CPUs with
# BF16 OpenVINO otherwise computes in bf16 even when fp32 was asked for.
# INT8 artifacts carry their quantisation in the model (QDQ or NNCF's FakeQuantize); the ops left in
# floating point run in f32.
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


class OpenVinoRunner(Runner):
    def __init__(self, artifact: Artifact, *, profile_layers: bool = False):
        super().__init__(artifact)
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        opts = artifact.manifest.options
        precision = artifact.manifest.precision
        if precision not in _INFERENCE_PRECISION:
            raise UnsupportedError(f"{artifact.path}: the openvino runner does not run {precision} artifacts")
        self.device = str(opts.get("device") or "CPU")
        self._core = ov.Core()
        _check_device(self._core, self.device)
        if opts.get("cache", True):
            self._core.set_property({props.cache_dir(): str(cache_dir("openvino"))})
        config: dict[str, object] = {
            hints.inference_precision(): getattr(ov.Type, _INFERENCE_PRECISION[precision]),
            hints.performance_mode(): getattr(hints.PerformanceMode, str(opts.get("performance_hint") or "LATENCY")),
            props.enable_profiling(): profile_layers,
        }
        if opts.get("num_streams"):
            config[props.num_streams()] = int(opts["num_streams"])  # type: ignore[arg-type]
        #: CPU threads used here: the manifest's (the target's cores by default), capped at this machine's
        self.threads: int | None = None
        if self.device == "CPU":
            self.threads = local_threads(int(opts.get("inference_num_threads") or artifact.manifest.target.cores))  # type: ignore[arg-type]
            config[props.inference_num_threads()] = self.threads
        # Compiled from the read model, not from the path: with a path, OpenVINO's cache key ignores
        # model.bin, so an artifact rebuilt in place with new weights would load the stale compiled model.
        model = self._core.read_model(str(artifact.file(MODEL_FILE)))
        self.compiled = self._core.compile_model(model, self.device, config)
        self._profiling = profile_layers
        self._inputs = [(s.name, self.compiled.input(s.name)) for s in self.inputs]
        self._outputs = [(s.name, self.compiled.output(s.name)) for s in self.outputs]
        self._request = self.compiled.create_infer_request()

    @property
    def loaded_from_cache(self) -> bool:
        """Whether the compiled model came from the compiled-model cache rather than a compile."""
        import openvino.properties as props

        return bool(self.compiled.get_property(props.loaded_from_cache()))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._request.infer({port: feeds[name] for name, port in self._inputs}, share_inputs=False, share_outputs=False)
        return {name: result[port] for name, port in self._outputs}

    def layer_profile(self, feeds: dict[str, np.ndarray], runs: int) -> list[LayerTime] | None:
        if not self._profiling:
            return None
        import openvino as ov

        not_run = ov.ProfilingInfo.Status.NOT_RUN
        self._run(feeds)  # the first inference of a compiled model pays one-off costs: not a layer's time
        totals: dict[str, list] = {}
        for _ in range(runs):
            self._run(feeds)
            # get_profiling_info reports the last inference only: collect it after each run.
            for info in self._request.get_profiling_info():
                ms = info.real_time.total_seconds() * 1000.0
                if info.status == not_run or ms <= 0.0:
                    continue
                entry = totals.setdefault(info.node_name, [info.node_type, 0.0, info.exec_type])
                entry[1] += ms
        layers = [LayerTime(name, op, total / runs, exec_type) for name, (op, total, exec_type) in totals.items()]
        return sorted(layers, key=lambda l: l.time_ms, reverse=True)

    def runtime_precisions(self) -> dict[str, int]:
        """How many ops of the compiled model run in each precision ("f32", "bf16", ...)."""
        counts: Counter[str] = Counter()
        for op in self.compiled.get_runtime_model().get_ops():
            rt = op.get_rt_info()
            if "runtimePrecision" in rt:
                counts[rt["runtimePrecision"].astype(str)] += 1
        return dict(counts)

    def close(self) -> None:
        self._request = None
        self.compiled = None
        self._core = None


def _check_device(core: object, device: str) -> None:
    """Raise BackendUnavailable when ``device`` (CPU, GPU, NPU) is not present here."""
    if device == "AUTO":
        return
    present = list(core.available_devices)  # type: ignore[attr-defined]
    if not any(d == device or d.startswith(device + ".") for d in present):
        raise unavailable("openvino", f"device {device} is not present here (devices: {', '.join(present) or 'none'})")
