"""Load, validate, make static and save ONNX models, on onnx_ir.

A model reference is a path to an .onnx file (external data beside it is followed) or ``zoo:NAME``
for a bundled model. :func:`prepare_model` is the one entry point the API uses: it loads, validates
with the full ``onnx.checker``, fixes dynamic input dimensions, infers shapes and sets an IR version
onnxruntime accepts.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import ShapeInferencePass

from ..errors import BadInputError, EdgeccWarning, ModelError

ZOO_PREFIX = "zoo:"
# onnxruntime has no kernels for most ops before opset 7; older models need onnx.version_converter.
MIN_OPSET = 7
# onnxruntime 1.31 rejects IR versions above this; onnx 1.23 writes 14 by default.
MAX_IR_VERSION = 10
# protobuf cannot hold more than 2 GiB: larger models keep their weights in external data.
EXTERNAL_DATA_THRESHOLD = 1 << 30

_SHAPE_RE = re.compile(r"^(?P<name>.+):(?P<dims>\d+(,\d+)*)$")


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, numpy dtype name and static shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class PreparedModel:
    """A validated model with static input shapes, ready for passes and backends."""

    model: ir.Model
    source: str
    name: str
    sha256: str

    @property
    def inputs(self) -> list[TensorSpec]:
        return [_spec(v) for v in self.model.graph.inputs]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [_spec(v) for v in self.model.graph.outputs]


def _spec(value: ir.Value) -> TensorSpec:
    dims = tuple(d if isinstance(d, int) else -1 for d in (value.shape or ()))
    dtype = np.dtype(value.dtype.numpy()).name if value.dtype is not None else "unknown"
    return TensorSpec(value.name or "", dtype, dims)


def parse_input_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME:D0,D1,...`` flags into {name: dims}. Names may contain ':'; dims are positive ints."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or ():
        for part in _split_specs(spec):
            m = _SHAPE_RE.match(part.strip())
            if not m:
                raise BadInputError(f"malformed --input-shape '{part}': expected NAME:D0,D1,... e.g. input:1,3,224,224")
            dims = tuple(int(d) for d in m.group("dims").split(","))
            if any(d <= 0 for d in dims):
                raise BadInputError(f"--input-shape '{part}': every dimension must be a positive integer")
            if m.group("name") in shapes:
                raise BadInputError(f"--input-shape gives '{m.group('name')}' twice")
            shapes[m.group("name")] = dims
    return shapes


def input_shapes_arg(
    shapes: dict[str, tuple[int, ...]] | list[str] | tuple[str, ...] | None,
) -> dict[str, tuple[int, ...]]:
    """Input shapes as the API takes them: a {name: dims} dict as is, ``--input-shape`` values
    (``NAME:D0,D1,...``, parse_input_shapes) parsed, None as no shapes."""
    if shapes is None or isinstance(shapes, dict):
        return dict(shapes or {})
    return parse_input_shapes(shapes)


def _split_specs(spec: str) -> list[str]:
    # Several shapes may be given in one flag separated by spaces or ';'.
    return [p for p in re.split(r"[;\s]+", spec) if p]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_zoo(name: str) -> tuple[onnx.ModelProto, dict[str, tuple[int, ...]]]:
    from .. import zoo

    entry = zoo.get(name)
    return entry.build(0), dict(entry.default_shapes)


def _check_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Name the missing or short external data file before onnx fails on it less clearly."""
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        data_path = (path.parent / location).resolve()
        if not location or not data_path.is_file():
            raise ModelError(f"{path}: initializer '{tensor.name}' refers to external data file '{location}', which is missing")
        offset, length = int(info.get("offset", 0)), info.get("length")
        size = data_path.stat().st_size
        if length is not None and offset + int(length) > size:
            raise ModelError(
                f"{path}: external data file '{location}' is too short for initializer '{tensor.name}' "
                f"(needs {offset + int(length)} bytes, has {size})"
            )


def _all_tensors(proto: onnx.ModelProto):
    yield from proto.graph.initializer
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t


