"""Where a model runs: --device parsed once into a typed device (per command's kinds), and the one
dispatch in edgecc.remote.run (here, a board over SSH, or the backend's RPC runner). No network here."""

from __future__ import annotations

import pytest

from edgecc import api
from edgecc.errors import BadInputError, UnsupportedError
from edgecc.remote.device import LOCAL, LocalDevice, RpcDevice, SshDevice, parse_device
from edgecc.remote.run import COMPARE_DEVICES, PROFILE_DEVICES, TUNE_DEVICES, compare_remote, profile_on

QUICK = api.ProfileSettings(warmup=1, runs=3, min_time_s=0.0, layer_runs=0)
NOT_RPC = "is not an RPC address; expected rpc://HOST:PORT"


def test_each_kind_parses_to_its_type():
    assert parse_device(None) is LOCAL and parse_device("local") == LocalDevice()
    ssh = parse_device("ssh://nvidia@jetson.local:2222?python=/opt/venv/bin/python")
    assert isinstance(ssh, SshDevice) and (ssh.user, ssh.host, ssh.port, ssh.python) == (
        "nvidia", "jetson.local", 2222, "/opt/venv/bin/python")
    assert parse_device("rpc://10.0.0.7:9190") == RpcDevice("10.0.0.7", 9190, None)
    tracked = parse_device("rpc://[::1]:9190/rpi4")
    assert tracked == RpcDevice("::1", 9190, "rpi4") and tracked.url == "rpc://::1:9190/rpi4"


@pytest.mark.parametrize("kinds, text, message", [
    (PROFILE_DEVICES, "tcp://board:9090", NOT_RPC),  # anything else is read as the RPC form, as before
    (PROFILE_DEVICES, "jetson", NOT_RPC),
    (PROFILE_DEVICES, "rpc://board:70000", "port 70000 is out of range"),
    (PROFILE_DEVICES, "ssh://h?pyton=x", r"unknown option\(s\) pyton"),
    (TUNE_DEVICES, "ssh://nvidia@jetson", NOT_RPC),  # tune measures here or over RPC only
    (COMPARE_DEVICES, "rpc://board:9090", r"expected ssh://user@host\[:port\] \(or 'local'\)"),
    (COMPARE_DEVICES, "jetson", r"expected ssh://user@host\[:port\] \(or 'local'\)"),
])
def test_a_device_the_command_does_not_serve_is_a_clear_input_error(kinds, text, message):
    with pytest.raises(BadInputError, match=message):
        parse_device(text, kinds)


@pytest.fixture(scope="module")
def ort_artifact(tmp_path_factory):
    return api.compile("zoo:tinycnn", "host", tmp_path_factory.mktemp("dev") / "art", backend="onnxruntime")


def test_profile_on_this_machine(ort_artifact):
    row = profile_on(LOCAL, ort_artifact.path, QUICK, isolate=False)
    assert row.status == "ok" and row.verified is True and row.runs >= 3


def test_rpc_device_goes_to_the_backends_rpc_runner(ort_artifact):
    """onnxruntime has no RPC runner: the base hook refuses with the device's address (exit 3 as a row
    would be 'unavailable'); isolated, the same refusal becomes an error raised to the caller."""
    with pytest.raises(UnsupportedError, match=r"backend onnxruntime does not run artifacts on remote devices \(rpc://127.0.0.1:9\)"):
        profile_on(RpcDevice("127.0.0.1", 9, None), ort_artifact.path, QUICK, isolate=False)


def test_ssh_device_refuses_inputs_before_connecting(ort_artifact, tmp_path):
    with pytest.raises(BadInputError, match="--inputs is not supported with a remote --device yet"):
        profile_on(SshDevice("127.0.0.1", port=1, retries=0), ort_artifact.path, QUICK, inputs=str(tmp_path / "x.npz"))


def test_api_profile_parses_the_device(ort_artifact):
    with pytest.raises(BadInputError, match=NOT_RPC):
        api.profile(ort_artifact.path, QUICK, device="tcp://board:9090")
    assert api.profile(ort_artifact.path, QUICK, device="local", isolate=False).verified is True


def test_remote_compare_checks_options_and_kind():
    ssh = SshDevice("127.0.0.1", port=1, retries=0)
    with pytest.raises(BadInputError, match="--option and --vary are not supported with an ssh:// --device"):
        compare_remote(ssh, "zoo:tinycnn", "host", settings=QUICK, with_options=True)
    with pytest.raises(BadInputError, match="compare runs here or on a board over SSH, not at rpc://h:9"):
        compare_remote(RpcDevice("h", 9, None), "zoo:tinycnn", "host", settings=QUICK)


def test_tune_needs_a_backend_that_tunes():
    with pytest.raises(UnsupportedError, match="backend onnxruntime does not tune; backends that tune: tvm"):
        api.tune("zoo:tinycnn", "host", backend="onnxruntime", trials=8)
