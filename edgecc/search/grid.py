"""The search grid and the flags that describe it: one list (or range) of values per searchable graph step,
and the time budget."""

from __future__ import annotations

import itertools
import re

from ..graph.steps import GraphRecipe, Space, ValueRange, get_step, searchable_steps

#: one rewrite of the graph: a recipe of the searchable steps (``GraphVariant(prune=0.3)``; ``.key`` labels it)
GraphVariant = GraphRecipe
Spaces = dict[str, Space]


def parse_space(step: str, text: str) -> Space:
    """Search's ``--FLAG`` text for graph step ``step``: ``0,0.3,0.5`` (a list; the step's "off" word, or 0 for
    pruning, is None) or, where the step takes one, a range ``0:0.6`` for --strategy optuna."""
    return get_step(step).parse_space(text)


def default_spaces() -> Spaces:
    """Every searchable step off: the original graph alone."""
    return {s.name: [None] for s in searchable_steps()}


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_time_budget(text: str) -> float:
    """``30m``, ``90s``, ``1.5h``, ``45`` (seconds) -> seconds (>= 0)."""
    from ..errors import BadInputError

    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h)?\s*", text.lower())
    if m is None:
        raise BadInputError(f"--time-budget '{text}': expected a duration such as 30m, 90s, 1.5h or a number of seconds")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def grid(spaces: Spaces) -> list[GraphVariant]:
    """Every combination, the original graph first (it is the baseline every other variant is measured
    against), then cheapest rewrites first, so a short budget measures the mild ones."""
    lists = {}
    for name, space in (default_spaces() | spaces).items():
        if isinstance(space, ValueRange):
            from ..errors import BadInputError

            raise BadInputError(f"{get_step(name).flag} {space}: a range is searched by --strategy optuna; the grid "
                                "takes a list such as 0,0.3,0.5")
        lists[name] = list(space)
    variants = {GraphVariant(**dict(zip(lists, values))) for values in itertools.product(*lists.values())}
    return sorted(variants | {GraphVariant()}, key=lambda v: v.sort_key)
