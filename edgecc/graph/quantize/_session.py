"""onnxruntime sessions on in-memory models, with intermediate tensors exposed as outputs.

The INT8 accuracy steps (bias correction, per-tensor ranges, mixed precision) measure models on
calibration and evaluation data many times; they share this one way of running a model.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
import onnx_ir as ir

from ...data import Dataset
from ..io import MAX_IR_VERSION, to_proto


def session(model: ir.Model, extra_outputs: list[str] | tuple[str, ...] = ()):
    """An onnxruntime CPU session on ``model`` (basic graph optimisations only, so intermediate tensors
    keep their values) that also returns the tensors named in ``extra_outputs``."""
    import onnxruntime as ort

    proto = to_proto(model)
    if proto.ir_version > MAX_IR_VERSION:
        proto.ir_version = MAX_IR_VERSION
    have = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in extra_outputs if n not in have)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_tensors(model: ir.Model, dataset: Dataset, names: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """For each batch of ``dataset`` (padding rows dropped), the tensors ``names`` of ``model``."""
    sess = session(model, names)
    for feeds, valid in zip(dataset.batches, dataset.valid):
        got = sess.run(names, feeds)
        yield {n: (a[:valid] if a.ndim and a.shape[0] == len(next(iter(feeds.values()))) else a)
               for n, a in zip(names, got)}


def first_output(model: ir.Model) -> str:
    return model.graph.outputs[0].name or ""


def outputs(model: ir.Model, dataset: Dataset, name: str | None = None) -> np.ndarray:
    """``model``'s output ``name`` (default: the first) over ``dataset``, one row per sample."""
    name = name or first_output(model)
    return np.concatenate([t[name] for t in run_tensors(model, dataset, [name])])


def nodes_by_name(model: ir.Model) -> dict[str, ir.Node]:
    return {n.name: n for n in model.graph if n.name}


class CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over a Dataset (each batch once)."""

    def __init__(self, dataset: Dataset):
        self._it = iter(dataset.batches)

    def get_next(self) -> dict | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - not used by static quantisation
        raise NotImplementedError
