"""A Concat of one input is that input."""

from __future__ import annotations

from onnxscript.rewriter import MatchResult, RewriteRuleClassBase


class ConcatOfOne(RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.Concat(x, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context, x, out, **_):
        result = MatchResult()
        if out.dtype is not None and x.dtype is not None and out.dtype != x.dtype:
            return result.fail("output dtype differs from the input's")
        return result

    def rewrite(self, op, x, **_):
        return op.Identity(x)


rules = [ConcatOfOne.rule()]
