"""The SSH transport against a real OpenSSH server started on loopback by these tests (Debian's
openssh-server; .ci/run installs it). On the other side is this same Python with edgecc installed,
so the remote runs are real edgecc runs with the onnxruntime backend. Covered: a remote compare and
profile, artifacts brought back, a refused connection, a wrong key, an unknown host key, a server
that never answers, a remote command that fails, a missing remote python."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("asyncssh", reason='asyncssh is not installed (pip install "edgecc[remote]")')
SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(
    not (Path(SSHD).is_file() and shutil.which("ssh-keygen")),
    reason=f"OpenSSH server not installed ({SSHD}; apt-get install openssh-server)",
)
QUICK = ["--warmup", "1", "--runs", "2", "--min-time", "0", "--layer-runs", "0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgecc-test", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1:<free port> that accepts one generated client key for this user."""
    d = tmp_path_factory.mktemp("sshd")
    host_key = keygen(d / "host_ed25519")
    client_key = keygen(d / "client_ed25519")
    wrong_key = keygen(d / "wrong_ed25519")
    (d / "authorized_keys").write_text(Path(str(client_key) + ".pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    port = free_port()
    config = d / "sshd_config"
    config.write_text(f"""ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}: {(d / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    host_pub = Path(str(host_key) + ".pub").read_text().split()
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (d / "empty_known_hosts").write_text("")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    info = {"port": port, "user": user, "key": client_key, "wrong_key": wrong_key, "known_hosts": known, "dir": d}
    yield info
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def url(sshd, key=None, known=None, python=None, **extra) -> str:
    q = {"python": python or sys.executable, "identity": str(key or sshd["key"]),
         "known_hosts": str(known or sshd["known_hosts"]), "retries": "0", **extra}
    return f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}?" + "&".join(f"{k}={v}" for k, v in q.items())


def edgecc(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "edgecc", *args], capture_output=True, text=True, timeout=timeout)


def test_parse_device():
    from edgecc.errors import BadInputError
    from edgecc.remote.device import parse_ssh_device

    d = parse_ssh_device("ssh://nvidia@jetson.local:2222?python=/opt/venv/bin/python&identity=/k1,/k2&retries=4")
    assert (d.user, d.host, d.port, d.python, d.identity, d.retries) == (
        "nvidia", "jetson.local", 2222, "/opt/venv/bin/python", ("/k1", "/k2"), 4)
    assert d.where == "nvidia@jetson.local:2222"
    assert parse_ssh_device("ssh://jetson").where == "jetson" and parse_ssh_device("ssh://jetson").port == 22
    for bad, message in [("jetson", "expected ssh://user@host"), ("ssh://h:99999", "port is not a number"),
                         ("ssh://h/path", "no path expected"), ("ssh://h?pyton=x", r"unknown option\(s\) pyton"),
                         ("ssh://h?retries=x", "must be numbers"), ("ssh://h?connect_timeout=0", "must be > 0")]:
        with pytest.raises(BadInputError, match=message):
            parse_ssh_device(bad)


def test_compare_on_the_device_brings_back_report_and_artifacts(sshd, tmp_path):
    out = tmp_path / "report.json"
    arts = tmp_path / "arts"
    r = edgecc("compare", "zoo:tinycnn", "-t", "host", "--backends", "onnxruntime", *QUICK,
               "--device", url(sshd), "--json", str(out), "--artifacts-dir", str(arts))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["model"] == "zoo:tinycnn" and report["target"] == "host"
    assert f"(over SSH: {sshd['user']}@127.0.0.1:{sshd['port']})" in report["measured_on"]
    (row,) = report["results"]
    assert row["backend"] == "onnxruntime" and row["status"] == "ok" and row["verified"] is True
    assert row["runs"] >= 2 and row["latency_ms"]["p50"] > 0 and row["max_abs_error"] < 1e-5
    # the artifact came back whole: its checksums verify here
    from edgecc.artifact import load_artifact

    art = load_artifact(row["artifact"])
    assert art.manifest.backend == "onnxruntime" and Path(row["artifact"]).parent == arts
    assert {"manifest.json", "model.onnx", "reference.npz"} <= {p.name for p in Path(row["artifact"]).iterdir()}


def test_compare_with_a_local_targets_file_and_a_used_artifacts_dir(sshd, tmp_path):
    targets = tmp_path / "targets.toml"
    targets.write_text("""[[target]]
name = "my-board"
kind = "cpu"
description = "a board only this laptop's targets file knows"
device_class = "single-board-computer"
preferred_backend = "onnxruntime"
arch = "x86_64"
cpu = "test"
cores = 1
peak_fp32_gflops = 10.0
memory_gib = 1
onnxruntime = {}
""")
    r = edgecc("compare", "zoo:tinycnn", "-t", "my-board", "--targets-file", str(targets), *QUICK,
               "--device", url(sshd), "--json", "-")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["target"] == "my-board" and [x["status"] for x in report["results"]] == ["ok"]
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    r = edgecc("compare", "zoo:tinycnn", "-t", "host", *QUICK, "--device", url(sshd), "--artifacts-dir", str(used))
    assert r.returncode == 2 and "must be empty or new" in r.stderr and (used / "keep.txt").read_text() == "mine"


def test_profile_on_the_device(sshd, tmp_path):
    art = tmp_path / "art"
    assert edgecc("compile", "zoo:tinycnn", "-t", "host", "-b", "onnxruntime", "-o", str(art)).returncode == 0
    r = edgecc("profile", str(art), *QUICK, "--device", url(sshd), "--json", "-")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["status"] == "ok" and row["verified"] is True and row["runs"] >= 2
    assert row["artifact"] == str(art)


def test_remote_command_that_fails_keeps_its_exit_code_and_message(sshd):
    r = edgecc("compare", "zoo:tinycnn", "-t", "no-such-board", *QUICK, "--device", url(sshd))
    assert r.returncode == 2
    assert f"error: on {sshd['user']}@127.0.0.1:{sshd['port']}: unknown target 'no-such-board'" in " ".join(r.stderr.split())


def test_missing_remote_python(sshd):
    r = edgecc("compare", "zoo:tinycnn", "-t", "host", *QUICK, "--device", url(sshd, python="/nonexistent/python3"))
    assert r.returncode == 3
    assert "/nonexistent/python3 is not found there" in " ".join(r.stderr.split())


def test_connection_refused_exit_3_after_retries():
    from edgecc.errors import BackendUnavailable
    from edgecc.remote.device import SshDevice
    from edgecc.remote.ssh import connect, run_sync

    port = free_port()  # nothing listens here
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=rf"cannot reach 127.0.0.1:{port} after 3 attempt\(s\): connection refused"):
        run_sync(connect(SshDevice("127.0.0.1", port=port, retries=2, retry_delay_s=0.05)))
    assert time.monotonic() - t0 >= 0.05 + 0.1  # it waited between attempts (0.05 s, then 0.1 s)
    r = edgecc("compare", "zoo:tinycnn", "-t", "host", "--device", f"ssh://someone@127.0.0.1:{port}?retries=0")
    assert r.returncode == 3 and "connection refused" in r.stderr


def test_wrong_key_is_an_auth_failure(sshd):
    r = edgecc("compare", "zoo:tinycnn", "-t", "host", *QUICK, "--device", url(sshd, key=sshd["wrong_key"], retries=3))
    assert r.returncode == 3
    assert "authentication failed" in r.stderr and "check the user name and the key" in " ".join(r.stderr.split())


def test_unknown_host_key_is_refused(sshd):
    r = edgecc("profile", "nothing", "--device", url(sshd, known=sshd["dir"] / "empty_known_hosts"))
    # the artifact is checked first (bad input), before connecting
    assert r.returncode == 2
    r = edgecc("compare", "zoo:tinycnn", "-t", "host", *QUICK, "--device", url(sshd, known=sshd["dir"] / "empty_known_hosts"))
    assert r.returncode == 3 and "host key cannot be verified" in " ".join(r.stderr.split())


def test_a_server_that_never_answers_times_out():
    from edgecc.errors import BackendUnavailable
    from edgecc.remote.device import SshDevice
    from edgecc.remote.ssh import connect, run_sync

    with socket.socket() as silent:  # accepts TCP connections (backlog) but never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        with pytest.raises(BackendUnavailable, match=r"after 2 attempt\(s\): no SSH answer within 0.5 s"):
            run_sync(connect(SshDevice("127.0.0.1", port=port, connect_timeout_s=0.5, retries=1, retry_delay_s=0.01)))


def test_remote_command_timeout_is_clear(sshd):
    from edgecc.errors import BackendUnavailable
    from edgecc.remote.device import parse_ssh_device
    from edgecc.remote.ssh import open_session, run_sync

    device = parse_ssh_device(url(sshd))

    async def job():
        async with open_session(device) as s:
            assert s.workdir and s.workdir.startswith("/tmp/edgecc-remote-")
            ok = await s.run(["echo", "hello"], timeout_s=30)
            assert (ok.exit_status, ok.stdout) == (0, "hello\n")
            failed = await s.run(["sh", "-c", "echo oops >&2; exit 7"], timeout_s=30)
            assert (failed.exit_status, failed.stderr) == (7, "oops\n")
            await s.run(["sleep", "20"], timeout_s=0.5)

    with pytest.raises(BackendUnavailable, match=r"`sleep 20` did not finish within 0.5 s and was stopped"):
        run_sync(job())
