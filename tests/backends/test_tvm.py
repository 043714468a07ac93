"""The TVM backend: outputs against onnxruntime, aarch64 cross-compilation, op support, foreign-arch
refusal, the tuning database (re-tune spends nothing, export/import, Ctrl-C keeps records) and RPC errors.

Tuning here uses tiny budgets on zoo:tinycnn: these tests check behaviour and numbers of trials and
records, not speed (speed is in benchmarks/tvm_trials.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto

pytest.importorskip("tvm", reason='apache-tvm is not installed (pip install "edgecc[tvm]")')

from edgecc.backends import get_backend  # noqa: E402
from edgecc.errors import UnsupportedError  # noqa: E402
from edgecc.graph.io import PreparedModel, prepare_model  # noqa: E402
from edgecc.pipeline import build_artifact, profile_artifact, read_reference  # noqa: E402
from edgecc.profiling.verify import TOLERANCES  # noqa: E402
from edgecc.targets import detect_host, load_registry  # noqa: E402

pytestmark = pytest.mark.tvm

QUICK = {"warmup": 1, "runs": 3, "min_time_s": 0.0, "layer_runs": 2}
ELF_MACHINE = {62: "x86_64", 183: "aarch64"}  # e_machine values (EM_X86_64, EM_AARCH64)
EDGECC = [sys.executable, "-m", "edgecc"]


def elf_machine(path: Path) -> str:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    assert head[4] == 2, "not a 64-bit ELF"
    return ELF_MACHINE.get(int.from_bytes(head[18:20], "little"), "other")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGECC, *args], capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy())


@pytest.fixture(scope="module")
def backend():
    be = get_backend("tvm")
    if not be.availability().available:
        pytest.skip(f"tvm unavailable: {be.availability().reason}")
    return be


@pytest.fixture(scope="module")
def tinycnn() -> PreparedModel:
    return prepare_model("zoo:tinycnn")


@pytest.fixture(scope="module")
def host_artifact(backend, tinycnn, tmp_path_factory):
    return build_artifact(tinycnn, detect_host(), backend, "fp32", None, tmp_path_factory.mktemp("tvm") / "host")


def test_host_artifact_matches_onnxruntime(backend, host_artifact):
    row = profile_artifact(host_artifact, backend, **QUICK)
    assert row.status == "ok" and row.verified is True, row.error
    _, ref_out = read_reference(host_artifact)
    scale = max(float(np.abs(v).max()) for v in ref_out.values())
    assert row.max_abs_error is not None and row.max_abs_error <= TOLERANCES["fp32"].max_rel_error * scale
    assert row.cosine is not None and row.cosine >= TOLERANCES["fp32"].min_cosine
    assert elf_machine(host_artifact.file("model.so")) == "x86_64" or detect_host().arch != "x86_64"
    # per-layer times come from the VM's call instrument: every layer is a fused TVM function
    assert row.layers and all(l.time_ms > 0 for l in row.layers)
    assert {"conv2d"} <= {l.op_type for l in row.layers}
    notes = " ".join(host_artifact.manifest.notes)
    assert host_artifact.manifest.options["schedule"] == "measured"  # "auto" on this machine's architecture
    assert "fastest of a few measured here" in notes
    assert host_artifact.manifest.options["num_threads"] == detect_host().cores


def test_naive_schedule_matches_onnxruntime_too(backend, tinycnn, tmp_path):
    art = build_artifact(tinycnn, detect_host(), backend, "fp32", {"schedule": "naive"}, tmp_path / "naive")
    ref_feeds, ref_out = read_reference(art)
    with backend.open_runner(art) as runner:
        got = runner.run(ref_feeds)
    for name, expected in ref_out.items():
        np.testing.assert_allclose(got[name], expected, atol=1e-4, rtol=1e-4)
    assert any("0 tuned, 0 drawn" in n and "naive" in n for n in art.manifest.notes), art.manifest.notes


def test_aarch64_artifact_is_aarch64_elf_and_refuses_to_run_here(backend, tinycnn, tmp_path):
    rpi = load_registry().get("raspberry-pi-4")
    art = build_artifact(tinycnn, rpi, backend, "fp32", None, tmp_path / "rpi")
    assert elf_machine(art.file("model.so")) == "aarch64"
    assert art.manifest.target.name == "raspberry-pi-4"
    assert art.manifest.options["schedule"] == "sampled"  # "auto" cannot measure aarch64 code here
    with pytest.raises(UnsupportedError, match="schedule=measured"):
        build_artifact(tinycnn, rpi, backend, "fp32", {"schedule": "measured"}, tmp_path / "rpi-measured")
    if detect_host().arch == "aarch64":
        pytest.skip("this machine is aarch64: the artifact runs here")
    proc = cli("profile", str(art.path), "--runs", "1", "--warmup", "0", "--min-time", "0")
    assert proc.returncode == 3, proc.stderr
    assert "aarch64" in proc.stderr and "--device rpc://" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_op_is_reported_by_name_before_compiling(backend, tmp_path):
    from tests.conftest import make_model

    model = make_model(
        [oh.make_node("Relu", ["x"], ["y"]), oh.make_node("FooBar", ["y"], ["z"], domain="com.acme")],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        domains=["com.acme"],
    )
    import onnx

    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    prepared = prepare_model(str(path))
    assert backend.unsupported_ops(prepared) == ["com.acme::FooBar"]
    with pytest.raises(UnsupportedError, match="com.acme::FooBar"):
        build_artifact(prepared, detect_host(), backend, "fp32", None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_only_fp32_is_offered(backend):
    assert backend.precisions(detect_host()) == ("fp32",)
    with pytest.raises(UnsupportedError, match="fp32"):
        backend.check_precision(detect_host(), "bf16")


@pytest.mark.parametrize("device, code, words", [
    ("rpc://127.0.0.1:1", 3, "cannot connect"),
    ("rpc://127.0.0.1:1/rpi4", 3, "tracker"),
    ("rpc://no-such-host.invalid:9090", 3, "cannot resolve"),
    ("tcp://board:9090", 2, "not an RPC address"),
])
def test_bad_rpc_address_exits_with_clear_message(host_artifact, device, code, words):
    proc = cli("profile", str(host_artifact.path), "--device", device, "--runs", "1", timeout=120)
    assert proc.returncode == code, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr


# --- tuning ------------------------------------------------------------------------------------------


def test_plan_trials_follows_shares_and_budget():
    from edgecc.backends.tvm.tune import MIN_TRIALS_PER_TASK, plan_trials

    plan = plan_trials([0.7, 0.2, 0.1], 100)
    assert sum(plan) == 100 and plan[0] > plan[1] > plan[2] >= MIN_TRIALS_PER_TASK
    assert plan_trials([0.5, 0.3, 0.2], 8) == [8, 0, 0]  # a tiny budget goes to the largest task whole
    assert plan_trials([0.5, 0.5], 0) == [0, 0]


def test_time_budget_parsing():
    from edgecc.cli.tvm import parse_duration
    from edgecc.errors import BadInputError

    assert parse_duration("90") == 90 and parse_duration("20m") == 1200 and parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45 and parse_duration(None) is None
    with pytest.raises(BadInputError, match="20m"):
        parse_duration("twenty minutes")


def test_fingerprint_separates_targets_and_tvm_versions():
    from edgecc.backends.tvm.database import fingerprint

    rpi4 = load_registry().get("raspberry-pi-4").tvm.to_tvm_dict()
    rpi5 = load_registry().get("raspberry-pi-5").tvm.to_tvm_dict()
    assert fingerprint(rpi4, "0.27") == fingerprint(dict(rpi4), "0.27")
    assert fingerprint(rpi4, "0.27").startswith("aarch64-cortex-a72-4c-")
    assert len({fingerprint(rpi4, "0.27"), fingerprint(rpi5, "0.27"), fingerprint(rpi4, "0.28")}) == 3


@pytest.fixture(scope="module")
def tuned_db(tinycnn, tmp_path_factory):
    """One real tuning run: 8 trials on tinycnn's largest task, into a fresh database."""
    from edgecc.backends.tvm.tune import tune_model

    db = tmp_path_factory.mktemp("tvm-db") / "db"
    result = tune_model(tinycnn, detect_host(), trials=8, db_dir=db)
    return db, result


