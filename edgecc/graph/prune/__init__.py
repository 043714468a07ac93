"""Structured channel pruning made physical in the ONNX graph, zero-channel elimination, and sparsity."""

from .depgraph import Barrier, ChannelMap, DependencyGraph
from .materialise import materialise
from .plan import CRITERIA, ChannelGroup, PruningPlan, build_dependency_graph, check_exclude, plan_pruning

__all__ = ["Barrier", "ChannelMap", "DependencyGraph", "materialise", "CRITERIA", "ChannelGroup", "PruningPlan",
           "build_dependency_graph", "check_exclude", "plan_pruning"]
