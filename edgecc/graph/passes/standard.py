"""The cleanup, constant-folding and onnxsim passes of the optimize pipeline."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import common as common_passes
from onnxscript.optimizer._constant_folding import FoldConstantsPass

from ..io import EXTERNAL_DATA_THRESHOLD, model_bytes


class IdentityEliminationPass(common_passes.IdentityEliminationPass):
    """onnx_ir's identity elimination, except where an Identity returns a value from outside its own graph
    as that graph's output (an If branch returning an outer tensor): ONNX needs the Identity there, and
    onnx_ir's pass would make the outer tensor an output of two graphs."""

    def _try_eliminate_identity_node(self, node: ir.Node) -> bool:
        if node.op_type == "Identity" and node.domain == "" and len(node.inputs) == 1 and len(node.outputs) == 1:
            x, y = node.inputs[0], node.outputs[0]
            if x is not None and y.is_graph_output():
                home = x.producer().graph if x.producer() is not None else x.graph
                if home is not node.graph:
                    return False
        return super()._try_eliminate_identity_node(node)


def cleanup_passes() -> list[ir.passes.PassBase]:
    """onnx_ir's common passes: constants to initializers, duplicate initializers, identities, CSE, unused nodes.

    Every Constant node becomes an initializer, whatever its size: a Constant is a node that every runtime
    schedules, an initializer is data (onnxsim writes small ones back as Constant nodes).
    """
    return [
        common_passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common_passes.DeduplicateInitializersPass(),
        IdentityEliminationPass(),
        common_passes.CommonSubexpressionEliminationPass(),
        common_passes.RemoveUnusedNodesPass(),
        common_passes.RemoveUnusedFunctionsPass(),
        common_passes.RemoveUnusedOpsetsPass(),
    ]


# onnxscript leaves ConstantOfShape unfolded (it may be large); a small one, as in the pad computations of
# torch exports (ConstantOfShape -> Concat -> Slice -> Reshape -> Pad), is folded so that the chain becomes a constant.
SMALL_CONSTANT_OF_SHAPE = 1024


def _fold_small_constant_of_shape(node: ir.Node) -> bool | None:
    if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx"):
        return None
    shape = node.outputs[0].shape
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return int(np.prod(list(shape))) <= SMALL_CONSTANT_OF_SHAPE or None


def constant_folding_pass() -> ir.passes.PassBase:
    """onnxscript's constant folding (with per-node shape inference), as one pass."""
    return FoldConstantsPass(shape_inference=True, input_size_limit=8192, output_size_limit=512 * 1024,
                             should_fold=_fold_small_constant_of_shape)


class OnnxSimPass(ir.passes.FunctionalPass):
    """Run onnxsim's simplifier (constant folding with onnxruntime, its own fusions) on the model.

    onnxsim works on protobuf, so the model is serialised and read back. Models whose weights pass the
    protobuf limit are left alone; that, or onnxsim refusing the model, is recorded in ``last_details``.
    A functional pass must return a new model object: unchanged, that is a clone (tensors are shared).
    """

    name = "onnxsim"

    def __init__(self) -> None:
        super().__init__()
        self.last_details: dict[str, object] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.last_details = {}
        if model_bytes(model) > EXTERNAL_DATA_THRESHOLD:
            self.last_details = {"skipped": "weights larger than 1 GiB (onnxsim works on a single protobuf)"}
            return ir.passes.PassResult(model.clone(), False)
        import onnxsim

        proto = ir.serde.serialize_model(model)
        before = proto.SerializeToString()
        try:
            simplified, ok = onnxsim.simplify(proto, check_n=0)
        except Exception as e:  # onnxsim raises bare exceptions for ops it cannot run; the report says so
            self.last_details = {"skipped": f"onnxsim failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"}
            return ir.passes.PassResult(model.clone(), False)
        if not ok:
            self.last_details = {"skipped": "onnxsim's own check failed; its result was discarded"}
            return ir.passes.PassResult(model.clone(), False)
        if simplified.SerializeToString() == before:
            return ir.passes.PassResult(model.clone(), False)
        return ir.passes.PassResult(ir.serde.deserialize_model(simplified), True)
