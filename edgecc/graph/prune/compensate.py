"""Mean compensation: what a removed channel contributed on average is kept, folded into the next layer's bias.

A channel that pruning removes still had a value wherever a layer summed over channels (a dense Conv, a Gemm, a
MatMul by a constant weight). Its weight norm says little about that value: with batch norm folded into the
convolution, a low-norm channel is often a near-constant ``act(bias)``, and removing it shifts every output of
the next layer by ``W[:, c] * value``. Replacing each removed channel by its mean over sample inputs, and
folding ``W[:, c] * mean`` into the bias of the layer that read it, removes that shift (exactly, for a constant
channel; apart from zero-padded borders of a convolution). Means and standard deviations are measured by
onnxruntime on the model before pruning, on real samples (calibration data); without them pruning ranks channels
by weight norms and folds nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from ..io import save_model
from ..rewrite._util import const_array
from .handlers._common import input_at

def reads_channels(node: ir.Node) -> bool:
    """A layer whose outputs sum over its first input's channels with a constant weight, where a removed
    channel's mean can be folded into a bias: dense Conv, Gemm, MatMul by a 2-D constant followed by an Add of a
    constant (its bias)."""
    if node.domain not in ("", "ai.onnx"):
        return False
    w = const_array(input_at(node, 1))
    if w is None:
        return False
    if node.op_type == "Conv":
        return node.attributes.get_int("group", 1) == 1
    if node.op_type == "Gemm":
        return node.attributes.get_int("transA", 0) == 0 and w.ndim == 2
    if node.op_type == "MatMul":
        return w.ndim == 2 and bias_add(node) is not None
    return False


def bias_add(node: ir.Node) -> tuple[ir.Node, int] | None:
    """(the Add, the index of its constant [N] input) when a MatMul's only use is an Add of a bias."""
    uses = list(node.outputs[0].uses())
    if len(uses) != 1 or node.outputs[0].is_graph_output():
        return None
    add, _ = uses[0]
    if add.op_type != "Add" or add.domain not in ("", "ai.onnx"):
        return None
    for i, v in enumerate(add.inputs):
        c = const_array(v)
        if v is not node.outputs[0] and c is not None and c.ndim == 1:
            return add, i
    return None


def channel_stats(model: ir.Model, values: dict[str, int], feeds: list[dict[str, np.ndarray]]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (mean, standard deviation) of the named tensors (name -> channel axis), over ``feeds``."""
    if not values:
        return {}
    import onnxruntime as ort

    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="edgecc-means-") as tmp:
        path = save_model(model, Path(tmp) / "m.onnx")
        proto = onnx.load(str(path), load_external_data=False)
        have = {o.name for o in proto.graph.output}
        proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in values if n not in have)
        onnx.save(proto, str(path))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = list(values)
        for feed in feeds:
            for name, got in zip(names, session.run(names, feed)):
                axis = values[name] % got.ndim
                flat = np.moveaxis(got.astype(np.float64), axis, 0).reshape(got.shape[axis], -1)
                sums[name] = sums.get(name, 0.0) + flat.mean(1)
                squares[name] = squares.get(name, 0.0) + (flat**2).mean(1)
    out = {}
    for n, total in sums.items():
        mean = total / len(feeds)
        out[n] = (mean.astype(np.float32), np.sqrt(np.maximum(squares[n] / len(feeds) - mean**2, 0.0)).astype(np.float32))
    return out


def activation_importance(g, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per atom: how much the layers that sum over it would move if it were replaced by its mean, i.e. the sum
    over those layers of the channel's standard deviation times the norm of the weights that read it."""
    scores = np.zeros(len(g.parent))
    for node in g.model.graph:
        x = node.inputs[0] if node.inputs else None
        if x is None or x.name not in stats or x not in g.maps or not reads_channels(node):
            continue
        w = const_array(node.inputs[1])
        in_axis = {"Conv": 1, "MatMul": 0}.get(node.op_type, 1 if node.attributes.get_int("transB", 0) else 0)
        norms = np.sqrt((np.moveaxis(w.astype(np.float64), in_axis, 0).reshape(w.shape[in_axis], -1) ** 2).sum(1))
        _, std = stats[x.name]
        cmap = g.maps[x]
        if len(cmap) == len(norms) == len(std):
            np.add.at(scores, cmap.atoms, std * norms)
    return scores


def bias_delta(w: np.ndarray, in_axis: int, removed: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """What the ``removed`` input channels of weight ``w`` (read along ``in_axis``; outputs on the other matrix
    axis) added to each output when they held ``mean``: summed over kernel positions."""
    part = np.moveaxis(np.take(w, removed, axis=in_axis).astype(np.float64), in_axis, -1)  # [out, k..., removed]
    return (part * mean[removed].astype(np.float64)).reshape(part.shape[0], -1).sum(1)


def measure(g, feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Measure the model of dependency graph ``g`` (before pruning) on ``feeds``: sets the "activation" importance
    of every atom and returns the channel means that materialise folds into biases."""
    values = {n.inputs[0].name: g.maps[n.inputs[0]].axis for n in g.model.graph
              if n.inputs and n.inputs[0] in g.maps and reads_channels(n)}
    stats = channel_stats(g.model, values, feeds)
    g.importance["activation"] = activation_importance(g, stats)
    return {name: mean for name, (mean, _) in stats.items()}
