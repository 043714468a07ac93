"""Run an onnxruntime artifact on this machine's CPU."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from ...targets.host import local_threads
from ..base import LayerTime, Runner
from .compile import MODEL_FILE

if TYPE_CHECKING:
    from ...artifact import Artifact

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(level: str, threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = _LEVELS[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


class OnnxRuntimeRunner(Runner):
    def __init__(self, artifact: Artifact, *, profile_layers: bool = False):
        super().__init__(artifact)
        opts = artifact.manifest.options
        threads = opts.get("intra_op_threads") or local_threads(artifact.manifest.target.cores)
        self._so = session_options(str(opts.get("graph_optimization_level", "all")), int(threads))
        self._profile_dir: tempfile.TemporaryDirectory[str] | None = None
        if profile_layers:
            self._profile_dir = tempfile.TemporaryDirectory(prefix="edgecc-ort-profile-")
            self._so.enable_profiling = True
            self._so.profile_file_prefix = str(Path(self._profile_dir.name) / "ort")
        self._session = ort.InferenceSession(
            str(artifact.file(MODEL_FILE)), sess_options=self._so, providers=["CPUExecutionProvider"]
        )
        self._output_names = [o.name for o in self._session.get_outputs()]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self._session.run(self._output_names, feeds)))

    def layer_profile(self, feeds: dict[str, np.ndarray], runs: int) -> list[LayerTime] | None:
        if self._profile_dir is None:
            return None
        for _ in range(runs):
            self._run(feeds)
        trace = self._session.end_profiling()
        return parse_ort_trace(Path(trace), runs)

    def close(self) -> None:
        if self._profile_dir is not None:
            self._profile_dir.cleanup()
            self._profile_dir = None


def parse_ort_trace(path: Path, runs: int) -> list[LayerTime]:
    """Per-node kernel times from onnxruntime's Chrome-trace profile, averaged over ``runs`` (ms)."""
    events = json.loads(path.read_text(encoding="utf-8"))
    totals: dict[str, list] = {}
    for ev in events:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        node = ev["name"][: -len("_kernel_time")]
        entry = totals.setdefault(node, [ev.get("args", {}).get("op_name", ""), 0.0, ev.get("args", {}).get("provider", "")])
        entry[1] += ev["dur"] / 1000.0
    layers = [LayerTime(name, op, total / runs, provider) for name, (op, total, provider) in totals.items()]
    return sorted(layers, key=lambda l: l.time_ms, reverse=True)
