"""Run a TVM artifact on this machine's CPU through the Relax VM."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from ...targets.host import local_threads
from ..base import LayerTime, Runner
from .library import LIBRARY_FILE, check_local_arch, outputs_by_name, set_runtime_threads

if TYPE_CHECKING:
    from ...artifact import Artifact


class TvmRunner(Runner):
    def __init__(self, artifact: Artifact, *, profile_layers: bool = False):
        super().__init__(artifact)
        check_local_arch(artifact)
        import tvm
        from tvm import relax

        opts = artifact.manifest.options
        self.threads = local_threads(int(opts.get("num_threads") or artifact.manifest.target.cores))  # type: ignore[arg-type]
        set_runtime_threads(self.threads)
        self._dev = tvm.cpu()
        self._lib = tvm.runtime.load_module(str(artifact.file(LIBRARY_FILE)))
        self._vm = relax.VirtualMachine(self._lib, self._dev)
        self._profiling = profile_layers

    def _args(self, feeds: dict[str, np.ndarray]) -> list[object]:
        import tvm

        return [tvm.runtime.tensor(np.ascontiguousarray(feeds[s.name]), self._dev) for s in self.inputs]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._vm["main"](*self._args(feeds))
        return outputs_by_name(result, [s.name for s in self.outputs])

    def layer_profile(self, feeds: dict[str, np.ndarray], runs: int) -> list[LayerTime] | None:
        if not self._profiling:
            return None
        import time

        import tvm_ffi

        args = self._args(feeds)
        self._vm["main"](*args)  # the first run pays one-off costs (thread pool start)
        totals: dict[str, float] = {}
        started: dict[str, float] = {}

        # The VM calls this before and after every call instruction; kernels run synchronously on the
        # CPU, so the wall time between the two is the kernel's. VM builtins (allocation) are skipped.
        def instrument(func, symbol, before_run, ret_value, *call_args):
            name = str(symbol)
            if not name.startswith("vm.builtin"):
                if before_run:
                    started[name] = time.perf_counter()
                elif name in started:
                    totals[name] = totals.get(name, 0.0) + (time.perf_counter() - started.pop(name)) * 1000.0
            return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

        self._vm.set_instrument(tvm_ffi.convert(instrument))
        try:
            for _ in range(runs):
                self._vm["main"](*args)
        finally:
            self._vm.set_instrument(tvm_ffi.convert(lambda *a: 0))
        layers = [LayerTime(name, _op_of(name), ms / runs, "tvm") for name, ms in totals.items()]
        return sorted(layers, key=lambda l: l.time_ms, reverse=True)

    def close(self) -> None:
        self._vm = None
        self._lib = None


def _op_of(function_name: str) -> str:
    """The leading op of a fused function's name ('fused_conv2d_add_relu' -> 'conv2d')."""
    parts = [p for p in function_name.split("_") if p and p != "fused"]
    if not parts:
        return function_name
    # TVM numbers same-named functions (conv2d, conv2d1, ...); conv1d/2d/3d end in a digit themselves.
    m = re.match(r"^(conv[123]d(?:_transpose)?|[a-z_]*[a-z])\d*$", parts[0])
    return m.group(1) if m else parts[0]