def test_tune_spends_budget_and_stores_valid_records(tuned_db):
    from edgecc.backends.tvm.database import list_databases

    db, result = tuned_db
    assert result.trials_spent == 8 and result.stopped in ("done", "trials")
    tuned = [t for t in result.tasks if t.status == "tuned"]
    assert len(tuned) == 1 and tuned[0].trials_spent == 8 and tuned[0].best_ms is not None and tuned[0].best_ms > 0
    # the largest task by work share is the one tuned
    assert tuned[0].share == max(t.share for t in result.tasks)
    [stored] = list_databases(db)
    summary = stored.summary()
    assert summary.records == 8 and summary.valid_records >= 1 and result.records_added == 8


def test_retune_spends_zero_trials(tuned_db, tinycnn):
    from edgecc.backends.tvm.tune import tune_model

    db, first = tuned_db
    again = tune_model(tinycnn, detect_host(), trials=8, db_dir=db)
    assert again.trials_spent == 0 and again.records_added == 0
    tuned_name = next(t.name for t in first.tasks if t.status == "tuned")
    assert next(t for t in again.tasks if t.name == tuned_name).status == "in-database"
    assert again.tasks_in_database == 1


def test_compile_tuned_applies_database_and_matches(backend, tuned_db, tinycnn, tmp_path):
    db, _ = tuned_db
    art = build_artifact(tinycnn, detect_host(), backend, "fp32", {"tuned": True, "db": str(db)}, tmp_path / "tuned")
    notes = " ".join(art.manifest.notes)
    assert "tvm-metaschedule-apply-database" in art.manifest.passes, notes
    assert "fused functions: 1 tuned" in notes or "fused functions: 2 tuned" in notes, notes
    row = profile_artifact(art, backend, **QUICK)
    assert row.verified is True, row.error


