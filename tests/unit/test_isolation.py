from __future__ import annotations

import os
import time

from edgecc.errors import ModelError
from edgecc.isolation import run_isolated


def _ok(x):
    return {"double": 2 * x}


def _abort():
    os.abort()


def _hang():
    time.sleep(60)


def _user_error():
    raise ModelError("model.onnx: file is empty")


def _bug():
    return 1 / 0


def test_result_comes_back():
    out = run_isolated(_ok, 21, timeout_s=60)
    assert out.ok and out.value == {"double": 42}


def test_crash_is_reported_with_the_signal():
    out = run_isolated(_abort, timeout_s=60)
    assert out.kind == "crash" and "SIGABRT" in out.message


def test_hang_is_stopped():
    t0 = time.monotonic()
    out = run_isolated(_hang, timeout_s=2)
    assert out.kind == "timeout" and "timed out after 2 s" in out.message
    assert time.monotonic() - t0 < 30


def test_errors_keep_type_message_and_exit_code():
    out = run_isolated(_user_error, timeout_s=60)
    assert (out.kind, out.error_type, out.message, out.exit_code) == ("error", "ModelError", "model.onnx: file is empty", 2)
    bug = run_isolated(_bug, timeout_s=60)
    assert bug.kind == "error" and bug.exit_code == 1 and "ZeroDivisionError" in bug.message


def test_works_from_a_script_without_a_main_guard(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "user_script.py"
    script.write_text(
        "from edgecc.isolation import run_isolated\n"
        "from edgecc.targets.host import available_cores\n"
        "out = run_isolated(available_cores, timeout_s=60)\n"
        "print(out.kind, out.value)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kind, value = done.stdout.split()
    assert kind == "ok" and int(value) >= 1
