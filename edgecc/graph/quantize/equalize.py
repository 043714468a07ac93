"""Cross-layer equalisation (CLE): per-channel weight ranges of consecutive layers made equal, before INT8.

Depthwise networks quantise badly per tensor and even per channel: a depthwise kernel's channels span
ranges two or three orders of magnitude apart, and the pointwise layer after it reads them with one
activation scale. For a pair ``layer1 -> act -> layer2`` where ``act`` is positively homogeneous
(``act(x / s) = act(x) / s`` for ``s > 0``: ReLU, LeakyReLU, identity, Clip(0, +inf)), dividing output
channel ``c`` of layer1 (weights and bias) by ``s_c`` and multiplying input channel ``c`` of layer2 by
``s_c`` keeps the function exactly. With ``r1_c`` the range of layer1's output channel ``c`` and ``r2_c``
that of layer2's input channel ``c`` (max |w|), ``s_c = sqrt(r1_c * r2_c) / r2_c`` makes both
``sqrt(r1_c * r2_c)``.

ReLU6 (Clip with a finite upper bound) is NOT positively homogeneous: ``clip(x/s, 0, 6) = clip(x, 0, 6)/s``
only when the bound becomes ``6/s_c``, a per-channel bound that Clip cannot hold (a per-channel Min
would, but it is not an activation the QDQ quantisers fold). By default such pairs are skipped, and
the reason is recorded. Given the per-channel maxima of layer1's outputs on calibration data
(``clip_maxima``, :func:`clip_maxima`), they are adjusted instead: a channel that reaches the bound
on that data keeps ``s_c = 1``, and every other channel is scaled with ``s_c >= max_c / bound``, so
that it still stays below the bound: the function is then unchanged on every calibration sample (and
on any input that keeps those channels below the bound), not for every input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ..rewrite._util import const_array

# Below this, a channel's weights are treated as all zero: scaling it would divide by ~0.
EPS = 1e-8
# Scales are kept within [1/MAX_SCALE, MAX_SCALE]: beyond, float32 rounding of the rescaled weights
# becomes visible in the outputs.
MAX_SCALE = 1e4


@dataclass
class EqualizationResult:
    """What CLE did: the pairs equalised (layer1, layer2 node names), those skipped with why, and the
    largest ratio between a pair's per-channel ranges before and after (1.0 = equal)."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sweeps: int = 0
    worst_ratio_before: float = 1.0
    worst_ratio_after: float = 1.0

    def describe(self) -> str:
        return (f"cross-layer equalisation: {len(self.pairs)} layer pairs in {self.sweeps} sweeps, worst range ratio "
                f"{self.worst_ratio_before:.3g} -> {self.worst_ratio_after:.3g}; {len(self.skipped)} pairs skipped")


def _standard(node: ir.Node) -> bool:
    return node.domain in ("", "ai.onnx")


def _private_const(node: ir.Node, index: int) -> np.ndarray | None:
    """Input ``index`` of ``node`` as an array when it is an initializer no other node reads."""
    if index >= len(node.inputs) or node.inputs[index] is None:
        return None
    value = node.inputs[index]
    arr = const_array(value)
    if arr is None or value.is_graph_input() or any(user is not node for user, _ in value.uses()):
        return None
    return arr


def _layer_axes(node: ir.Node) -> tuple[int, int, int] | None:
    """(output-channel axis, input-channel axis, group) of a Conv or Gemm's weight; None for other ops."""
    if not _standard(node):
        return None
    if node.op_type == "Conv":
        return 0, 1, node.attributes.get_int("group", 1)
    if node.op_type == "Gemm" and node.attributes.get_int("transA", 0) == 0:
        if node.attributes.get_float("alpha", 1.0) != 1.0 or node.attributes.get_float("beta", 1.0) != 1.0:
            return None
        return (0, 1, 1) if node.attributes.get_int("transB", 0) else (1, 0, 1)
    return None


BOUNDED = "clips at a finite bound (ReLU6-like): the bound cannot scale per channel"


def _activation(node: ir.Node) -> tuple[float, str | None]:
    """(upper bound, None) for ReLU, LeakyReLU and Clip(0, bound) (bound inf when positively homogeneous);
    (nan, why not) for anything else."""
    if node.op_type in ("Relu", "LeakyRelu") and _standard(node):
        return np.inf, None
    if node.op_type == "Clip" and _standard(node):
        bounds = [node.inputs[i] if len(node.inputs) > i else None for i in (1, 2)]
        lo, hi = (None if v is None else const_array(v) for v in bounds)
        if (bounds[0] is not None and lo is None) or (bounds[1] is not None and hi is None):
            return np.nan, f"{node.name or 'Clip'} has bounds computed at run time"
        if lo is not None and float(lo) != 0.0:
            return np.nan, f"{node.name or 'Clip'} has a non-zero lower bound"
        return (np.inf if hi is None else float(hi)), None
    return np.nan, f"{node.op_type} {node.name} is not positively homogeneous"