def test_trials_option_tunes_then_compiles_and_a_second_compile_spends_nothing(backend, tinycnn, tmp_path):
    """options trials=8 (what --vary tvm.trials=0,8 gives compare and search): tune into the database,
    then compile with its records; the same compile again finds the task tuned."""
    opts = {"trials": 8, "db": str(tmp_path / "db")}
    art = build_artifact(tinycnn, detect_host(), backend, "fp32", opts, tmp_path / "a")
    notes = " ".join(art.manifest.notes)
    assert "tuned here: 8 of 8 trials" in notes and "fused functions: 1 tuned" in notes, notes
    assert art.manifest.options["trials"] == 8 and art.manifest.options["tuned"] is True
    assert profile_artifact(art, backend, **QUICK).verified is True
    again = build_artifact(tinycnn, detect_host(), backend, "fp32", opts, tmp_path / "b")
    assert "tuned here: 0 of 8 trials" in " ".join(again.manifest.notes) and "(1 tasks already in the database)" in " ".join(again.manifest.notes)


def test_compile_tuned_without_records_says_to_tune_first(tmp_path):
    proc = cli("compile", "zoo:tinycnn", "--target", "host", "--backend", "tvm", "--tuned", "--option", f"db={tmp_path / 'empty'}",
               "-o", str(tmp_path / "out"))
    assert proc.returncode == 2 and "edgecc tune" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_db_export_import_roundtrip(tuned_db, tmp_path):
    env = os.environ.copy()
    db, _ = tuned_db
    archive = tmp_path / "share.tar.gz"
    proc = cli("tuning-db", "export", str(archive), "--db", str(db), env=env)
    assert proc.returncode == 0, proc.stderr
    other = tmp_path / "other-db"
    proc = cli("tuning-db", "import", str(archive), "--db", str(other), env=env)
    assert proc.returncode == 0, proc.stderr
    from edgecc.backends.tvm.database import list_databases

    src = {d.fingerprint: d.summary() for d in list_databases(db)}
    dst = {d.fingerprint: d.summary() for d in list_databases(other)}
    assert src.keys() == dst.keys()
    fp = next(iter(src))
    assert dst[fp].valid_records == src[fp].valid_records >= 1
    assert "records added" in proc.stdout
    # importing again adds nothing: records are not duplicated
    proc = cli("tuning-db", "import", str(archive), "--db", str(other), env=env)
    assert proc.returncode == 0 and ": 0 records added" in proc.stdout, proc.stdout
    # prune keeps the best record per workload
    proc = cli("tuning-db", "prune", "--db", str(other), env=env)
    assert proc.returncode == 0 and f"{fp}: " in proc.stdout
    assert list_databases(other)[0].summary().records == dst[fp].workloads or list_databases(other)[0].summary().records >= 1


