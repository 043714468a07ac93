from __future__ import annotations

import pytest

from edgecc.errors import BadInputError, UnknownNameError
from edgecc.targets import CpuTarget, GpuTarget, detect_host, load_registry, user_targets_file

REQUIRED = [
    "host", "intel-core-avx2", "intel-xeon-avx512", "intel-xeon-sapphire-rapids", "intel-npu", "raspberry-pi-4",
    "raspberry-pi-5", "rk3588", "aws-graviton3", "jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "jetson-agx-orin",
]


def test_builtin_targets_present_and_complete():
    reg = load_registry()
    assert set(REQUIRED) <= set(reg.names())
    for t in reg.all():
        assert t.description and t.peak_fp32_gflops > 0 and t.memory_gib > 0, t.name
        assert t.preferred_backend in t.backends(), t.name
        if t.name != "host":
            assert t.memory_bandwidth_gbs and t.memory_bandwidth_gbs > 0, t.name


def test_arm_and_jetson_settings():
    reg = load_registry()
    rpi4 = reg.get("raspberry-pi-4")
    assert isinstance(rpi4, CpuTarget) and rpi4.arch == "aarch64"
    assert rpi4.tvm.to_tvm_dict() == {
        "kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72", "num-cores": 4, "mattr": ["+neon"]
    }
    assert reg.get("raspberry-pi-5").tvm.mcpu == "cortex-a76"
    ccs = {n: reg.get(n).tensorrt.compute_capability for n in ("jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "jetson-agx-orin")}
    assert ccs == {"jetson-nano": "5.3", "jetson-xavier-nx": "7.2", "jetson-orin-nano": "8.7", "jetson-agx-orin": "8.7"}
    assert isinstance(reg.get("jetson-agx-orin"), GpuTarget) and reg.get("jetson-agx-orin").tensorrt.dla_cores == 2
    assert reg.get("intel-npu").openvino.device == "NPU"


def test_unknown_target_suggests():
    with pytest.raises(UnknownNameError, match=r"did you mean raspberry-pi-4\?"):
        load_registry().get("raspbery-pi-4")


def test_host_is_detected():
    host = detect_host()
    assert host.name == "host" and host.cores >= 1 and host.arch in ("x86_64", "aarch64")
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    assert ("avx512f" in host.isa) == (" avx512f" in flags)
    assert host.tvm.num_cores == host.cores


USER_TARGET = """
[[target]]
name = "my-board"
kind = "cpu"
description = "a board of mine"
device_class = "single-board-computer"
preferred_backend = "onnxruntime"
arch = "aarch64"
cpu = "Cortex-A53"
cores = 4
peak_fp32_gflops = 19.2
memory_gib = 1
onnxruntime = {}
"""


def test_targets_file_adds_and_user_file_is_read(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(USER_TARGET)
    assert load_registry(f).get("my-board").cores == 4
    user = user_targets_file()
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(USER_TARGET.replace("my-board", "from-config"))
    assert load_registry().get("from-config").cpu == "Cortex-A53"


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[target]\nname=", "not valid TOML"),
        (USER_TARGET.replace("cores = 4", "cores = 0"), "my-board: cores"),
        (USER_TARGET.replace('kind = "cpu"', 'kind = "fpga"'), "my-board"),
        (USER_TARGET + USER_TARGET, "defined twice"),
        (USER_TARGET.replace('name = "my-board"', 'name = "host"'), "detected at run time"),
        (USER_TARGET.replace("memory_gib = 1", "memory_gib = 1\nbogus = 3"), "bogus"),
    ],
)
def test_bad_targets_file(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(BadInputError, match=message):
        load_registry(f)


def test_missing_targets_file(tmp_path):
    with pytest.raises(BadInputError, match="targets file not found"):
        load_registry(tmp_path / "nope.toml")