def _read_file(path: Path) -> onnx.ModelProto:
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected an .onnx file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: file is empty")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError and others; all mean "not an ONNX model"
        raise ModelError(f"{path}: not a valid ONNX model (cannot parse protobuf: {e})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{path}: not a valid ONNX model (no graph)")
    _check_external_data(proto, path)
    return proto


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:300] + "...") if len(text) > 300 else (text or type(e).__name__)


def _validate(proto: onnx.ModelProto, path: Path | None, source: str) -> None:
    """The full onnx.checker, plus what it lets through that no backend can run."""
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    default = opsets.get("ai.onnx")
    newest = onnx.defs.onnx_opset_version()
    if default is not None and default < MIN_OPSET:
        raise ModelError(
            f"{source}: opset {default} is older than {MIN_OPSET}, the oldest edgecc supports; "
            "upgrade it with onnx.version_converter.convert_version"
        )
    if default is not None and default > newest:
        raise ModelError(f"{source}: opset {default} is newer than {newest}, the newest this onnx {onnx.__version__} knows")
    names = [o.name for o in proto.graph.output]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ModelError(f"{source}: invalid ONNX model: graph output name(s) {', '.join(dups)} appear more than once")
    try:
        if path is not None and any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_tensors(proto)):
            onnx.checker.check_model(str(path), full_check=True)
        else:
            onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ModelError(f"{source}: invalid ONNX model: {_one_line(e)}") from None


def warn_non_finite(model: ir.Model, source: str) -> None:
    """Warn (not fail) about initializers holding NaN or Inf: the model may be broken or deliberately so."""
    import warnings

    bad = []
    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        if tensor is None or tensor.dtype is None or not tensor.dtype.is_floating_point():
            continue
        arr = tensor.numpy()
        count = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if count:
            bad.append(f"{name} ({count} of {arr.size})")
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"{source}: NaN or Inf in initializer(s) {shown}; outputs will likely be NaN", EdgeccWarning, stacklevel=2)


def load_model(ref: str | os.PathLike[str]) -> tuple[ir.Model, str, dict[str, tuple[int, ...]]]:
    """Load and validate a model: returns (model, sha256 of its bytes, default input shapes).

    Default shapes come from the zoo entry for ``zoo:`` references and are empty for files.
    """
    ref = str(ref)
    if ref.startswith(ZOO_PREFIX):
        proto, defaults = _load_zoo(ref[len(ZOO_PREFIX):])
        _validate(proto, None, ref)
        return ir.serde.deserialize_model(proto), hashlib.sha256(proto.SerializeToString()).hexdigest(), defaults
    path = Path(ref)
    proto = _read_file(path)
    _validate(proto, path, str(path))
    try:
        model = ir.load(path)
    except Exception as e:  # onnx_ir raises on anything it cannot represent; that is bad input
        raise ModelError(f"{path}: cannot be read into the graph IR: {_one_line(e)}") from None
    return model, sha256_file(path), {}


def fix_input_shapes(
    model: ir.Model, shapes: dict[str, tuple[int, ...]], defaults: dict[str, tuple[int, ...]] | None = None, source: str = "model"
) -> None:
    """Make every graph input static, in place, from ``shapes`` (then ``defaults``).

    Raises ModelError naming each input that stays dynamic, and BadInputError for a shape that names
    no input, has the wrong rank, or contradicts a static dimension.
    """
    inputs = {v.name: v for v in model.graph.inputs}
    unknown = [n for n in shapes if n not in inputs]
    if unknown:
        raise BadInputError(
            f"--input-shape names {', '.join(repr(n) for n in unknown)}, which the model does not have; "
            f"inputs: {', '.join(inputs)}"
        )
    missing = []
    for name, value in inputs.items():
        declared = tuple(value.shape) if value.shape is not None else None
        given = shapes.get(name) or (defaults or {}).get(name)
        if given is None:
            if declared is None or not all(isinstance(d, int) for d in declared):
                dims = "unknown rank" if declared is None else "[" + ",".join(str(d) for d in declared) + "]"
                missing.append(f"{name} {dims}")
            elif any(d == 0 for d in declared):
                raise ModelError(f"{source}: input '{name}' has a zero-sized dimension {list(declared)}")
            continue
        if declared is not None:
            if len(declared) != len(given):
                raise BadInputError(
                    f"--input-shape {name}: rank {len(given)} given, the model declares rank {len(declared)} {_fmt(declared)}"
                )
            for i, (d, g) in enumerate(zip(declared, given)):
                if isinstance(d, int) and d > 0 and d != g:
                    raise BadInputError(
                        f"--input-shape {name}: dimension {i} is {g}, but the model fixes it to {d} {_fmt(declared)}"
                    )
        value.shape = ir.Shape(list(given))
    if missing:
        example = " ".join(f"--input-shape {m.split()[0]}:D0,D1,..." for m in missing)
        raise ModelError(f"{source}: dynamic input shapes need values: {'; '.join(missing)} (give {example})")