def _sole_use(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0][0]


@dataclass
class _Pair:
    first: ir.Node
    second: ir.Node
    bound: float = np.inf  # the activation's upper bound between them


def find_pairs(model: ir.Model, *, bounded: bool = False) -> tuple[list[_Pair], list[str]]:
    """Layer pairs CLE can equalise exactly (with ``bounded``, also those through Clip(0, bound)), and the
    reasons candidate pairs were declined."""
    pairs, skipped = [], []
    for node in model.graph:
        axes = _layer_axes(node)
        if axes is None:
            continue
        nxt = _sole_use(node.outputs[0])
        between, bound = None, np.inf
        if nxt is not None and _layer_axes(nxt) is None:
            between, (bound, reason) = nxt, _activation(nxt)
            if reason is None and np.isfinite(bound) and not bounded:
                reason = f"{nxt.name or 'Clip'} {BOUNDED}"
            if reason is not None:
                if any(_layer_axes(u) is not None for u, _ in nxt.outputs[0].uses()):
                    skipped.append(f"{node.name} -> {reason}")
                continue
            nxt = _sole_use(between.outputs[0])
        if nxt is None or _layer_axes(nxt) is None or nxt.inputs[0] is not (between or node).outputs[0]:
            continue
        why = _check_pair(node, nxt)
        if why:
            skipped.append(f"{node.name} -> {nxt.name}: {why}")
        else:
            pairs.append(_Pair(node, nxt, bound))
    return pairs, skipped


def _check_pair(first: ir.Node, second: ir.Node) -> str | None:
    w1, w2 = _private_const(first, 1), _private_const(second, 1)
    if w1 is None or w2 is None:
        return "a weight is not an initializer read by this layer alone"
    if len(first.inputs) > 2 and first.inputs[2] is not None and _private_const(first, 2) is None:
        return "the first layer's bias is not a private initializer"
    out_axis, _, group1 = _layer_axes(first)
    _, in_axis, group2 = _layer_axes(second)
    if group1 != 1 and not (first.op_type == "Conv" and w1.shape[1] == 1 and group1 == w1.shape[0]):
        return "the first layer is a grouped (not depthwise) convolution"
    channels = w1.shape[out_axis]
    if group2 == 1:
        if w2.shape[in_axis] != channels:
            return f"channel counts differ ({channels} vs {w2.shape[in_axis]})"
    elif not (w2.shape[1] == 1 and group2 == channels and w2.shape[0] % channels == 0):
        return "the second layer is a grouped (not depthwise) convolution"
    return None


def _ranges(first: ir.Node, second: ir.Node) -> tuple[np.ndarray, np.ndarray]:
    """Per channel c: max |w| of layer1's output channel c, and of layer2's weights that read c."""
    w1, w2 = const_array(first.inputs[1]), const_array(second.inputs[1])
    out_axis, _, _ = _layer_axes(first)
    _, in_axis, group2 = _layer_axes(second)
    channels = w1.shape[out_axis]
    r1 = np.abs(np.moveaxis(w1, out_axis, 0)).reshape(channels, -1).max(1)
    if group2 == 1:
        r2 = np.abs(np.moveaxis(w2, in_axis, 0)).reshape(channels, -1).max(1)
    else:  # depthwise: output channels c*m .. c*m+m-1 read input channel c
        r2 = np.abs(w2).reshape(channels, -1).max(1)
    return r1.astype(np.float64), r2.astype(np.float64)


def _set(node: ir.Node, index: int, array: np.ndarray) -> None:
    value = node.inputs[index]
    old = value.const_value
    value.const_value = ir.tensor(np.ascontiguousarray(array.astype(old.dtype.numpy())), name=old.name)


