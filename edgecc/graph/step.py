"""What a graph step is: the contract every rewrite that compile, compare and search run implements.

A graph step is one small class: its ``name`` (the key in a recipe, in search's JSON and in variant ids), the
``flag`` the CLI gives it, its help, how a value is checked and labelled, whether search varies it, and
``apply``, which rewrites an ``onnx_ir.Model`` in place and returns the record kept in the artifact
manifest's ``passes``. Which steps exist, and in which order they run, is edgecc.graph.steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import onnx_ir as ir

from ..errors import BadInputError

if TYPE_CHECKING:
    import numpy as np

    from ..data import DataSpec
    from .io import PreparedModel


#: ``progress(text)``: one line saying what a long step is doing now (the CLI shows it on stderr)
StepProgress = Callable[[str], None]


@dataclass
class StepContext:
    """What a step may read besides the model: real samples (the run's calibration data; None or random:
    the step works without data), the model before any step ran, and where to report progress (or None)."""

    prepared: PreparedModel
    data: DataSpec | None = None
    original: ir.Model | None = None
    progress: StepProgress | None = None
    _batches: list[dict[str, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def measured(self) -> bool:
        """Whether real samples are there to measure on."""
        return self.data is not None and not self.data.is_random

    def batches(self) -> list[dict[str, np.ndarray]]:
        """The samples as onnxruntime feeds (read once)."""
        if self._batches is None:
            from ..data import load_dataset

            self._batches = load_dataset(self.data, self.prepared.inputs).batches
        return self._batches


@dataclass(frozen=True)
class ValueRange:
    """``--FLAG LOW:HIGH`` for search: any value in [low, high] in steps of ``step`` (low 0 is "off")."""

    low: float
    high: float
    step: float = 0.05

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}"


Space = list[object] | ValueRange


class GraphStep(ABC):
    """One graph rewrite. ``value`` is a float (a ratio, an energy) or True; None means the step is off."""

    name: ClassVar[str]
    flag: ClassVar[str]
    help: ClassVar[str]
    #: float steps take a number; bool steps are a switch
    value_type: ClassVar[type] = float
    #: what search's --FLAG means, or None when search does not vary this step
    search_help: ClassVar[str | None] = None
    #: the search flag's default: the step off
    search_default: ClassVar[str] = "off"
    #: words that mean "off" in a search list
    off_words: ClassVar[tuple[str, ...]] = ("off", "none")
    #: whether a LOW:HIGH range is accepted by search
    takes_range: ClassVar[bool] = False
    #: whether the step measures on the run's calibration data (compile commands then pass it on)
    measures_on_data: ClassVar[bool] = False

    @property
    def searchable(self) -> bool:
        return self.search_help is not None

    def check(self, value: object) -> None:
        """Reject a bad value for compile/compare (BadInputError) before any model is loaded."""

    def check_context(self, value: object, ctx: StepContext) -> None:
        """Reject what the run gives the step (its data) before any step of the recipe runs (BadInputError)."""

    def check_in_list(self, value: float) -> None:
        """Reject a bad value in search's list (its message names the list form)."""
        self.check(value)

    def label(self, value: object) -> str:
        """This step's part of a variant key: ``prune0.3``, ``prune0``."""
        return f"{self.name}{'off' if value is None else f'{value:g}'}"

    def order(self, value: object) -> float:
        """Search measures milder rewrites first: smaller is milder."""
        return 0.0 if value is None else float(value)

    def off_choice(self) -> object:
        """How "off" appears among Optuna's categorical choices."""
        return "off"

    def parse_values(self, text: str) -> list[object]:
        """Search's comma-separated list: each value checked, "off" words as None, duplicates dropped."""
        values: list[object] = []
        for item in (t.strip() for t in text.split(",")):
            if not item:
                continue
            if item.lower() in self.off_words:
                value = None
            else:
                try:
                    value = float(item)
                except ValueError:
                    raise BadInputError(f"{self.flag} '{text}': '{item}' is not a number") from None
                value = self.from_number(value)
            if value not in values:
                values.append(value)
        if not values:
            raise BadInputError(f"{self.flag} is empty")
        return values

    def from_number(self, value: float) -> float | None:
        self.check_in_list(value)
        return value

    def parse_space(self, text: str) -> Space:
        """A list, or LOW:HIGH where the step takes ranges."""
        if ":" not in text or not self.takes_range:
            return self.parse_values(text)
        low_text, _, high_text = text.partition(":")
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise BadInputError(f"{self.flag} '{text}': a range is LOW:HIGH with two numbers, e.g. 0:0.6") from None
        if not 0.0 <= low < high < 1.0:
            raise BadInputError(f"{self.flag} '{text}': a range needs 0 <= LOW < HIGH < 1")
        return ValueRange(low, high)

    @abstractmethod
    def apply(self, model: ir.Model, value: object, ctx: StepContext) -> str:
        """Rewrite ``model`` in place; returns the record for the manifest's passes."""
