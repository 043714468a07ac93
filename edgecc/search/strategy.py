"""Which graph variant the search measures next: every one of a grid, or the ones Optuna's TPE sampler picks.

A strategy hands out graph variants one at a time (the original graph always first: it holds the baseline)
and is told each variant's score: the best speedup among its rows that stayed within the accuracy budget
(0 when none did). The grid ignores the scores. Optuna uses them to pick prune ratios (from a list, or any
step of a range such as 0:0.6) and the other steps' values where the fast variants that keep accuracy are, which
a coarse grid can step over: the largest ratio within budget lies between two grid points.
"""

from __future__ import annotations

from ..errors import BackendUnavailable, BadInputError
from ..graph.steps import ValueRange, get_step
from .grid import GraphVariant, Spaces, default_spaces, grid

#: Optuna may suggest a variant already measured; after this many in a row the space is taken as exhausted
MAX_REPEATS = 25


class GridStrategy:
    """Every combination of the steps' values, original first, mildest rewrites next."""

    stops_when_time_is_up = False  # variants of an earlier run later in the grid are still taken

    def __init__(self, spaces: Spaces):
        self.plan = grid(spaces)
        self.total = len(self.plan)
        self._next = 0

    def covers(self, variant: GraphVariant) -> bool:
        return variant in self.plan

    def next(self) -> GraphVariant | None:
        if self._next >= len(self.plan):
            return None
        self._next += 1
        return self.plan[self._next - 1]

    def tell(self, variant: GraphVariant, score: float) -> None:
        pass


class OptunaStrategy:
    """Up to ``max_variants`` graph variants: the original, the earlier run's variants in the space, then
    what Optuna's TPE sampler (seeded) asks for, maximising the score."""

    stops_when_time_is_up = True

    def __init__(self, spaces: Spaces, max_variants: int, known: list[GraphVariant], seed: int = 0):
        try:
            import optuna
            from optuna.distributions import CategoricalDistribution, FloatDistribution
        except ImportError:
            raise BackendUnavailable('--strategy optuna needs optuna: pip install "edgecc[search]"') from None
        if max_variants < 1:
            raise BadInputError("--max-variants must be >= 1")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.spaces = default_spaces() | spaces
        self._space = {}
        for name, space in self.spaces.items():
            if isinstance(space, ValueRange):
                self._space[name] = FloatDistribution(space.low, space.high, step=space.step)
            else:
                off = get_step(name).off_choice()
                self._space[name] = CategoricalDistribution([off if v is None else v for v in space])
        finite = not any(isinstance(space, ValueRange) for space in self.spaces.values())
        # a finite space: at most every combination, and the original
        self.total = min(max_variants, len(grid(self.spaces))) if finite else max_variants
        self._study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._queue = [GraphVariant()] + [v for v in known if not v.is_original and self.covers(v)]
        self._scores: dict[GraphVariant, float] = {}
        self._pending: dict[GraphVariant, object] = {}

    def covers(self, variant: GraphVariant) -> bool:
        for name, space in self.spaces.items():
            value = getattr(variant, name)
            if isinstance(space, ValueRange):
                v = value or 0.0
                steps = (v - space.low) / space.step
                if not (space.low <= v <= space.high and abs(steps - round(steps)) < 1e-6):
                    return False
            elif value not in space:
                return False
        return True

    def _variant(self, params: dict[str, object]) -> GraphVariant:
        values = {}
        for name, value in params.items():
            off = value == get_step(name).off_choice()
            values[name] = None if off else (round(float(value), 4) or None)
        return GraphVariant(**values)

    def _params(self, variant: GraphVariant) -> dict[str, object]:
        return {name: get_step(name).off_choice() if getattr(variant, name) is None else getattr(variant, name)
                for name in self.spaces}

    def next(self) -> GraphVariant | None:
        if len(self._scores) >= self.total:
            return None
        while self._queue:
            v = self._queue.pop(0)
            if v not in self._scores:
                return v
        for _ in range(MAX_REPEATS):
            trial = self._study.ask(self._space)
            v = self._variant(trial.params)
            if v in self._scores:  # already measured: Optuna learns its score again, nothing is run
                self._study.tell(trial, self._scores[v])
                continue
            self._pending[v] = trial
            return v
        return None

    def tell(self, variant: GraphVariant, score: float) -> None:
        self._scores[variant] = score
        trial = self._pending.pop(variant, None)
        if trial is not None:
            self._study.tell(trial, score)
        elif self.covers(variant):  # the original and an earlier run's variants: told as finished trials
            self._study.add_trial(self._optuna.trial.create_trial(params=self._params(variant), distributions=self._space,
                                                                  value=score))
