"""The graph-step registry: the rewrites compile, compare and search run before a backend sees the model.

Steps (edgecc.graph.step.GraphStep) run in registry order. The CLI's options for compile/compare/search, a
recipe's checks and search's grid are all read from :data:`STEPS`: a new step is its own module plus one line
in ``_BUILTIN`` below (or a ``register_step`` call from elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import BadInputError, VerificationError
from .finetune.step import FinetuneStep
from .lowrank.step import LowRankStep
from .passes.step import OptimizeStep
from .prune.step import PruneStep
from .step import GraphStep, Space, StepContext, StepProgress, ValueRange

if TYPE_CHECKING:
    from ..data import DataSpec
    from .io import PreparedModel

__all__ = ["STEPS", "GraphRecipe", "GraphStep", "Space", "StepContext", "StepProgress", "StepsOutcome", "ValueRange",
           "apply_recipe", "get_step", "register_step", "searchable_steps"]

STEPS: dict[str, GraphStep] = {}


def register_step(step: GraphStep) -> GraphStep:
    """Add ``step`` after those registered before it (steps run in this order); a taken name is an error."""
    if step.name in STEPS:
        raise ValueError(f"graph step '{step.name}' is registered already")
    STEPS[step.name] = step
    return step


def get_step(name: str) -> GraphStep:
    try:
        return STEPS[name]
    except KeyError:
        raise BadInputError(f"unknown graph step '{name}'; known: {', '.join(STEPS)}") from None


def searchable_steps() -> list[GraphStep]:
    return [s for s in STEPS.values() if s.searchable]


class GraphRecipe:
    """Which graph steps run, with their values (steps that are off are left out); immutable and hashable.

    ``GraphRecipe(prune=0.3, lowrank=None)``; positional values follow the searchable steps' order
    (``GraphRecipe(0.3, 0.9)``). ``recipe.prune`` reads a step's value (None when off)."""

    __slots__ = ("_values",)

    def __init__(self, *positional: object, **values: object) -> None:
        for step, value in zip(searchable_steps(), positional):
            values.setdefault(step.name, value)
        for name in values:
            get_step(name)  # an unknown name fails with the known ones
        ordered = tuple((n, values[n]) for n in STEPS if values.get(n) is not None and values.get(n) is not False)
        object.__setattr__(self, "_values", ordered)

    def __getattr__(self, name: str) -> object:
        if name.startswith("_") or name not in STEPS:
            raise AttributeError(name)
        return dict(self._values).get(name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a GraphRecipe is immutable")

    def __iter__(self) -> Iterator[tuple[GraphStep, object]]:
        return ((STEPS[n], v) for n, v in self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GraphRecipe) and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._values)

    def __lt__(self, other: GraphRecipe) -> bool:
        return self.sort_key < other.sort_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in self._values)})"

    def check(self) -> None:
        for step, value in self:
            step.check(value)

    def values(self) -> dict[str, object]:
        """Every registered step's value, None when off."""
        return {n: dict(self._values).get(n) for n in STEPS}

    @property
    def key(self) -> str:
        """A stable label over the searchable steps, part of every search variant id: ``prune0.3-lowrank0.95``."""
        return "-".join(s.label(getattr(self, s.name)) for s in searchable_steps())

    @property
    def is_original(self) -> bool:
        return not self._values

    @property
    def sort_key(self) -> tuple[object, ...]:
        """The original first, then the mildest rewrites."""
        return (not self.is_original, *(s.order(getattr(self, s.name)) for s in searchable_steps()))

    def to_json(self) -> dict[str, object]:
        """The searchable steps' values, keyed by step name (search's JSON)."""
        return {s.name: getattr(self, s.name) for s in searchable_steps()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> GraphRecipe:
        return cls(**{s.name: data.get(s.name) for s in searchable_steps()})


@dataclass
class StepsOutcome:
    """What a recipe did: pass records for the manifest and notes with FLOPs and the output difference."""

    passes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def apply_recipe(prepared: PreparedModel, recipe: GraphRecipe, data: DataSpec | None = None,
                 progress: StepProgress | None = None) -> StepsOutcome:
    """Rewrite ``prepared.model`` in place with every step of ``recipe``, in registry order; the result is
    checked against the original model in onnxruntime (interface unchanged; the output difference is noted).
    Long steps (fine-tuning) report what they do to ``progress(text)``."""
    if not recipe:
        return StepsOutcome()
    from .analysis import analyze
    from .equivalence import check_equivalent

    recipe.check()
    original = prepared.model.clone()
    before = analyze(original)
    ctx = StepContext(prepared, data, original, progress)
    for step, value in recipe:
        step.check_context(value, ctx)  # before any step spends time
    passes = [step.apply(prepared.model, value, ctx) for step, value in recipe]
    after = analyze(prepared.model)
    eq = check_equivalent(original, prepared.model)
    if eq.interface_changes:
        raise VerificationError(f"{prepared.source}: graph steps changed the model's interface: {eq.describe()} (a bug)")
    e = eq.error
    note = (f"graph steps {', '.join(passes)}: FLOPs {before.flops} -> {after.flops}, params {before.params} -> "
            f"{after.params}; outputs vs the original model: max abs error {e.max_abs_error:.3g}, cosine {e.cosine:.6f}")
    return StepsOutcome(passes, [note])


#: the built-in steps, in the order they run
_BUILTIN: tuple[GraphStep, ...] = (PruneStep(), LowRankStep(), FinetuneStep(), OptimizeStep())
for _step in _BUILTIN:
    register_step(_step)
