"""A constant-mode Pad before Conv merged into the Conv's pads (and auto_pad made explicit): onnxscript's rules."""

from onnxscript.rewriter.rules.common._fuse_pad_into_conv import rules as _onnxscript_rules

rules = list(_onnxscript_rules.rules)
