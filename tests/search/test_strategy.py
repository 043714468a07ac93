"""The strategies that pick graph variants, on made-up scores (no model is run): the grid's order, and
Optuna's: original first, an earlier run's variants next, never a variant twice, the range's steps, the cap."""

from __future__ import annotations

import pytest

from edgecc.errors import BadInputError
from edgecc.search import GraphVariant, ValueRange as PruneRange, parse_space


def parse_prune_space(text):
    return parse_space("prune", text)
from edgecc.search.strategy import GridStrategy, OptunaStrategy

pytest.importorskip("optuna", reason='optuna is not installed (pip install "edgecc[search]")')


def drive(strategy, score) -> list[GraphVariant]:
    seen = []
    while (v := strategy.next()) is not None:
        seen.append(v)
        strategy.tell(v, score(v))
    return seen


def score(v: GraphVariant) -> float:
    """Faster with more pruning, but accuracy is lost past 0.4: the best variant within budget is prune 0.4."""
    p = v.prune or 0.0
    return 0.0 if p > 0.4 else 1.0 + 2 * p - (0.1 if v.lowrank else 0.0)


def test_optuna_over_a_range_visits_distinct_steps_and_learns_where_the_budget_ends():
    s = OptunaStrategy({"prune": PruneRange(0.0, 0.6), "lowrank": [None, 0.9]}, max_variants=16, known=[], seed=0)
    seen = drive(s, score)
    assert seen[0] == GraphVariant() and len(seen) == len(set(seen)) == 16
    assert all(v.prune is None or (0.05 <= v.prune <= 0.6 and round(v.prune / 0.05, 6).is_integer()) for v in seen)
    assert all(v.lowrank in (None, 0.9) for v in seen)
    best = max(seen, key=score)
    assert best.prune is not None and 0.3 <= best.prune <= 0.4  # found the good region, not just the grid's 0.3


def test_optuna_on_a_list_stops_when_every_pair_is_measured():
    s = OptunaStrategy({"prune": [None, 0.3, 0.5], "lowrank": [None, 0.9]}, max_variants=50, known=[], seed=0)
    seen = drive(s, score)
    assert s.total == 6 and len(seen) == 6 and set(seen) == {GraphVariant(p, lr) for p in (None, 0.3, 0.5) for lr in (None, 0.9)}


def test_optuna_replays_an_earlier_runs_variants_first_and_counts_them():
    known = [GraphVariant(0.3, None), GraphVariant(0.45, None), GraphVariant(0.33, None)]  # 0.33 is not a step: outside
    s = OptunaStrategy({"prune": PruneRange(0.0, 0.6), "lowrank": [None]}, max_variants=5, known=known, seed=0)
    seen = drive(s, score)
    assert seen[:3] == [GraphVariant(), GraphVariant(0.3, None), GraphVariant(0.45, None)]
    assert len(seen) == 5 and GraphVariant(0.33, None) not in seen and not s.covers(GraphVariant(0.33, None))


def test_grid_order_and_its_refusal_of_a_range():
    seen = drive(GridStrategy({"prune": [None, 0.5, 0.3], "lowrank": [None, 0.9]}), score)
    assert seen[0] == GraphVariant() and seen[1:3] == [GraphVariant(None, 0.9), GraphVariant(0.3, None)] and len(seen) == 6
    with pytest.raises(BadInputError, match="a range is searched by --strategy optuna"):
        GridStrategy({"prune": PruneRange(0, 0.5), "lowrank": [None]})


@pytest.mark.parametrize("text, expected", [("0:0.6", PruneRange(0.0, 0.6)), ("0.1:0.5", PruneRange(0.1, 0.5)),
                                            ("0,0.3", [None, 0.3])])
def test_prune_space_parsing(text, expected):
    assert parse_prune_space(text) == expected


@pytest.mark.parametrize("text, words", [("0.6:0.2", "0 <= LOW < HIGH < 1"), ("0:1", "0 <= LOW < HIGH < 1"),
                                         ("a:b", "a range is LOW:HIGH with two numbers")])
def test_bad_prune_ranges(text, words):
    with pytest.raises(BadInputError, match=words):
        parse_prune_space(text)
