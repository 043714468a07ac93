"""An onnx_ir model as a torch module whose trainable tensors are tied to the model's initializers.

The conversion is onnx2torch's (a torch.fx GraphModule, one submodule per ONNX node). Some of its node
converters take an initializer into a torch layer's parameters in the layer's own layout (Gemm into
``nn.Linear``: transposed unless transB, scaled by alpha/beta); the others keep each initializer as a
buffer of the ``initializers`` submodule. :class:`TiedTensor` records, for every tensor trained, the
initializer it came from and the map back, and the map is checked on the untrained tensors before
training starts: a converter that changed its layout fails there, not silently after training.

torch, onnx2torch and torchvision are imported here only, lazily (the ``train`` extra).
"""

from __future__ import annotations

import contextlib
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx_ir as ir

from ...errors import MissingExtra, UnsupportedError

INSTALL = 'pip install "edgecc[train]"'


def import_torch() -> Any:
    """torch, or MissingExtra (exit 3) naming the install command."""
    try:
        import torch
    except ImportError as exc:
        raise MissingExtra(f"fine-tuning needs torch, which is not installed ({exc}): {INSTALL}") from exc
    return torch


@contextlib.contextmanager
def _torchvision_optional():
    """onnx2torch imports torchvision for its NMS and RoiAlign converters only. PyPI's torchvision is a CUDA
    build whose kernels fail to load beside a CPU-only torch (RuntimeError "operator torchvision::nms does not
    exist"); then those two converters are left without it while onnx2torch is imported, and a model that
    uses NMS or RoiAlign fails to convert with a message saying so."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError, OSError) as exc:
        reason = f"torchvision cannot be imported here ({type(exc).__name__}: {exc})"

        def unavailable(*_args, **_kwargs):
            raise UnsupportedError(f"fine-tuning a model with NMS or RoiAlign needs torchvision: {reason}")

        saved = {k: v for k, v in sys.modules.items() if k == "torchvision" or k.startswith("torchvision.")}
        for k in saved:
            del sys.modules[k]
        stub, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.nms = ops.roi_align = ops.box_convert = unavailable
        stub.ops = ops
        sys.modules.update({"torchvision": stub, "torchvision.ops": ops})
        try:
            yield
        finally:
            del sys.modules["torchvision"], sys.modules["torchvision.ops"]
            sys.modules.update(saved)
        return
    yield


def import_onnx2torch() -> Any:
    import_torch()
    try:
        with _torchvision_optional():
            import onnx2torch
    except ImportError as exc:
        raise MissingExtra(f"fine-tuning needs onnx2torch, which is not installed ({exc}): {INSTALL}") from exc
    return onnx2torch


@dataclass
class TiedTensor:
    """One trained torch tensor and the initializer it writes back to: ``to_onnx`` maps its value (numpy,
    the torch layout) to the initializer's layout."""

    initializer: ir.Value
    tensor: Any  # torch.nn.Parameter
    to_onnx: Callable[[np.ndarray], np.ndarray]


@dataclass
class TorchModel:
    """A converted model: the fx module, the tensors tied to initializers, and the initializers left frozen
    (with why)."""

    module: Any
    tied: list[TiedTensor]
    frozen: dict[str, str]
    output_names: list[str]


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _gemm_maps(node: ir.Node) -> tuple[Callable, Callable]:
    alpha = node.attributes.get_float("alpha", 1.0)
    beta = node.attributes.get_float("beta", 1.0)
    trans_b = node.attributes.get_int("transB", 0) != 0
    weight = (lambda w: w / alpha) if trans_b else (lambda w: np.ascontiguousarray((w / alpha).T))
    return weight, (lambda b: b / beta)


def _layer_params(module: Any, node: ir.Node) -> list[tuple[Any, int, Callable]]:
    """(parameter, node input index, map to ONNX layout) for a torch layer onnx2torch built from ``node``."""
    import torch

    layer = module
    if isinstance(layer, torch.nn.Sequential):  # an explicit padding module before a convolution
        layer = layer[-1]
    if node.op_type in ("Conv", "ConvTranspose") and isinstance(layer, torch.nn.modules.conv._ConvNd):
        return [(layer.weight, 1, _same)] + ([(layer.bias, 2, _same)] if layer.bias is not None else [])
    if node.op_type == "Gemm" and isinstance(layer, torch.nn.Linear):
        weight, bias = _gemm_maps(node)
        return [(layer.weight, 1, weight)] + ([(layer.bias, 2, bias)] if layer.bias is not None else [])
    return []


def _trainable(value: ir.Value) -> str | None:
    """Why the initializer ``value`` is not trained, or None when it is."""
    tensor = value.const_value
    if tensor is None:
        return "no value"
    if tensor.dtype != ir.DataType.FLOAT:
        return f"dtype {tensor.dtype.name}"
    if tensor.size <= 1:
        return "a scalar constant"
    return None


