"""TVM's per-target settings: a target's ``[target.tvm]`` table (pydantic only, no tvm)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...targets.settings import BackendSettings


class TvmTargetSettings(BackendSettings):
    """The TVM target as its JSON-dict fields (TVM 0.27 takes targets as dicts)."""

    kind: Literal["llvm", "cuda"] = "llvm"
    mtriple: str
    mcpu: str
    mattr: tuple[str, ...] = ()
    num_cores: int = Field(ge=1)

    def to_tvm_dict(self) -> dict[str, object]:
        """The dict ``tvm.target.Target`` accepts."""
        d: dict[str, object] = {"kind": self.kind, "mtriple": self.mtriple, "mcpu": self.mcpu, "num-cores": self.num_cores}
        if self.mattr:
            d["mattr"] = list(self.mattr)
        return d
