"""Per-backend target settings: each backend owns the model of its [target.<backend>] table, and one
installed through the edgecc.backends entry-point group gets typed, validated settings too."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgecc.backends import get_backend, registry
from edgecc.backends.openvino.settings import OpenVinoSettings
from edgecc.backends.tvm.settings import TvmTargetSettings
from edgecc.cli import app
from edgecc.errors import EXIT_BAD_INPUT, BadInputError
from edgecc.targets import BackendSettings, backend_settings, detect_host, load_registry
from edgecc.targets.settings import SettingsRegistry

BOARD_TARGET = """
[[target]]
name = "my-board"
kind = "npu"
description = "a board with an NPU"
device_class = "single-board-computer"
preferred_backend = "board"
arch = "aarch64"
cpu = "Cortex-A55"
cores = 4
npu = "my NPU"
peak_fp32_gflops = 20
memory_gib = 4

[target.board]
clock_mhz = 800
mode = "exact"

[target.onnxruntime]
"""


def test_builtin_tables_are_typed_by_their_backends_models():
    reg = load_registry()
    assert backend_settings.names()[:4] == ["onnxruntime", "openvino", "tvm", "tensorrt"]
    npu = reg.get("intel-npu")
    assert isinstance(npu.openvino, OpenVinoSettings) and npu.settings_for("openvino").device == "NPU"
    assert isinstance(detect_host().tvm, TvmTargetSettings) and reg.get("raspberry-pi-4").openvino is None
    assert get_backend("openvino").target_support(reg.get("raspberry-pi-4")) == (
        "target raspberry-pi-4 does not list backend openvino; its backends: tvm, onnxruntime"
    )


def test_entry_point_backend_gets_typed_target_settings(board_backend_installed, tmp_path):
    f = tmp_path / "targets.toml"
    f.write_text(BOARD_TARGET)
    target = load_registry(f).get("my-board")
    settings = target.settings_for("board")
    assert type(settings).__name__ == "BoardSettings" and isinstance(settings, BackendSettings)
    assert (settings.clock_mhz, settings.mode) == (800, "exact") and target.board == settings
    assert target.backends() == ["board", "onnxruntime"]
    board = get_backend("board")
    assert board.target_support(target) is None
    assert board.target_support(detect_host()) == (
        "target host does not list backend board; its backends: openvino, onnxruntime, tvm"
    )
    dumped = target.model_dump(mode="json")
    assert dumped["board"] == {"clock_mhz": 800, "mode": "exact"} and dumped["tensorrt"] is None
    assert load_registry(f).get("my-board") == target


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("clock_mhz = 800", "clock_mhz = 0", "target my-board: board.clock_mhz: Input should be greater than 0"),
        ('mode = "exact"', 'mode = "slow"', "target my-board: board.mode: Input should be 'fast' or 'exact'"),
        ('mode = "exact"', "turbo = true", "target my-board: board.turbo: Extra inputs are not permitted"),
        ("[target.board]", "[target.bord]", "target my-board: bord: Extra inputs are not permitted"),
    ],
)
def test_entry_point_backend_settings_are_validated(board_backend_installed, tmp_path, old, new, message):
    f = tmp_path / "targets.toml"
    f.write_text(BOARD_TARGET.replace(old, new))
    with pytest.raises(BadInputError) as e:
        load_registry(f)
    assert str(e.value) == f"{f}: {message}"
    result = CliRunner().invoke(app, ["targets", "--json", "--targets-file", str(f)])
    assert result.exit_code == EXIT_BAD_INPUT and result.stdout == ""
    assert " ".join(result.stderr.split()) == f"error: {f}: {message}"


def test_cli_lists_the_entry_point_backends_settings(board_backend_installed, tmp_path):
    f = tmp_path / "targets.toml"
    f.write_text(BOARD_TARGET)
    result = CliRunner().invoke(app, ["targets", "--json", "--targets-file", str(f)])
    assert result.exit_code == 0, result.stderr
    mine = [t for t in json.loads(result.stdout) if t["name"] == "my-board"][0]
    assert mine["board"] == {"clock_mhz": 800, "mode": "exact"} and mine["onnxruntime"] == {"intra_op_threads": 0}
    assert list(mine)[list(mine).index("device") + 1:][:5] == ["onnxruntime", "openvino", "tvm", "tensorrt", "board"]


def test_settings_registry_rejects_a_conflicting_model():
    reg = SettingsRegistry()

    class A(BackendSettings):
        x: int = 0

    class B(BackendSettings):
        y: int = 0

    reg.register("a", A)
    reg.register("a", A)  # the same model again: no-op
    with pytest.raises(BadInputError, match="settings model B conflicts with A"):
        reg.register("a", B)
    with pytest.raises(BadInputError, match="must subclass edgecc.targets.BackendSettings"):
        reg.register("c", dict)  # type: ignore[arg-type]
    assert reg.names() == ["a"] and reg.get("a") is A and reg.get("nope") is None
    assert "board" not in registry.names()  # the plugin of other tests is uninstalled again
