"""Chains of Reshape, Transpose, Unsqueeze, Squeeze, Cast, Expand collapsed or removed: onnxscript's basic rules.

Flatten -> Reshape is left out: it saves no node, adds a shape constant, and Flatten says more
(pruning reads Flatten after a global pool directly).
"""

from onnxscript.rewriter.rules.common._basic_rules import basic_optimization_rules

rules = [r for r in basic_optimization_rules().rules if r.name != "Flatten2Reshape"]