def tinycnn_cousin(path: Path) -> PreparedModel:
    """Another model built here that shares tinycnn's body (so its convolution workloads) but not its
    weights, its head or its graph: an extra 1x1 convolution and 5 classes, from another seed."""
    from onnx import TensorProto as TP

    from edgecc.zoo._builder import GraphBuilder, value_info

    b = GraphBuilder(seed=7)
    x = b.relu(b.conv_bn("input", 3, 16, 3, conv="stem", bn="stem_bn"))
    x = b.relu(b.conv_bn(x, 16, 32, 3, 2, conv="down", bn="down_bn"))
    y = b.relu(b.conv_bn(x, 32, 32, 3, conv="res.a", bn="res.a_bn"))
    y = b.conv_bn(y, 32, 32, 3, conv="res.b", bn="res.b_bn", residual_tail=True)
    x = b.relu(b.add(x, y))
    x = b.relu(b.conv_bn(x, 32, 64, 1, conv="widen", bn="widen_bn"))
    x = b.relu(b.conv_bn(x, 64, 64, 1, conv="extra", bn="extra_bn"))
    b.classifier_head(x, 64, 5, name="head", output="scores")
    model = b.make_model([value_info("input", TP.FLOAT, [1, 3, 32, 32])], [value_info("scores", TP.FLOAT, [1, 5])],
                         name="cousin", doc="tinycnn's body with another head")
    onnx.save(model, path)
    return prepare_model(str(path))


def test_database_imported_from_another_model_is_used(backend, tuned_db, tinycnn, tmp_path):
    """tinycnn's records, exported and imported into a fresh database, serve a different model that
    shares a workload: compile --tuned applies them with no tuning of its own, and tuning it spends
    no trials on the shared task (like ResNet-50 starting from ResNet-18's convolutions)."""
    from edgecc.backends.tvm.tune import tune_model

    db, first = tuned_db
    archive = tmp_path / "team.tar.gz"
    assert cli("tuning-db", "export", str(archive), "--db", str(db)).returncode == 0
    imported = tmp_path / "imported-db"
    proc = cli("tuning-db", "import", str(archive), "--db", str(imported))
    assert proc.returncode == 0, proc.stderr
    cousin = tinycnn_cousin(tmp_path / "cousin.onnx")
    assert cousin.sha256 != tinycnn.sha256

    art = build_artifact(cousin, detect_host(), backend, "fp32", {"tuned": True, "db": str(imported)}, tmp_path / "cousin")
    notes = " ".join(art.manifest.notes)
    assert "fused functions: 1 tuned" in notes, notes  # the one task tinycnn tuned, nothing else
    row = profile_artifact(art, backend, **QUICK)
    assert row.verified is True, row.error

    # 16 trials are planned over the two largest tasks; the shared one keeps its
    # share unspent (the budget is the model's, and that task is done), the other is tuned
    again = tune_model(cousin, detect_host(), trials=16, db_dir=imported)
    assert again.tasks_in_database == 1
    shared = next(t for t in again.tasks if t.status == "in-database")
    assert shared.trials_spent == 0
    assert shared.flops == next(t for t in first.tasks if t.status == "tuned").flops
    tuned = [t for t in again.tasks if t.status == "tuned"]
    assert len(tuned) == 1 and tuned[0].flops != shared.flops
    assert 0 < again.trials_spent == tuned[0].trials_spent == again.records_added < 16


