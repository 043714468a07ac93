"""MatMul + Add on 2-D operands -> Gemm (with transA/transB absorbed): onnxscript's rules."""

from onnxscript.rewriter.rules.common._matmul_add_to_gemm import rules as _onnxscript_rules

rules = list(_onnxscript_rules.rules)
