"""Shared fixtures: small hand-built models and an isolated cache/config directory for every test."""

from __future__ import annotations

import builtins

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep every test away from the real user config and cache (targets.toml, compiled-model caches)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("EDGECC_CACHE_DIR", str(home / "cache" / "edgecc"))


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8, domains=()):
    """A small ONNX model from onnx.helper parts (opset 17, IR 8 unless told)."""
    graph = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [oh.make_operatorsetid("", opset)] + [oh.make_operatorsetid(d, 1) for d in domains]
    model = oh.make_model(graph, opset_imports=opsets, producer_name="edgecc-tests")
    model.ir_version = ir_version
    return model


@pytest.fixture
def dynamic_mlp_path(tmp_path):
    """x[N,8] -> MatMul(8x4) -> Relu -> y[N,4]; the batch dimension is dynamic."""
    w = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    model = make_model(
        [oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Relu", ["h"], ["y"])],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    return path


def install_entry_point_backend(tmp_path, monkeypatch, name, obj):
    """Install a backend of tests/plugins (``obj``: module:Class) through the ``edgecc.backends``
    entry-point group, as a pip-installed package would (a .dist-info with entry_points.txt on sys.path).
    Spawned children inherit sys.path, so they find it too. The registries are restored afterwards."""
    from pathlib import Path

    from edgecc.backends import registry
    from edgecc.targets import backend_settings

    site = tmp_path / f"site-{name}"
    dist = site / f"edgecc_{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: edgecc-{name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[edgecc.backends]\n{name} = {obj}\n")
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    monkeypatch.setattr(registry, "_instances", dict(registry._instances))
    monkeypatch.setattr(backend_settings, "_models", dict(backend_settings._models))
    return name


@pytest.fixture
def faulty_backend_installed(tmp_path, monkeypatch):
    """tests/plugins/faulty_backend.py installed as a third-party backend (see install_entry_point_backend)."""
    yield install_entry_point_backend(tmp_path, monkeypatch, "faulty", "faulty_backend:FaultyBackend")


@pytest.fixture
def board_backend_installed(tmp_path, monkeypatch):
    """tests/plugins/board_backend.py, a third-party backend with its own target settings model, installed."""
    yield install_entry_point_backend(tmp_path, monkeypatch, "board", "board_backend:BoardBackend")


@pytest.fixture
def user_metrics_installed(tmp_path, monkeypatch):
    """Install tests/plugins/user_metrics.py's mean_abs_error as the entry point ``mae`` of the ``edgecc.metrics``
    group (a .dist-info on sys.path, as pip would); the module itself is importable as ``user_metrics``."""
    from pathlib import Path

    site = tmp_path / "metrics-site"
    dist = site / "edgecc_user_metrics-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: edgecc-user-metrics\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edgecc.metrics]\nmae = user_metrics:mean_abs_error\n")
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    monkeypatch.syspath_prepend(str(site))
    yield "mae"


@pytest.fixture
def torch_missing(monkeypatch):
    """Imports of torch fail as they do where the ``train`` extra is not installed."""
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
