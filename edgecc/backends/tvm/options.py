"""The TVM backend's options (``--option KEY=VALUE``, ``--vary tvm.KEY=...``), validated once at the boundary."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..base import BackendOptions


class TvmOptions(BackendOptions):
    schedule: Literal["auto", "measured", "sampled", "naive"] = Field(
        "auto",
        description="schedule for functions the database does not cover: 'measured' times a few schedules drawn "
        "from MetaSchedule's default rules and the plain loops here, keeping the fastest (this machine's "
        "architecture only); 'sampled' keeps the first draw, unmeasured; 'naive' keeps TVM's plain loops; "
        "'auto' (default): measured when the target is this machine's architecture, else sampled",
    )
    tuned: bool = Field(False, description="apply the tuning database's records for this target (edgecc tune)")
    trials: int = Field(
        0, ge=0, description="tune this many MetaSchedule trials into the database first, as edgecc tune does (tasks "
        "the database holds cost nothing), then compile with its records; 0 (default): no tuning. Lets compare and "
        "search try trial budgets: --vary tvm.trials=0,64,256",
    )
    db: str | None = Field(None, description="tuning database directory; default: the user cache (tvm/tuning)")
    num_threads: int | None = Field(
        None, ge=1, description="runtime threads; default: the target's cores, capped at this machine's when run"
    )


def resolve_options(options: TvmOptions, target) -> TvmOptions:  # noqa: ANN001 - edgecc.targets.Target
    """``options`` with the runtime threads taken from the target's cores where unset."""
    return options.model_copy(update={"num_threads": options.num_threads or target.tvm.num_cores})
