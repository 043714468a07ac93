"""HardSigmoid(x) * x, and its Clip/Relu6 spellings, -> HardSwish (opset >= 14): onnxscript's rules."""

from onnxscript.rewriter.rules.common._fuse_hardswish import fuse_hardswish_rules

rules = list(fuse_hardswish_rules().rules)
