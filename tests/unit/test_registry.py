from __future__ import annotations

import pytest

from edgecc.backends import BackendRegistry, get_backend, registry
from edgecc.backends.onnxruntime import OnnxRuntimeBackend
from edgecc.errors import BadInputError, UnknownNameError


def test_unknown_backend_lists_known():
    with pytest.raises(UnknownNameError, match=r"unknown backend 'openvno' \(did you mean openvino\?\); known: .*onnxruntime"):
        get_backend("openvno")


def test_duplicates_rejected():
    reg = BackendRegistry()
    reg.register("onnxruntime", OnnxRuntimeBackend)
    with pytest.raises(BadInputError, match="already registered"):
        reg.register("onnxruntime", OnnxRuntimeBackend)


def test_entry_point_backend_is_found(faulty_backend_installed):
    assert "faulty" in registry.names()
    backend = get_backend("faulty")
    assert backend.name == "faulty" and backend.availability().available
    assert backend.parse_options({"fault": "hang"}).fault == "hang"
    with pytest.raises(BadInputError, match="faulty option fault"):
        backend.parse_options({"fault": "explode"})