def test_import_rejects_a_file_that_is_not_an_export(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar file")
    proc = cli("tuning-db", "import", str(bad), "--db", str(tmp_path / "db"))
    assert proc.returncode == 2 and "not an edgecc tuning database export" in proc.stderr


def test_interrupted_tuning_keeps_records(tmp_path):
    """SIGINT to a real `edgecc tune` after its first task's batch: exit 130 and the records are kept."""
    db = tmp_path / "db"
    proc = subprocess.Popen(
        [*EDGECC, "tune", "zoo:tinycnn", "--target", "host", "--trials", "16", "--db", str(db)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    seen = []
    deadline = time.monotonic() + 900
    try:
        for line in proc.stderr:  # one line per measured batch when stderr is not a terminal
            seen.append(line)
            if line.startswith("task 2/"):
                break
            assert time.monotonic() < deadline, "tuning did not reach its second task in time"
        else:
            pytest.fail("tune ended before its second task: " + "".join(seen))
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(seen) + rest
    from edgecc.backends.tvm.database import list_databases

    [stored] = list_databases(db)
    assert stored.summary().valid_records >= 1
    assert stored.summary().records >= 8  # at least the first task's batch


# --- remote boards over TVM RPC ---------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"nothing listens on port {port} after {timeout_s} s")


@pytest.fixture
def rpc_processes():
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        # A session of its own: the RPC server forks worker processes, stopped with it as one group.
        p = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=os.environ | {"TVM_NUM_THREADS": "1"}, start_new_session=True)
        started.append(p)
        return p

    yield start
    for p in started:
        stop_group(p)


def stop_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


def test_profile_over_rpc_server_on_loopback(host_artifact, rpc_processes):
    """A real TVM RPC server (this machine's arch) on loopback: upload, run remotely, verify."""
    port = free_port()
    server = rpc_processes("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1))
    wait_for_port(port, server)
    import json

    proc = cli("profile", str(host_artifact.path), "--device", f"rpc://127.0.0.1:{port}", "--runs", "3",
               "--warmup", "1", "--min-time", "0", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["verified"] is True and row["cosine"] >= TOLERANCES["fp32"].min_cosine
    assert row["layers"] == []  # no per-layer times over RPC


def test_profile_through_tracker_by_key(host_artifact, rpc_processes):
    tracker_port, server_port = free_port(), free_port()
    tracker = rpc_processes("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tracker_port),
                            "--port-end", str(tracker_port + 1))
    wait_for_port(tracker_port, tracker)
    server = rpc_processes("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(server_port),
                           "--port-end", str(server_port + 1), "--tracker", f"127.0.0.1:{tracker_port}", "--key", "edgecc-test")
    wait_for_port(server_port, server)
    time.sleep(1.0)  # the server registers with the tracker after it listens
    proc = cli("profile", str(host_artifact.path), "--device", f"rpc://127.0.0.1:{tracker_port}/edgecc-test",
               "--runs", "2", "--warmup", "0", "--min-time", "0", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert '"verified": true' in proc.stdout


@pytest.mark.parametrize("extra, code, words", [
    ([], 3, "--device rpc://TRACKER:PORT/KEY"),
    (["--device", "rpc://127.0.0.1:1/rpi4"], 3, "cannot connect"),
    (["--device", "rpc://127.0.0.1:1"], 2, "needs a tracker and a device key"),
])
def test_tune_for_a_board_needs_a_reachable_tracker(extra, code, words, tmp_path):
    proc = cli("tune", "zoo:tinycnn", "--target", "raspberry-pi-4", "--trials", "8", "--db", str(tmp_path / "db"), *extra,
               timeout=120)
    assert proc.returncode == code, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "db").exists() or not any((tmp_path / "db").iterdir())


# --- the emulated aarch64 board (slow: scripts/arm-emulator.sh) -------------------------------------

REPO = Path(__file__).resolve().parents[2]
ARM_SCRIPT = REPO / "scripts" / "arm-emulator.sh"


@pytest.fixture(scope="module")
def arm_board():
    """(rpc://127.0.0.1:PORT, rpc://127.0.0.1:TRACKER/rpi4-emu) of the emulated board, registered with a
    tracker on this machine; the root filesystem is set up once and cached, the server started here."""
    import shutil

    if detect_host().arch != "x86_64":
        pytest.skip("the emulated board is for x86_64 hosts")
    if os.geteuid() != 0:
        pytest.skip("the emulated aarch64 board needs root (debootstrap, chroot, binfmt): run scripts/arm-emulator.sh as root")
    missing = [t for t in ("debootstrap", "qemu-aarch64-static", "update-binfmts") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the emulated aarch64 board needs {', '.join(missing)} (apt-get install debootstrap qemu-user-static binfmt-support)")
    port, tracker_port = free_port(), free_port()
    env = os.environ | {"EDGECC_HOST_PYTHON": sys.executable, "EDGECC_ARM_RPC_PORT": str(port),
                        "EDGECC_ARM_TRACKER": f"127.0.0.1:{tracker_port}", "EDGECC_ARM_KEY": "rpi4-emu"}
    setup = subprocess.run(["bash", str(ARM_SCRIPT), "setup"], capture_output=True, text=True, env=env, timeout=1500)
    if setup.returncode != 0:
        pytest.skip(f"the emulated board could not be set up: {(setup.stderr or setup.stdout).strip().splitlines()[-1:]}")
    tracker = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tracker_port),
                                "--port-end", str(tracker_port + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for_port(tracker_port, tracker)
        start = subprocess.run(["bash", str(ARM_SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=300)
        assert start.returncode == 0, start.stderr
        time.sleep(2.0)  # registration with the tracker follows the listen
        yield f"rpc://127.0.0.1:{port}", f"rpc://127.0.0.1:{tracker_port}/rpi4-emu"
    finally:
        subprocess.run(["bash", str(ARM_SCRIPT), "stop"], capture_output=True, text=True, env=env, timeout=60)
        stop_group(tracker)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["zoo:tinycnn", "zoo:resnet18"])
def test_raspberry_pi_artifact_runs_on_emulated_board(arm_board, backend, model, tmp_path):
    import json

    _, tracker = arm_board  # a server registered with a tracker takes sessions through it only
    out = tmp_path / "rpi"
    proc = cli("compile", model, "--target", "raspberry-pi-4", "--backend", "tvm", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert elf_machine(out / "model.so") == "aarch64"
    proc = cli("profile", str(out), "--device", tracker, "--runs", "1", "--warmup", "0", "--min-time", "0",
               "--json", "-", timeout=900)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["verified"] is True and row["cosine"] >= TOLERANCES["fp32"].min_cosine, row


@pytest.mark.slow
def test_tune_through_tracker_on_emulated_board(arm_board, backend, tmp_path):
    """MetaSchedule's RPC runner measures candidates on the emulated board; the tuned compile runs there."""
    import json

    _, tracker = arm_board
    db = tmp_path / "db"
    proc = cli("tune", "zoo:tinycnn", "--target", "raspberry-pi-4", "--trials", "8", "--db", str(db), "--device", tracker,
               "--json", "-", timeout=1200)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["trials_spent"] == 8 and result["records_added"] == 8
    assert any(t["status"] == "tuned" and t["best_ms"] for t in result["tasks"]), result["tasks"]
    out = tmp_path / "rpi-tuned"
    proc = cli("compile", "zoo:tinycnn", "--target", "raspberry-pi-4", "--backend", "tvm", "--tuned",
               "--option", f"db={db}", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "tvm-metaschedule-apply-database" in json.loads((out / "manifest.json").read_text())["passes"]
    proc = cli("profile", str(out), "--device", tracker, "--runs", "1", "--warmup", "0", "--min-time", "0",
               "--json", "-", timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verified"] is True
