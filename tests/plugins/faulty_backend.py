"""A test-only backend that really fails: registered through the ``edgecc.backends`` entry-point
group by tests, it wraps onnxruntime and, depending on its ``fault`` option, aborts the process,
hangs, or runs fine. It exists to prove that one row's crash does not take a comparison down."""

from __future__ import annotations

import os
import time
from typing import Literal

from edgecc.backends.base import BackendOptions
from edgecc.backends.onnxruntime import OnnxRuntimeBackend
from edgecc.backends.onnxruntime.compile import OnnxRuntimeCompiler
from edgecc.backends.onnxruntime.run import OnnxRuntimeRunner


class FaultyOptions(BackendOptions):
    fault: Literal["none", "abort", "hang"] = "abort"


class FaultyCompiler(OnnxRuntimeCompiler):
    def compile(self, model, target, precision, options, out_dir):
        super().compile(model, target, precision, options, out_dir)
        from edgecc.backends.base import CompileOutput

        return CompileOutput(options=options)


class FaultyRunner(OnnxRuntimeRunner):
    def _run(self, feeds):
        fault = self.artifact.manifest.options.get("fault")
        if fault == "abort":
            os.abort()
        if fault == "hang":
            time.sleep(3600)
        return super()._run(feeds)


class FaultyBackend(OnnxRuntimeBackend):
    name = "faulty"
    description = "test-only: onnxruntime that aborts or hangs on request"
    options_model = FaultyOptions

    def compiler(self):
        return FaultyCompiler()

    def open_runner(self, artifact, *, profile_layers=False):
        return FaultyRunner(artifact, profile_layers=profile_layers)