def _scale_pair(pair: _Pair, s: np.ndarray) -> None:
    """Divide layer1's output channels by ``s`` and multiply layer2's matching inputs by ``s``."""
    first, second = pair.first, pair.second
    out_axis, _, _ = _layer_axes(first)
    _, in_axis, group2 = _layer_axes(second)
    w1 = const_array(first.inputs[1]).astype(np.float64)
    shape1 = [1] * w1.ndim
    shape1[out_axis] = -1
    _set(first, 1, w1 / s.reshape(shape1))
    if len(first.inputs) > 2 and first.inputs[2] is not None:
        _set(first, 2, const_array(first.inputs[2]).astype(np.float64) / s)
    w2 = const_array(second.inputs[1]).astype(np.float64)
    if group2 == 1:
        shape2 = [1] * w2.ndim
        shape2[in_axis] = -1
        _set(second, 1, w2 * s.reshape(shape2))
    else:
        per_out = np.repeat(s, w2.shape[0] // len(s))
        _set(second, 1, w2 * per_out.reshape(-1, *([1] * (w2.ndim - 1))))


def range_ratio(r1: np.ndarray, r2: np.ndarray) -> float:
    """The largest max(r1_c, r2_c) / min(r1_c, r2_c) over channels with non-zero weights (1.0 = equal)."""
    live = (r1 > EPS) & (r2 > EPS)
    if not live.any():
        return 1.0
    a, b = r1[live], r2[live]
    return float(np.max(np.maximum(a, b) / np.minimum(a, b)))


def clip_maxima(model: ir.Model, calibration) -> dict[str, np.ndarray]:
    """Per-channel maximum, over the ``calibration`` Dataset, of the output of every layer that feeds a
    bounded activation (Clip(0, bound)) in a pair: what :func:`equalize` needs to adjust those pairs."""
    from ._session import run_tensors

    pairs, _ = find_pairs(model, bounded=True)
    names = {p.first.outputs[0].name: (1 if p.first.op_type == "Conv" else -1) for p in pairs if np.isfinite(p.bound)}
    found: dict[str, np.ndarray] = {}
    for got in run_tensors(model, calibration, list(names)):
        for n, arr in got.items():
            axis = names[n] % arr.ndim
            m = np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1).max(1).astype(np.float64)
            found[n] = m if n not in found else np.maximum(found[n], m)
    return found


def _bounded_scales(s: np.ndarray, maxima: np.ndarray, bound: float) -> np.ndarray:
    """``s`` limited so that no channel that stays below ``bound`` crosses it; channels that reach it keep 1."""
    saturated = maxima >= bound
    return np.where(saturated, 1.0, np.maximum(s, maxima / bound))


def equalize(model: ir.Model, *, max_sweeps: int = 20, tolerance: float = 1e-3,
             clip_maxima: dict[str, np.ndarray] | None = None) -> EqualizationResult:
    """Equalise every exact pair of ``model`` in place, sweeping the graph until no scale moves by more than
    ``tolerance`` (relative) or ``max_sweeps`` sweeps (chains pw -> dw -> pw need several). With
    ``clip_maxima`` (:func:`clip_maxima` of this model), pairs through Clip(0, bound) are adjusted too."""
    pairs, skipped = find_pairs(model, bounded=clip_maxima is not None)
    maxima = {k: v.copy() for k, v in (clip_maxima or {}).items()}
    kept = []
    for p in pairs:
        if np.isfinite(p.bound) and p.first.outputs[0].name not in maxima:
            skipped.append(f"{p.first.name} -> {p.second.name}: no calibrated maxima for the bounded activation")
        else:
            kept.append(p)
    pairs = kept
    result = EqualizationResult(pairs=[(p.first.name, p.second.name) for p in pairs], skipped=skipped)
    if not pairs:
        return result
    result.worst_ratio_before = max(range_ratio(*_ranges(p.first, p.second)) for p in pairs)
    for sweep in range(max_sweeps):
        moved = 0.0
        for p in pairs:
            r1, r2 = _ranges(p.first, p.second)
            s = np.ones_like(r1)
            live = (r1 > EPS) & (r2 > EPS)
            s[live] = np.sqrt(r1[live] * r2[live]) / r2[live]
            s = np.clip(s, 1.0 / MAX_SCALE, MAX_SCALE)
            if np.isfinite(p.bound):
                m = maxima[p.first.outputs[0].name]
                s = _bounded_scales(s, m, p.bound)
                m /= s
            moved = max(moved, float(np.max(np.abs(s - 1.0))))
            _scale_pair(p, s)
        result.sweeps = sweep + 1
        if moved < tolerance:
            break
    result.worst_ratio_after = max(range_ratio(*_ranges(p.first, p.second)) for p in pairs)
    return result


class CrossLayerEqualizationPass(ir.passes.InPlacePass):
    """onnx_ir pass: :func:`equalize` on the model (float weights as initializers). ``result`` holds the
    last run's :class:`EqualizationResult`."""

    def __init__(self, max_sweeps: int = 20) -> None:
        super().__init__()
        self.max_sweeps = max_sweeps
        self.result = EqualizationResult()

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.result = equalize(model, max_sweeps=self.max_sweeps)
        return ir.passes.PassResult(model, modified=bool(self.result.pairs))
