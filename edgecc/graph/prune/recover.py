"""Least-squares recovery: after pruning, re-fit every layer that reads pruned channels so that its outputs match
the original model's, on calibration samples, in closed form.

For each dense Conv, Gemm, or MatMul + bias Add of the pruned model whose input lost channels, the regressors are
the pruned model's actual input to it (unfolded into patches for a Conv) and the target is the original model's
output of the same layer (matched by node name; only the output channels the pruned layer kept). Weights and bias
are fitted together (which subsumes mean compensation), with a ridge penalty toward the layer's current weights
scaled to the data. Layers are fitted in topological order and each against the pruned model as already
corrected upstream, so a layer also absorbs the error its predecessors left. Depthwise convolutions are cut along
with their input channels and have nothing to fit; they pass through unchanged.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes import common as common_passes

from ...errors import BadInputError
from ..io import save_model
from ..weights import InitializerWriter
from .compensate import reads_channels
from .lstsq import LinearLayer, NormalEquations

#: ridge penalties (relative to the regressors' mean variance, see NormalEquations.solutions) tried per layer on
#: held-out calibration samples; inf keeps the pruned weights and re-fits the bias alone
RIDGES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, float("inf"))
#: the ridge used when there are too few samples to hold some out; it leaves exact fits within 1e-5
DEFAULT_RIDGE = 1e-4
#: every VALIDATION-th calibration sample is held out to choose the ridge (with at least that many samples)
VALIDATION = 4
#: rows (output positions) sampled per layer over all calibration samples, to bound the fitting cost
DEFAULT_MAX_ROWS = 16384
#: layers reading more features than this (C * kernel positions) are not fitted: the normal equations would
#: take inputs^2 * 8 bytes (4608, a 3x3 conv over 512 channels: 170 MB)
DEFAULT_MAX_INPUTS = 4608


@dataclass
class LayerRecovery:
    """One layer that reads pruned channels: its output's relative error against the original layer's
    (||y' - y|| / ||y|| over the sampled rows of all samples) with the weights pruning left and after recovery;
    the same on the held-out samples the ridge was chosen on (None without them); the ridge used (None: no fit
    did better on held-out samples than the pruned weights, which were kept)."""

    name: str
    op_type: str
    inputs: int
    original_inputs: int
    rows: int
    error_before: float
    error_after: float
    ridge: float | None = DEFAULT_RIDGE
    held_out_before: float | None = None
    held_out_after: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "op_type": self.op_type, "inputs": self.inputs, "original_inputs": self.original_inputs,
                "rows": self.rows, "error_before": self.error_before, "error_after": self.error_after,
                "ridge": None if self.ridge is None or np.isinf(self.ridge) else self.ridge,
                "bias_only": self.ridge is not None and bool(np.isinf(self.ridge)),
                "held_out_before": self.held_out_before, "held_out_after": self.held_out_after}


@dataclass
class RecoveryResult:
    layers: list[LayerRecovery] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (node, why it was not fitted)
    samples: int = 0

    def to_json(self) -> dict[str, object]:
        return {"layers": [lr.to_json() for lr in self.layers], "skipped": [{"node": n, "reason": r} for n, r in self.skipped],
                "samples": self.samples}


@dataclass
class _Reader:
    pruned: LinearLayer
    original: LinearLayer
    keep_out: np.ndarray | None  # original output channels the pruned layer kept; None: all
    level: int = 0


def kept_outputs(plan) -> dict[str, np.ndarray]:
    """Per layer (node name) whose output channels ``plan`` cuts, the indices of the channels it keeps."""
    g = plan.graph
    out: dict[str, np.ndarray] = {}
    for src in g.sources:
        if src.fixed or src.node is None or not src.node.name:
            continue
        mask = np.array([plan.keep_root[g.find(a)] for a in g.atoms_of(src).tolist()], dtype=bool)
        if not mask.all():
            out[src.node.name] = np.nonzero(mask)[0]
    return out


def _match_outputs(original: LinearLayer, pruned: LinearLayer) -> np.ndarray | None:
    """Which original output channel each output of ``pruned`` is, told by its weights (a pruned layer's weights
    are a slice of the original's): each pruned weight value found exactly once in the original votes for the
    output channel it sits in. None when the votes do not settle it."""
    wo, wp = original.matrix()[0].T, pruned.matrix()[0].T  # [O, D]
    flat = wo.ravel()
    order = np.argsort(flat, kind="stable")
    ranked = flat[order]
    pos = np.clip(np.searchsorted(ranked, wp), 0, len(ranked) - 1)
    found = ranked[pos] == wp
    nxt = np.minimum(pos + 1, len(ranked) - 1)
    found &= (nxt == pos) | (ranked[nxt] != wp)
    owner = order[pos] // wo.shape[1]
    keep = np.empty(len(wp), np.int64)
    for a in range(len(wp)):
        votes = np.bincount(owner[a][found[a]], minlength=len(wo))
        if votes.max(initial=0) * 2 <= wp.shape[1]:
            return None
        keep[a] = int(votes.argmax())
    return keep if np.all(np.diff(keep) > 0) else None


def _readers(original: ir.Model, pruned: ir.Model, kept: dict[str, np.ndarray] | None,
             max_inputs: int) -> tuple[list[_Reader], list[tuple[str, str]]]:
    """The layers of ``pruned`` that read fewer channels than their twins in ``original``, in graph order."""
    by_name = {n.name: n for n in original.graph if n.name}
    found: list[_Reader] = []
    skipped: list[tuple[str, str]] = []
    for node in pruned.graph:
        if not reads_channels(node):
            continue
        twin = by_name.get(node.name)
        if twin is None or twin.op_type != node.op_type or not reads_channels(twin):
            continue  # no twin to match: not a layer pruning touched (pruning keeps names)
        layer, ref = LinearLayer.of(node), LinearLayer.of(twin)
        if layer.inputs == ref.inputs:
            continue
        why = layer.fittable() or ref.fittable()
        d = layer.features
        if why is None and d > max_inputs:
            why = f"reads {d} features, more than max_inputs={max_inputs}"
        n_out, n_ref = layer.matrix()[0].shape[1], ref.matrix()[0].shape[1]
        keep = None
        if why is None and n_out != n_ref:
            keep = kept.get(node.name) if kept is not None else _match_outputs(ref, layer)
            if keep is None or len(keep) != n_out:
                why = "cannot tell which output channels it kept (give kept=)"
        if why is not None:
            skipped.append((node.name, why))
            continue
        found.append(_Reader(layer, ref, None if keep is None else np.asarray(keep)))
    return found, skipped


def _assign_levels(model: ir.Model, readers: list[_Reader]) -> list[list[_Reader]]:
    """Group readers so that none depends on another of its own group or a later one: a reader's level is one
    more than the highest level among the readers upstream of its input."""
    of_node = {id(r.pruned.node): r for r in readers}
    depth: dict[ir.Value, int] = {}
    for node in model.graph:
        d = max((depth.get(v, 0) for v in node.inputs if v is not None), default=0)
        r = of_node.get(id(node))
        if r is not None:
            r.level = d = d + 1
        for v in node.outputs:
            depth[v] = d
    levels: dict[int, list[_Reader]] = {}
    for r in readers:
        levels.setdefault(r.level, []).append(r)
    return [levels[k] for k in sorted(levels)]


def _truncate(graph: onnx.GraphProto, names: list[str]) -> None:
    """Make ``names`` the only outputs of ``graph`` and drop the nodes they do not depend on (onnxruntime runs
    every node whatever is fetched). Left whole when a node has a subgraph (it may read outer values unlisted)."""
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        have = {o.name for o in graph.output}
        graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in have)
        return
    needed, keep = set(names), []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.node[:], graph.output[:], graph.initializer[:]
    graph.node.extend(reversed(keep))
    graph.initializer.extend(inits)
    graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)


def _session(model: ir.Model, names: list[str]):
    """An onnxruntime session on the part of ``model`` that computes the values ``names`` (its only outputs)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgecc-recover-") as tmp:
        path = save_model(model, Path(tmp) / "m.onnx")
        proto = onnx.load(str(path))
        _truncate(proto.graph, list(dict.fromkeys(names)))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.log_severity_level = 3
        big = sum(len(t.raw_data) for t in proto.graph.initializer) > 2**30  # protobuf's 2 GiB limit
        onnx.save(proto, str(path), save_as_external_data=big, location=path.name + ".data")
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _fit_level(level: list[_Reader], original: ir.Model, pruned: ir.Model, feeds: list[dict[str, np.ndarray]],
               quota: int, seed: int, index: dict[int, int], hold_out: bool) -> list[tuple[NormalEquations, NormalEquations | None]]:
    """Accumulate the normal equations of every reader of one level over ``feeds``: (fit, held out) per reader;
    with ``hold_out``, every VALIDATION-th sample goes to the second."""
    xs_names = [r.pruned.node.inputs[0].name for r in level]
    ys_names = [r.original.output.name for r in level]
    session, original_session = _session(pruned, xs_names), _session(original, ys_names)
    shapes = [r.pruned.matrix()[0].shape for r in level]
    eqs = [(NormalEquations(*shape), NormalEquations(*shape) if hold_out else None) for shape in shapes]
    for f, feed in enumerate(feeds):
        xs = session.run(xs_names, feed)
        ys = original_session.run(ys_names, feed)
        for r, (fit, held), x, y in zip(level, eqs, xs, ys):
            if r.keep_out is not None:
                y = np.take(y, r.keep_out, axis=1 if r.pruned.node.op_type == "Conv" else -1)
            rng = np.random.default_rng([seed, index[id(r)], f])
            (held if held is not None and f % VALIDATION == VALIDATION - 1 else fit).add(*r.pruned.rows(x, y, rng, quota))
    return eqs


def _refit(r: _Reader, fit: NormalEquations, held: NormalEquations | None, ridge: float | None
           ) -> tuple[np.ndarray, np.ndarray, LayerRecovery]:
    """The new (W, b) of one reader: with a fixed ``ridge`` on all rows; otherwise the ridge (or the pruned
    weights as they are) that does best on the held-out rows, then re-fitted on all rows."""
    w0, b0 = r.pruned.matrix()
    everything = fit.merged(held) if held is not None else fit
    before = everything.relative_error(w0, b0)
    record = LayerRecovery(r.pruned.node.name, r.pruned.node.op_type, r.pruned.inputs, r.original.inputs, everything.n,
                           before, 0.0)
    if held is None:
        ridge = DEFAULT_RIDGE if ridge is None else ridge
    elif ridge is None:
        record.held_out_before = best = held.relative_error(w0, b0)
        for lam, w, b in fit.solutions(list(RIDGES), w0):
            e = held.relative_error(w, b)
            if e < best:
                best, ridge = e, lam
        record.held_out_after = best
    record.ridge = ridge
    if ridge is None:
        w, b = w0, b0
    else:
        _, w, b = next(everything.solutions([ridge], w0))
    record.error_after = everything.relative_error(w, b)
    return w, b, record


def recover_pruned(
    original: ir.Model,
    pruned: ir.Model,
    feeds: list[dict[str, np.ndarray]],
    *,
    kept: dict[str, np.ndarray] | None = None,
    ridge: float | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_inputs: int = DEFAULT_MAX_INPUTS,
    seed: int = 0,
) -> RecoveryResult:
    """Re-fit, in place, the layers of ``pruned`` that read pruned channels so that their outputs match the
    ``original`` model's on ``feeds`` (real samples; each a dict of input arrays).

    ``kept`` maps a layer's node name to the indices of its original output channels that ``pruned`` kept
    (``kept_outputs(plan)``); without it they are told from the weights, which holds for a model fresh from
    pruning. ``ridge``: penalty toward the current weights, relative to the inputs' variance; None chooses it per
    layer from RIDGES on every VALIDATION-th sample held out (a layer no fit improves there keeps its weights), or
    uses DEFAULT_RIDGE with fewer samples than VALIDATION. ``max_rows``: output positions sampled per layer
    (seeded by ``seed``). Layers reading more than ``max_inputs`` features are left as they are, in ``skipped``."""
    if not feeds:
        raise BadInputError("least-squares recovery needs calibration samples: none were given")
    if (ridge is not None and ridge < 0) or max_rows < 1:
        raise BadInputError(f"recovery needs ridge >= 0 and max_rows >= 1, got ridge={ridge}, max_rows={max_rows}")
    readers, skipped = _readers(original, pruned, kept, max_inputs)
    result = RecoveryResult(skipped=skipped, samples=len(feeds))
    if not readers:
        return result
    index = {id(r): i for i, r in enumerate(readers)}
    quota = -(-max_rows // len(feeds))
    hold_out = ridge is None and len(feeds) >= VALIDATION
    writer = InitializerWriter(pruned.graph)
    for level in _assign_levels(pruned, readers):
        for r, (fit, held) in zip(level, _fit_level(level, original, pruned, feeds, quota, seed, index, hold_out)):
            w, b, record = _refit(r, fit, held, ridge)
            if record.ridge is not None:
                r.pruned.write(writer, w, b)
            result.layers.append(record)
    common_passes.RemoveUnusedNodesPass()(pruned)  # the replaced weights
    return result
