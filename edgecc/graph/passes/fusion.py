"""Apply rewrite rules (onnxscript pattern rules) rule by rule, counting how often each fired.

With ``explain`` the pass also keeps, for each rule that matched a subgraph but declined in its
``check``, the reason the check gave and the node it was looking at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx_ir as ir
from onnxscript.rewriter import MatchingTracer, MatchStatus, RewriteRule, RewriteRuleSet


@dataclass(frozen=True)
class Declined:
    """A rule whose pattern matched at ``node`` but whose check said no, and why."""

    rule: str
    node: str
    op_type: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "node": self.node, "op_type": self.op_type, "reason": self.reason}


class FusionPass(ir.passes.InPlacePass):
    """Applies each rule in ``rules`` over the whole model; ``last_details`` has per-rule counts."""

    def __init__(self, rules: Sequence[RewriteRule], *, name: str = "fusion", explain: bool = False) -> None:
        super().__init__()
        self.rules = list(rules)
        # one set per rule so that each rule's count is known; commuted forms of Add/Mul patterns included
        self._sets = [RewriteRuleSet([r], commute=True) for r in self.rules]
        self.name = name
        self.explain = explain
        self.counts: dict[str, int] = {}
        self.declined: dict[tuple[str, str], Declined] = {}
        self.last_details: dict[str, object] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        fired: dict[str, int] = {}
        for rule, rule_set in zip(self.rules, self._sets):
            n = rule_set.apply_to_model(model)
            if n:
                fired[rule.name] = fired.get(rule.name, 0) + n
        for name, n in fired.items():  # counted once the whole call succeeded (a failed call is undone)
            self.counts[name] = self.counts.get(name, 0) + n
        if self.explain:
            # With a tracer onnxscript only matches and changes nothing, so it runs on the model as the
            # rules left it; the last call sees the final model, so only its declines are kept.
            self.declined = {}
            for rule_set in self._sets:
                tracer = MatchingTracer()
                rule_set.apply_to_model(model, tracer=tracer)
                self._collect(tracer)
        self.last_details = {"fired": fired}
        return ir.passes.PassResult(model, bool(fired))

    def _collect(self, tracer: MatchingTracer) -> None:
        for rule, matches in tracer.best_matches_map.items():
            for info in matches:
                if info.status != MatchStatus.CONDITION_FAILED:
                    continue
                node = info.root_node
                key = (rule.name, node.name or "")
                self.declined[key] = Declined(rule.name, node.name or "", node.op_type, info.match_result.reason or "no reason given")
