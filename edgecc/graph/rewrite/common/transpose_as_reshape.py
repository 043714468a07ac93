"""A Transpose that only moves axes of size 1 keeps the memory order: it is a Reshape.

A Reshape then merges with its neighbouring Reshapes (shape_chains), where a Transpose would not.
Needs a static input shape.
"""

from __future__ import annotations

import numpy as np
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from .._util import fresh_initializer


class TransposeOfUnitAxes(RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.Transpose(x, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context, x, out, **_):
        result = MatchResult()
        if x.shape is None or not all(isinstance(d, int) for d in x.shape):
            return result.fail(f"the shape of '{x.name}' is not static", x)
        rank = len(x.shape)
        perm = out.producer().attributes.get_ints("perm", list(reversed(range(rank))))
        moved = [a for a in perm if x.shape[a] != 1]
        if moved != sorted(moved):
            return result.fail(f"perm {list(perm)} reorders axes longer than 1", out)
        self._shape = [x.shape[a] for a in perm]
        return result

    def rewrite(self, op, x, out, **_):
        shape = fresh_initializer(op, out.graph, np.array(self._shape, dtype=np.int64), (out.name or "t") + "_shape")
        return op.Reshape(x, shape)


rules = [TransposeOfUnitAxes.rule()]
