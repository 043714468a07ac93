"""MatMul + Add on 2-D operands -> Gemm (with transA/transB absorbed): onnxscript's rules, plus the check they
lack that the added tensor broadcasts one way to [M, N] (Gemm's C), so the output shape cannot change."""

from onnxscript.rewriter import MatchResult
from onnxscript.rewriter.rules.common._matmul_add_to_gemm import (
    MatMulAddToGemm, TransABMatMulAddToGemm, TransAMatMulAddToGemm, TransBMatMulAddToGemm,
)


def _checked(cls):
    class Checked(cls):
        def check(self, context, input_a, input_b, input_c, **kwargs):
            result = super().check(context, input_a, input_b, input_c=input_c, **kwargs)
            if not result:
                return result
            out = context.output_values[0] if context.output_values else None
            if out is None or out.shape is None or len(out.shape) != 2 or input_c.shape is None:
                return MatchResult().fail("shapes of the Add output or of C are unknown")
            m, n = out.shape
            dims = list(input_c.shape)
            if len(dims) > 2 or (len(dims) == 2 and (dims[0] not in (1, m) or dims[1] not in (1, n))) or (
                len(dims) == 1 and dims[0] not in (1, n)
            ):
                return MatchResult().fail(f"C of shape {dims} does not broadcast one way to [{m}, {n}]", input_c)
            return result

    Checked.__name__ = Checked.__qualname__ = cls.__name__
    return Checked


rules = [_checked(c)().rule() for c in (TransABMatMulAddToGemm, TransAMatMulAddToGemm, TransBMatMulAddToGemm, MatMulAddToGemm)]
