"""The Pareto frontier of variants: no other variant is at least as good on every axis and better on one."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[str, Sequence[float]]]) -> list[str]:
    """Ids of the non-dominated points, every axis minimised, in input order.

    ``points`` are (id, values); equal points are all kept (none dominates the other).
    """
    front = []
    for pid, values in points:
        dominated = any(
            all(o <= v for o, v in zip(other, values)) and any(o < v for o, v in zip(other, values))
            for oid, other in points if oid != pid
        )
        if not dominated:
            front.append(pid)
    return front
