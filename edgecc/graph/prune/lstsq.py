"""The closed-form pieces of least-squares recovery: a layer that reads channels seen as a linear map, the rows
(regressors, targets) it is fitted on, and the normal equations accumulated over calibration samples.

A dense Conv is a matrix product once its input is unfolded into patches (im2col): each output pixel is
``patches[C*k*k] @ W[C*k*k, O] + b``. A Gemm is ``alpha * A @ B + beta * C``, a MatMul by a constant followed by
an Add of a constant is ``A @ B + bias``. All three become ``X @ W + b`` with ``X`` one row per output position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from ..rewrite._util import const_array
from ..weights import InitializerWriter
from .compensate import bias_add
from .handlers._common import input_at


@dataclass
class LinearLayer:
    """One Conv (group 1), Gemm (transA 0) or MatMul + bias Add node seen as ``Y = X @ W + b``."""

    node: ir.Node
    add: tuple[ir.Node, int] | None = None  # MatMul: the bias Add and the index of its constant input

    @classmethod
    def of(cls, node: ir.Node) -> LinearLayer:
        return cls(node, bias_add(node) if node.op_type == "MatMul" else None)

    @property
    def output(self) -> ir.Value:
        """The value the layer's fit targets: its output, or the bias Add's for a MatMul."""
        return self.add[0].outputs[0] if self.add is not None else self.node.outputs[0]

    def _weight(self) -> np.ndarray:
        return const_array(self.node.inputs[1])

    @property
    def inputs(self) -> int:
        """Input channels (features) the layer reads: C of a Conv, K of a Gemm/MatMul."""
        w = self._weight()
        if self.node.op_type == "Conv":
            return w.shape[1]
        if self.node.op_type == "Gemm" and self.node.attributes.get_int("transB", 0):
            return w.shape[1]
        return w.shape[0]

    @property
    def features(self) -> int:
        """Rows of the weight matrix: C * prod(kernel) for a Conv, K otherwise."""
        w = self._weight()
        return self.inputs * int(np.prod(w.shape[2:])) if self.node.op_type == "Conv" else self.inputs

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(W [D, O], b [O]) in float64: D = C * prod(kernel) for a Conv, K otherwise."""
        w = self._weight().astype(np.float64)
        op = self.node.op_type
        if op == "Conv":
            bias = const_array(input_at(self.node, 2))
            mat = w.reshape(w.shape[0], -1).T
        elif op == "Gemm":
            alpha = self.node.attributes.get_float("alpha", 1.0)
            beta = self.node.attributes.get_float("beta", 1.0)
            mat = alpha * (w.T if self.node.attributes.get_int("transB", 0) else w)
            c = const_array(input_at(self.node, 2))
            bias = None if c is None else beta * c.astype(np.float64)
        else:
            mat = w
            bias = const_array(self.add[0].inputs[self.add[1]])
        out = mat.shape[1]
        b = np.zeros(out) if bias is None else np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), (out,)).copy()
        return mat, b

    def fittable(self) -> str | None:
        """Why the layer cannot be re-fitted, or None."""
        w = self._weight()
        if w is None or w.dtype not in (np.float32, np.float64):
            return "weight is not a float32/float64 constant"
        if self.node.op_type == "MatMul" and self.add is None:
            return "MatMul without a constant bias Add"
        if self.node.op_type == "Gemm":
            c = const_array(input_at(self.node, 2))
            if input_at(self.node, 2) is not None and (c is None or c.size not in (1, self.matrix()[0].shape[1])):
                return "Gemm whose C is not a constant scalar or [N] vector"
        return None

    def write(self, writer: InitializerWriter, w: np.ndarray, b: np.ndarray) -> None:
        """Set the layer's weight and bias to ``W [D, O]`` and ``b [O]`` (cast to the weight's dtype)."""
        node, op = self.node, self.node.op_type
        dtype = self._weight().dtype
        if op == "Conv":
            old = self._weight()
            _replace(writer, node, 1, w.T.reshape((w.shape[1],) + old.shape[1:]).astype(dtype))
            self._set_bias(writer, node, 2, b.astype(dtype))
        elif op == "Gemm":
            alpha = node.attributes.get_float("alpha", 1.0)
            beta = node.attributes.get_float("beta", 1.0)
            mat = w / alpha
            _replace(writer, node, 1, (mat.T if node.attributes.get_int("transB", 0) else mat).astype(dtype))
            if beta == 0.0:
                node.attributes["beta"] = ir.AttrFloat32("beta", 1.0)
                beta = 1.0
            self._set_bias(writer, node, 2, (b / beta).astype(dtype))
        else:
            _replace(writer, node, 1, w.astype(dtype))
            add, i = self.add
            _replace(writer, add, i, b.astype(const_array(add.inputs[i]).dtype))

    @staticmethod
    def _set_bias(writer: InitializerWriter, node: ir.Node, index: int, b: np.ndarray) -> None:
        if input_at(node, index) is None:
            node.resize_inputs(index + 1)
            node.replace_input_with(index, writer.new(b, (node.name or "layer") + "_bias_recovered"))
        else:
            _replace(writer, node, index, b)

    def rows(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, quota: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``quota`` rows (regressors [R, D], targets [R, O]) drawn at random output positions: ``x`` is the
        layer's input, ``y`` the target output (channels on axis 1 for a Conv, last for Gemm/MatMul)."""
        if self.node.op_type != "Conv":
            xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
            pick = _pick(len(xs), rng, quota)
            return xs[pick], ys[pick]
        spatial = y.shape[2:]
        flat = _pick(y.shape[0] * int(np.prod(spatial)), rng, quota)
        where = np.unravel_index(flat, (y.shape[0],) + tuple(spatial))
        patches = conv_windows(self.node, x, self._weight().shape[2:], spatial)
        xs = patches[(where[0], slice(None)) + tuple(where[1:])]  # [R, C, *kernel]
        ys = y[(where[0], slice(None)) + tuple(where[1:])]  # [R, O]
        return xs.reshape(len(flat), -1), ys


def _replace(writer: InitializerWriter, node: ir.Node, index: int, array: np.ndarray) -> None:
    """Give ``node`` a new initializer at ``index`` named after the old one, without piling up suffixes when
    pruning and recovery run again on their own results."""
    base = re.sub(r"(_(pruned|recovered)(_\d+)?)+$", "", node.inputs[index].name or node.name or "w")
    node.replace_input_with(index, writer.new(array, base + "_recovered"))


def _pick(n: int, rng: np.random.Generator, quota: int) -> np.ndarray:
    """All of ``range(n)``, or ``quota`` of them at random (sorted), when there are more."""
    return np.arange(n) if n <= quota else np.sort(rng.choice(n, quota, replace=False))


def conv_pads(node: ir.Node, spatial_in: tuple[int, ...], kernel: tuple[int, ...]) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial axis from ``pads`` or ``auto_pad``."""
    n = len(kernel)
    strides = node.attributes.get_ints("strides", [1] * n)
    dilations = node.attributes.get_ints("dilations", [1] * n)
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(spatial_in, kernel, strides, dilations):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return out
    if auto == "VALID":
        return [(0, 0)] * n
    pads = node.attributes.get_ints("pads", [0] * (2 * n))
    return [(pads[i], pads[i + n]) for i in range(n)]


def conv_windows(node: ir.Node, x: np.ndarray, kernel: tuple[int, ...], spatial_out: tuple[int, ...]) -> np.ndarray:
    """A strided view [N, C, *spatial_out, *kernel] of ``x``'s padded receptive fields (no copy)."""
    n = len(kernel)
    strides = node.attributes.get_ints("strides", [1] * n)
    dilations = node.attributes.get_ints("dilations", [1] * n)
    padded = np.pad(x, [(0, 0), (0, 0)] + conv_pads(node, x.shape[2:], kernel))
    reach = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    win = np.lib.stride_tricks.sliding_window_view(padded, reach, axis=tuple(range(2, 2 + n)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)]
    return win[(slice(None), slice(None)) + tuple(slice(0, o) for o in spatial_out)]


class NormalEquations:
    """Sums over rows of ``[x, 1]^T [x, 1]`` and ``[x, 1]^T y`` in float64, enough to fit and to score ``y ~ x W + b``."""

    BLOCK = 4096

    def __init__(self, inputs: int, outputs: int) -> None:
        self.xx = np.zeros((inputs, inputs))
        self.xy = np.zeros((inputs, outputs))
        self.sx = np.zeros(inputs)
        self.sy = np.zeros(outputs)
        self.yy = 0.0
        self.n = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._rows = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Take rows ``x`` [R, D] and ``y`` [R, O]; they are summed in blocks of several thousand rows (one
        matrix product per block, not per calibration sample)."""
        self._pending.append((x, y))
        self._rows += len(x)
        if self._rows >= self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        x = np.concatenate([p[0] for p in self._pending]).astype(np.float64)
        y = np.concatenate([p[1] for p in self._pending]).astype(np.float64)
        self._pending, self._rows = [], 0
        self.xx += x.T @ x
        self.xy += x.T @ y
        self.sx += x.sum(0)
        self.sy += y.sum(0)
        self.yy += float((y * y).sum())
        self.n += len(x)

    def merged(self, other: NormalEquations) -> NormalEquations:
        """The sums over the rows of both."""
        self._flush()
        other._flush()
        out = NormalEquations(len(self.xx), self.xy.shape[1])
        for name in ("xx", "xy", "sx", "sy", "yy", "n"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out

    def solutions(self, ridges: list[float], w0: np.ndarray):
        """For each ``ridge``, (ridge, W, b) minimising the mean squared error + ``lam * ||W - w0||^2`` (the bias is
        not penalised), with ``lam = ridge`` times the mean variance of the regressors: the pull toward ``w0``
        (the layer's current weights) matters only where the data do not pin a direction down. ``inf`` keeps
        ``w0`` and fits the bias alone. One eigendecomposition serves every ridge."""
        self._flush()
        mx, my = self.sx / self.n, self.sy / self.n
        cxx = self.xx / self.n - np.outer(mx, mx)
        cxy = self.xy / self.n - np.outer(mx, my)
        scale = max(float(np.trace(cxx)) / len(cxx), 1e-30)
        values, vectors = np.linalg.eigh(cxx)
        values = np.maximum(values, 0.0)
        a, b0 = vectors.T @ cxy, vectors.T @ w0
        for ridge in ridges:
            lam = max(ridge * scale, 1e-12 * scale)
            w = w0 if np.isinf(ridge) else vectors @ ((a + lam * b0) / (values + lam)[:, None])
            yield ridge, w, my - mx @ w

    def relative_error(self, w: np.ndarray, b: np.ndarray) -> float:
        """||x W + b - y|| / ||y|| over the accumulated rows (Frobenius norms)."""
        self._flush()
        sse = (float(np.sum(w * (self.xx @ w))) + 2 * float(self.sx @ w @ b) + self.n * float(b @ b)
               - 2 * float(np.sum(w * self.xy)) - 2 * float(self.sy @ b) + self.yy)
        return float(np.sqrt(max(sse, 0.0) / self.yy)) if self.yy > 0 else 0.0
