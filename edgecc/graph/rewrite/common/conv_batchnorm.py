"""BatchNormalization after Conv, ConvTranspose or Gemm folded into its weights: onnxscript's rules, which
check that the weights are constant initializers not shared with other nodes."""

from onnxscript.rewriter.rules.common._fuse_batchnorm import rules as _onnxscript_rules

rules = list(_onnxscript_rules.rules)