def _buffer_inputs(gm: Any, modules: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """For each buffer of the ``initializers`` submodule: the (module name, ONNX value name) it feeds."""
    import inspect

    fed: dict[str, list[tuple[str, str]]] = {}
    for fx_node in gm.graph.nodes:
        if fx_node.op != "call_module" or fx_node.target not in modules:
            continue
        module = modules[fx_node.target]
        names = module.onnx_mapping.inputs
        params = list(inspect.signature(module.forward).parameters)
        slots = list(enumerate(fx_node.args)) + [(params.index(k), a) for k, a in fx_node.kwargs.items()]
        for index, arg in slots:
            if getattr(arg, "op", None) == "get_attr" and str(arg.target).startswith("initializers."):
                fed.setdefault(str(arg.target).split(".", 1)[1], []).append((fx_node.target, names[index]))
    return fed


def to_torch(model: ir.Model, *, train: bool) -> TorchModel:
    """Convert ``model`` (not modified; its nodes are named n0, n1... in a serialised copy) with onnx2torch.
    With ``train``, float initializers with more than one element become trainable and tied; the rest, and
    every tensor of a node the map does not know, stay frozen. UnsupportedError when an op cannot convert."""
    import torch

    onnx2torch = import_onnx2torch()
    proto = ir.serde.serialize_model(model)
    nodes = list(model.graph)
    for i, node_proto in enumerate(proto.graph.node):
        node_proto.name = f"n{i}"
    try:
        gm = onnx2torch.convert(proto, attach_onnx_mapping=True)
    except (NotImplementedError, KeyError, ValueError, RuntimeError) as exc:
        raise UnsupportedError(f"the model cannot be converted to torch for fine-tuning: {type(exc).__name__}: {exc}") from exc
    gm.eval()  # ONNX semantics: batch norm uses its stored statistics, dropout is off
    for p in gm.parameters():
        p.requires_grad_(False)
    modules = {f"n{i}": getattr(gm, f"n{i}") for i in range(len(nodes)) if hasattr(gm, f"n{i}")}
    candidates: list[TiedTensor] = []
    for name, module in modules.items():
        node = nodes[int(name[1:])]
        for param, index, to_onnx in _layer_params(module, node):
            candidates.append(TiedTensor(node.inputs[index], param, to_onnx))
    for buffer, uses in _buffer_inputs(gm, modules).items():
        value = model.graph.initializers.get(uses[0][1])
        if value is None:
            continue
        container = gm.initializers  # onnx2torch adds it only when a node reads an initializer as a buffer
        param = torch.nn.Parameter(container._buffers.pop(buffer), requires_grad=False)
        container.register_parameter(buffer, param)
        candidates.append(TiedTensor(value, param, _same))
    return _tie(gm, candidates, model, train, [v.name for v in model.graph.outputs])


def _tie(gm: Any, candidates: list[TiedTensor], model: ir.Model, train: bool, outputs: list[str]) -> TorchModel:
    by_value: dict[int, list[TiedTensor]] = {}
    for c in candidates:
        by_value.setdefault(id(c.initializer), []).append(c)
    tied, frozen = [], {}
    for group in by_value.values():
        value = group[0].initializer
        reason = "not trained" if not train else _trainable(value)
        if reason is None and len(group) > 1:
            reason = f"read by {len(group)} layers"
        if reason is None:
            _check_layout(group[0])
            group[0].tensor.requires_grad_(True)
            tied.append(group[0])
        else:
            frozen[value.name or "?"] = reason
    known = {id(c.initializer) for c in candidates}
    for value in model.graph.initializers.values():
        if id(value) not in known and _trainable(value) is None:
            frozen[value.name or "?"] = "its layer's torch form is not mapped back"
    return TorchModel(gm, tied, frozen, outputs)


def _check_layout(tie: TiedTensor) -> None:
    mapped = tie.to_onnx(tie.tensor.detach().cpu().numpy())
    original = tie.initializer.const_value.numpy()
    if mapped.shape != original.shape or not np.allclose(mapped, original, rtol=1e-6, atol=1e-7):
        raise UnsupportedError(
            f"initializer {tie.initializer.name}: its torch form does not map back to it "
            f"(shape {mapped.shape} vs {original.shape}); the converter's layout differs from the one expected"
        )


def write_back(torch_model: TorchModel) -> int:
    """Set every tied initializer of the converted model's source to its trained value; returns how many."""
    for tie in torch_model.tied:
        array = tie.to_onnx(tie.tensor.detach().cpu().numpy()).astype(np.float32)
        tie.initializer.const_value = ir.tensor(array, name=tie.initializer.name)
    return len(torch_model.tied)