def _fmt(dims: tuple) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def _fix_ir_version(model: ir.Model) -> None:
    """Lower the IR version to what onnxruntime accepts, but never below what the opsets need."""
    opsets = [onnx.helper.make_opsetid(domain, version) for domain, version in model.opset_imports.items()]
    try:
        needed = onnx.helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    except Exception:  # unknown domains only lower what we can say; keep the model's own value then
        needed = 3
    model.ir_version = max(needed, min(model.ir_version, MAX_IR_VERSION))


def _has_unknown_shapes(model: ir.Model) -> bool:
    for node in model.graph.all_nodes():
        for v in node.outputs:
            if v.shape is None or not all(isinstance(d, int) for d in v.shape):
                return True
    return False


def infer_shapes(model: ir.Model) -> None:
    """Infer every intermediate shape in place.

    onnx's inference first (it handles models past 2 GB through onnx_ir); where it leaves shapes
    unknown, as after a Slice whose bounds come from Shape ops in exported transformers,
    onnxruntime's symbolic inference fills them in.
    """
    ShapeInferencePass(check_type=True, strict_mode=False, data_prop=True)(model)
    if not _has_unknown_shapes(model) or model_bytes(model) > EXTERNAL_DATA_THRESHOLD:
        return
    import contextlib
    import tempfile

    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    # When it gives up it saves a debug copy of the model in the working directory: keep that out
    # of the user's directory.
    with tempfile.TemporaryDirectory(prefix="edgecc-shapes-") as tmp, contextlib.chdir(tmp):
        try:
            inferred = SymbolicShapeInference.infer_shapes(to_proto(model), auto_merge=False, guess_output_rank=False)
        except Exception:  # it gives up on ops it has no rule for (custom domains): keep what onnx found
            return
    if inferred is None:
        return
    found = ir.convenience.create_value_mapping(ir.serde.deserialize_model(inferred).graph)
    for name, value in ir.convenience.create_value_mapping(model.graph).items():
        new = found.get(name)
        if new is not None and new.shape is not None and all(isinstance(d, int) for d in new.shape):
            value.shape = new.shape


def prepare_model(
    ref: str | os.PathLike[str], input_shapes: dict[str, tuple[int, ...]] | None = None
) -> PreparedModel:
    """Load, validate, make static and shape-infer the model at ``ref`` (a path or ``zoo:NAME``)."""
    model, sha, defaults = load_model(ref)
    source = str(ref)
    warn_non_finite(model, source)
    fix_input_shapes(model, input_shapes or {}, defaults, source)
    _fix_ir_version(model)
    infer_shapes(model)
    name = source[len(ZOO_PREFIX):] if source.startswith(ZOO_PREFIX) else Path(source).stem
    return PreparedModel(model=model, source=source, name=name, sha256=sha)


def model_bytes(model: ir.Model) -> int:
    """Bytes of all initializers (the size the weights take on disk or in memory)."""
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def save_model(model: ir.Model, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` to ``path``; weights go to ``<name>.data`` beside it when they pass 1 GiB."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model_bytes(model) > EXTERNAL_DATA_THRESHOLD:
        ir.save(model, path, external_data=path.name + ".data")
    else:
        ir.save(model, path)
    return path


def to_proto(model: ir.Model) -> onnx.ModelProto:
    return ir.serde.serialize_model(model)
