"""A test-only backend that really fails: registered through the ``edgecc.backends`` entry-point
group by tests, it wraps onnxruntime and, depending on its ``fault`` option, aborts the process,
hangs, allocates without bound, returns wrong outputs, or runs fine. It exists to prove that one row's crash does not take a comparison down."""

from __future__ import annotations

import os
import time
from typing import Literal

from edgecc.backends.base import BackendOptions
from edgecc.backends.onnxruntime import OnnxRuntimeBackend
from edgecc.backends.onnxruntime.run import OnnxRuntimeRunner


class FaultyOptions(BackendOptions):
    fault: Literal["none", "abort", "hang", "wrong", "oom"] = "abort"


class FaultyRunner(OnnxRuntimeRunner):
    def _run(self, feeds):
        fault = self.artifact.manifest.options.get("fault")
        if fault == "abort":
            os.abort()
        if fault == "hang":
            time.sleep(3600)
        if fault == "oom":  # allocate, touching every page, until something stops us
            hog = []
            while True:
                hog.append(b"\x01" * (64 * 2**20))
                time.sleep(0.01)
        outputs = super()._run(feeds)
        if fault == "wrong":
            return {k: v + 1.0 for k, v in outputs.items()}
        return outputs


class FaultyBackend(OnnxRuntimeBackend):
    name = "faulty"
    description = "test-only: onnxruntime that aborts or hangs on request"
    options_model = FaultyOptions
    settings_model = None  # takes no target table, so it serves every target (onnxruntime's needs one)

    def open_runner(self, artifact, *, profile_layers=False):
        return FaultyRunner(artifact, profile_layers=profile_layers)
