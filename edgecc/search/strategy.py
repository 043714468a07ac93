"""Which graph variant the search measures next: every one of a grid, or the ones Optuna's TPE sampler picks.

A strategy hands out graph variants one at a time (the original graph always first: it holds the baseline)
and is told each variant's score: the best speedup among its rows that stayed within the accuracy budget
(0 when none did). The grid ignores the scores. Optuna uses them to pick prune ratios (from a list, or any
step of a range such as 0:0.6) and low-rank energies where the fast variants that keep accuracy are, which
a coarse grid can step over: the largest ratio within budget lies between two grid points.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BackendUnavailable, BadInputError
from .grid import GraphVariant, grid

#: the step a prune range (``0:0.6``) is searched in
PRUNE_STEP = 0.05
#: Optuna may suggest a variant already measured; after this many in a row the space is taken as exhausted
MAX_REPEATS = 25


@dataclass(frozen=True)
class PruneRange:
    """``--prune LOW:HIGH``: any ratio in [low, high] in steps of PRUNE_STEP (0 is unpruned)."""

    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}"


def parse_prune_space(text: str) -> list[float | None] | PruneRange:
    """``0,0.3,0.5`` (a list, as parse_prune) or ``0:0.6`` (a range, for --strategy optuna)."""
    from .grid import parse_prune

    if ":" not in text:
        return parse_prune(text)
    low_text, _, high_text = text.partition(":")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise BadInputError(f"--prune '{text}': a range is LOW:HIGH with two numbers, e.g. 0:0.6") from None
    if not 0.0 <= low < high < 1.0:
        raise BadInputError(f"--prune '{text}': a range needs 0 <= LOW < HIGH < 1")
    return PruneRange(low, high)


class GridStrategy:
    """Every (prune, low-rank) pair, original first, mildest rewrites next."""

    stops_when_time_is_up = False  # variants of an earlier run later in the grid are still taken

    def __init__(self, prune: list[float | None] | PruneRange, lowrank: list[float | None]):
        if isinstance(prune, PruneRange):
            raise BadInputError(f"--prune {prune}: a range is searched by --strategy optuna; the grid takes a list "
                                "such as 0,0.3,0.5")
        self.plan = grid(list(prune), list(lowrank))
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

    def __init__(self, prune: list[float | None] | PruneRange, lowrank: list[float | None], max_variants: int,
                 known: list[GraphVariant], seed: int = 0):
        try:
            import optuna
            from optuna.distributions import CategoricalDistribution, FloatDistribution
        except ImportError:
            raise BackendUnavailable('--strategy optuna needs optuna: pip install "edgecc[search]"') from None
        if max_variants < 1:
            raise BadInputError("--max-variants must be >= 1")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.prune, self.lowrank = prune, list(lowrank)
        lr_choices = ["off" if v is None else v for v in self.lowrank]
        if isinstance(prune, PruneRange):
            prune_dist = FloatDistribution(prune.low, prune.high, step=PRUNE_STEP)
            self.total = max_variants
        else:  # a finite space: at most every pair, and the original
            prune_dist = CategoricalDistribution([0.0 if v is None else v for v in prune])
            size = len({GraphVariant(p, lr) for p in prune for lr in self.lowrank} | {GraphVariant()})
            self.total = min(max_variants, size)
        self._space = {"prune": prune_dist, "lowrank": CategoricalDistribution(lr_choices)}
        self._study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._queue = [GraphVariant()] + [v for v in known if not v.is_original and self.covers(v)]
        self._scores: dict[GraphVariant, float] = {}
        self._pending: dict[GraphVariant, object] = {}

    def covers(self, variant: GraphVariant) -> bool:
        prune = variant.prune or 0.0
        if isinstance(self.prune, PruneRange):
            steps = (prune - self.prune.low) / PRUNE_STEP
            in_prune = self.prune.low <= prune <= self.prune.high and abs(steps - round(steps)) < 1e-6
        else:
            in_prune = prune in [p or 0.0 for p in self.prune]
        return in_prune and variant.lowrank in self.lowrank

    def _variant(self, params: dict[str, object]) -> GraphVariant:
        prune = round(float(params["prune"]), 4)
        lowrank = params["lowrank"]
        return GraphVariant(prune or None, None if lowrank == "off" else float(lowrank))

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
            params = {"prune": variant.prune or 0.0, "lowrank": "off" if variant.lowrank is None else variant.lowrank}
            self._study.add_trial(self._optuna.trial.create_trial(params=params, distributions=self._space, value=score))
