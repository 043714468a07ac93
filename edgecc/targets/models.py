"""Target models: what edgecc knows about a device, as validated data.

A target is a discriminated union on ``kind`` (cpu, gpu, npu). Besides its fields, a target lists the
backends it serves as tables named after them; each table is validated with that backend's settings
model (edgecc.targets.settings), and a backend with a settings model serves a target only when the
target carries its table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel, ConfigDict, Field, PrivateAttr, SerializationInfo, TypeAdapter, ValidationError, model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails

from .settings import BackendSettings, backend_settings

Arch = Literal["x86_64", "aarch64"]
DeviceClass = Literal["server", "desktop", "laptop", "single-board-computer", "embedded-gpu", "accelerator", "cloud"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TargetBase(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    device_class: DeviceClass
    preferred_backend: str
    peak_fp32_gflops: float = Field(gt=0, description="published peak FP32 GFLOP/s (host: estimated, see peak_source)")
    peak_source: str = Field("published", description="where peak_fp32_gflops comes from")
    peak_int8_tops: float | None = Field(None, gt=0, description="published INT8 peak of an accelerator, TOPS")
    memory_bandwidth_gbs: float | None = Field(None, gt=0, description="peak DRAM bandwidth, GB/s (None: unknown)")
    memory_gib: float = Field(gt=0)
    device: str = Field("local", description="where it is reached: local, rpc://host:port[/key], ssh://user@host")
    # The backend tables, by backend name (validated in _backend_tables; written back after ``device``).
    _backend_settings: dict[str, BackendSettings] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _backend_tables(cls, data: Any, handler: Any) -> Any:
        """Validate the fields, and every other key as a backend's table with that backend's model.

        A key that names no registered backend is an unknown key (pydantic's own "Extra inputs are not
        permitted"); a bad value in a table is reported at ``<backend>.<key>``, as a field would be."""
        if not isinstance(data, dict):
            return handler(data)
        fields = {k: v for k, v in data.items() if k in cls.model_fields}
        tables: dict[str, BackendSettings] = {}
        errors: list[InitErrorDetails] = []
        for name, table in data.items():
            if name in cls.model_fields or table is None:  # None: the target does not list that backend
                continue
            model = backend_settings.get(name)
            if model is None:
                errors.append(InitErrorDetails(type="extra_forbidden", loc=(name,), input=table))
                continue
            try:
                tables[name] = model.model_validate(table)
            except ValidationError as e:
                errors.extend(_nested(e, name))
        try:
            target = handler(fields)
        except ValidationError as e:
            both = sorted([*_nested(e), *errors], key=cls._written_order)  # the first error is the one reported
            raise ValidationError.from_exception_data(cls.__name__, both) from None
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, sorted(errors, key=cls._written_order))
        order = backend_settings.names()
        target._backend_settings = dict(sorted(tables.items(), key=lambda kv: order.index(kv[0])))
        return target

    @classmethod
    def _written_order(cls, error: InitErrorDetails) -> int:
        """Where ``error``'s key is in a written-out target: fields up to ``device`` (0), the backend
        tables (1), the other fields (2); unknown keys last (3), as pydantic reports them."""
        names = list(cls.model_fields)
        key = str(error["loc"][0]) if error["loc"] else names[0]
        if key not in cls.model_fields:
            return 3 if error["type"] == "extra_forbidden" and len(error["loc"]) == 1 else 1
        return 0 if names.index(key) <= names.index("device") else 2

    @model_serializer(mode="wrap")
    def _write_tables(self, handler: Any, info: SerializationInfo) -> dict[str, Any]:
        """The fields, with every registered backend's table (None when not listed) after ``device``."""
        tables = {
            name: self._backend_settings[name].model_dump(mode=info.mode) if name in self._backend_settings else None
            for name in backend_settings.names()
        }
        if info.exclude_none:
            tables = {k: v for k, v in tables.items() if v is not None}
        out: dict[str, Any] = {}
        for key, value in handler(self).items():
            out[key] = value
            if key == "device":
                out.update(tables)
        return out

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            """``target.tvm``: a backend's table (None when the target does not list it), as for a field."""
            try:
                return super().__getattr__(name)
            except AttributeError:
                if name.startswith("_") or backend_settings.get(name) is None:
                    raise
                return self.settings_for(name)

    def settings_for(self, backend: str) -> BackendSettings | None:
        """This target's settings for ``backend``, or None when the target does not list that backend."""
        return self._backend_settings.get(backend)

    def backends(self) -> list[str]:
        """Backends this target lists settings for, preferred first."""
        return sorted(self._backend_settings, key=lambda b: b != self.preferred_backend)


class CpuTarget(_TargetBase):
    kind: Literal["cpu"] = "cpu"
    arch: Arch
    cpu: str = Field(description="the CPU model, e.g. 'Cortex-A72' or the host's model name")
    cores: int = Field(ge=1)
    isa: tuple[str, ...] = Field((), description="ISA extensions that matter for kernels: avx2, avx512f, avx512_vnni, amx_bf16, neon, dotprod...")


class GpuTarget(_TargetBase):
    kind: Literal["gpu"] = "gpu"
    arch: Arch = Field(description="the host CPU's architecture (Jetson: aarch64)")
    cpu: str
    cores: int = Field(ge=1, description="host CPU cores")
    gpu: str


class NpuTarget(_TargetBase):
    kind: Literal["npu"] = "npu"
    arch: Arch
    cpu: str
    cores: int = Field(ge=1, description="host CPU cores")
    npu: str


Target = Annotated[Union[CpuTarget, GpuTarget, NpuTarget], Field(discriminator="kind")]
TARGET_ADAPTER: TypeAdapter[Target] = TypeAdapter(Target)


def _nested(error: ValidationError, prefix: str | None = None) -> list[InitErrorDetails]:
    """``error``'s line errors, their locations under ``prefix`` (to raise again as one error)."""
    found = []
    for e in error.errors():
        detail = InitErrorDetails(type=e["type"], loc=((prefix, *e["loc"]) if prefix else tuple(e["loc"])), input=e["input"])
        if "ctx" in e:
            detail["ctx"] = e["ctx"]
        found.append(detail)
    return found
