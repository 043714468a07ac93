"""A Slice that keeps the whole tensor becomes its input: onnxscript's rules, named here."""

from onnxscript.rewriter import RewriteRule
from onnxscript.rewriter.rules.common import _collapse_slices as _m

rules = [
    RewriteRule(_m._potential_redundant_slice, _m._identity_to_itself, _m._check_if_redundant_slice, name="SliceWholeAxis"),
    RewriteRule(_m._potential_redundant_slice, _m._identity_to_itself, _m._same_shape, name="SliceSameShape"),
]
