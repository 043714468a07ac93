"""The search grid and the flags that describe it: prune ratios, low-rank energies, the time budget."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadInputError


@dataclass(frozen=True, order=True)
class GraphVariant:
    """One rewrite of the graph: ``prune`` ratio and ``lowrank`` energy (None: that step is off)."""

    prune: float | None = None
    lowrank: float | None = None

    @property
    def key(self) -> str:
        """A stable label, part of every variant id: ``prune0.3-lowrank0.95``, ``prune0-lowrankoff``."""
        lr = "off" if self.lowrank is None else f"{self.lowrank:g}"
        return f"prune{self.prune or 0:g}-lowrank{lr}"

    @property
    def is_original(self) -> bool:
        return self.prune is None and self.lowrank is None


def _numbers(text: str, flag: str, off_words: tuple[str, ...]) -> list[float | None]:
    values: list[float | None] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item.lower() in off_words:
            values.append(None)
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise BadInputError(f"{flag} '{text}': '{item}' is not a number") from None
    if not values:
        raise BadInputError(f"{flag} is empty")
    return values


def parse_prune(text: str) -> list[float | None]:
    """``0,0.3,0.5`` -> [None, 0.3, 0.5]: 0 means no pruning; other ratios must lie in (0, 1)."""
    out: list[float | None] = []
    for v in _numbers(text, "--prune", ()):
        if v == 0:
            v = None
        elif not 0.0 < v < 1.0:
            raise BadInputError(f"--prune: every ratio must be 0 (off) or between 0 and 1 (exclusive), got {v:g}")
        if v not in out:
            out.append(v)
    return out


def parse_lowrank(text: str) -> list[float | None]:
    """``off,0.95`` -> [None, 0.95]: energies kept by the factorisation, in (0, 1]."""
    out: list[float | None] = []
    for v in _numbers(text, "--lowrank", ("off", "none")):
        if v is not None and not 0.0 < v <= 1.0:
            raise BadInputError(f"--lowrank: every energy must be 'off' or in (0, 1], got {v:g}")
        if v not in out:
            out.append(v)
    return out


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_time_budget(text: str) -> float:
    """``30m``, ``90s``, ``1.5h``, ``45`` (seconds) -> seconds (>= 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h)?\s*", text.lower())
    if m is None:
        raise BadInputError(f"--time-budget '{text}': expected a duration such as 30m, 90s, 1.5h or a number of seconds")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def grid(prune: list[float | None], lowrank: list[float | None]) -> list[GraphVariant]:
    """Every pair, the original graph first (it is the baseline every other variant is measured against),
    then cheapest rewrites first, so a short budget measures the mild ones."""
    variants = {GraphVariant(p, l) for p in prune for l in lowrank} | {GraphVariant()}
    return sorted(variants, key=lambda v: (not v.is_original, v.prune or 0.0, -(v.lowrank or 2.0)))
