"""A static table of the ONNX operators TensorRT's ONNX parser converts: an ESTIMATE, used only where
TensorRT itself is not installed (on a machine with TensorRT, the parser is asked instead).

Source: onnx/onnx-tensorrt, docs/operators.md at commit 96e781103cfc (June 2024), the "Operator
Support Matrix" for TensorRT 10.0, which parses ONNX opsets 9 to 20. Only the Y/N column is taken:
the per-op restrictions (e.g. Conv weights must be initializers, 2D/3D pooling only) and the data
types are not checked, so a model this table passes can still fail to parse, and a later TensorRT
may take ops it lists as missing. Every place that shows this table's answer says it is an estimate.
"""

from __future__ import annotations

import onnx_ir as ir

from ..base import op_id

TABLE_SOURCE = "onnx/onnx-tensorrt docs/operators.md @ 96e781103cfc (TensorRT 10.0 support matrix)"
TABLE_TENSORRT_VERSION = "10.0"
#: the ONNX opsets (default domain) TensorRT 10.0's parser accepts, inclusive
OPSET_RANGE = (9, 20)

SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf
IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot
Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round
ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu
Unsqueeze Upsample Where Xor
""".split())

#: listed as unsupported ("N") in the same matrix; kept so tests can check the table was read whole
UNSUPPORTED_OPS = frozenset("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow Col2Im CenterCropPad
Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear HammingWindow HannWindow ImageDecoder
MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional
OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch STFT SequenceAt SequenceConstruct
SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence
StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split())

ESTIMATE_LABEL = f"estimate from a static table of TensorRT {TABLE_TENSORRT_VERSION}'s ONNX operator support ({TABLE_SOURCE})"


def estimate_unsupported_ops(model: ir.Model) -> list[str]:
    """Op types in ``model`` that the table says TensorRT cannot parse, as 'domain::Op' or 'Op'.

    Calls of model-local functions count as supported when every op in the function body is.
    """
    functions = {(f.domain, f.name, f.overload): f for f in model.functions.values()}
    missing: set[str] = set()

    def walk(nodes, seen: frozenset) -> None:
        for node in nodes:
            domain = "" if node.domain == "ai.onnx" else node.domain
            key = (node.domain, node.op_type, node.overload)
            if key in functions and key not in seen:
                walk(functions[key], seen | {key})
                continue
            if domain != "" or node.op_type not in SUPPORTED_OPS:
                missing.add(op_id(domain, node.op_type))
            for attr in node.attributes.values():  # If/Loop/Scan bodies
                graphs = attr.value if isinstance(attr.value, (list, tuple)) else [attr.value]
                for g in graphs:
                    if isinstance(g, ir.Graph):
                        walk(g, seen)

    walk(model.graph, frozenset())
    return sorted(missing)


def opset_outside_range(model: ir.Model) -> str | None:
    """Why the model's default-domain opset is outside what the table's TensorRT parses, or None."""
    version = model.opset_imports.get("", model.opset_imports.get("ai.onnx"))
    lo, hi = OPSET_RANGE
    if version is not None and not lo <= version <= hi:
        return f"the model uses ONNX opset {version}; TensorRT {TABLE_TENSORRT_VERSION}'s parser takes opsets {lo}-{hi}"
    return None
