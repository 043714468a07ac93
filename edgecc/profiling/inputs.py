"""Seeded inputs for a model, with integer inputs kept in the range their consumers accept."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..errors import BadInputError
from ..graph.io import TensorSpec


def _index_bound(value: ir.Value) -> int | None:
    """The smallest table size among Gather nodes that index with ``value`` (e.g. a vocabulary)."""
    bounds = []
    for node, index in value.uses():
        if node.op_type == "Gather" and index == 1:
            data = node.inputs[0]
            axis = node.attributes.get_int("axis", 0)
            if data is not None and data.shape is not None and isinstance(data.shape[axis], int):
                bounds.append(data.shape[axis])
    return min(bounds) if bounds else None


def make_inputs(model: ir.Model | None, specs: list[TensorSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for ``specs``: floats ~ N(0, 1); integers in [0, table size) when they index a
    Gather of ``model``, otherwise in {0, 1}; booleans uniform."""
    rng = np.random.default_rng(seed)
    values = {v.name: v for v in model.graph.inputs} if model is not None else {}
    feeds = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        elif dtype.kind in "iu":
            bound = _index_bound(values[spec.name]) if spec.name in values else None
            feeds[spec.name] = rng.integers(0, bound or 2, size=spec.shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, size=spec.shape).astype(bool)
        else:
            raise BadInputError(f"input '{spec.name}' has dtype {spec.dtype}, which edgecc cannot generate data for")
    return feeds


def load_inputs(path: str, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Inputs from an .npz file whose keys are the model's input names; shapes and dtypes must match."""
    try:
        with np.load(path, allow_pickle=False) as data:
            feeds = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise BadInputError(f"{path}: cannot read inputs (.npz with one array per model input): {e}") from None
    expected = {s.name: s for s in specs}
    if set(feeds) != set(expected):
        raise BadInputError(f"{path}: arrays {sorted(feeds)} do not match the model inputs {sorted(expected)}")
    for name, spec in expected.items():
        if tuple(feeds[name].shape) != spec.shape or feeds[name].dtype.name != spec.dtype:
            raise BadInputError(
                f"{path}: '{name}' is {feeds[name].dtype.name}{list(feeds[name].shape)}, the model needs {spec.dtype}{list(spec.shape)}"
            )
    return feeds
