"""The table of op handlers channel pruning propagates through.

Each handler says, for one node, how channel maps flow from its inputs to its outputs
(``propagate``) and how to cut the node's own parameters once the kept channels are known
(``materialise``). An op that is not in :data:`HANDLERS` is a barrier (see :mod:`.depgraph`).

Channel axes: a feature map [N, C, ...] has its channels on axis 1; a MatMul with a constant [K, N]
weight produces channels on its last axis (transformer hidden states [B, S, H]).
"""

from __future__ import annotations

from ._common import Handler
from .elementwise import UNARY, BinaryHandler, UnaryHandler
from .layers import ConvHandler, ConvTransposeHandler, GemmHandler, MatMulHandler, NormHandler
from .structural import AxisOpHandler, ConcatHandler, PassThroughHandler, ReduceHandler, ShapeOpHandler, SliceHandler, SplitHandler

_PASS = PassThroughHandler()
_UNARY = UnaryHandler()
_BINARY = BinaryHandler()
_SHAPE = ShapeOpHandler()
_AXIS = AxisOpHandler()

HANDLERS: dict[str, Handler] = {
    "Conv": ConvHandler(),
    "ConvTranspose": ConvTransposeHandler(),
    "Gemm": GemmHandler(),
    "MatMul": MatMulHandler(),
    "BatchNormalization": NormHandler(),
    "InstanceNormalization": NormHandler(),
    **{op: _UNARY for op in UNARY},
    **{op: _BINARY for op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Mean")},
    **{op: _PASS for op in ("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
                            "Pad", "Resize", "Upsample")},
    "Slice": SliceHandler(),
    **{op: ReduceHandler() for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                      "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin")},
    **{op: _AXIS for op in ("Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "Flatten")},
    **{op: _SHAPE for op in ("Reshape", "Squeeze", "Unsqueeze", "Transpose", "Gather")},
    "Concat": ConcatHandler(),
    "Split": SplitHandler(),
}
