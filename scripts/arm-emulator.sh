#!/usr/bin/env bash
# An emulated aarch64 board for tests: Debian arm64 (debootstrap) run through qemu-user + binfmt, with
# the aarch64 apache-tvm wheel, serving TVM RPC on loopback. Emulated timings say nothing about a real
# Cortex-A72: the board is for checking that ARM artifacts run and match onnxruntime.
#
#   scripts/arm-emulator.sh setup    # once (~5 min; skipped when the root filesystem is ready)
#   scripts/arm-emulator.sh start    # RPC server on 127.0.0.1:$PORT (prints rpc://127.0.0.1:PORT)
#   scripts/arm-emulator.sh stop | status
#
# Needs root and Debian's qemu-user-static, binfmt-support and debootstrap (apt-get install them).
# EDGECC_ARM_ROOTFS (default /var/cache/edgecc/arm64-rootfs), EDGECC_ARM_RPC_PORT (default 9190),
# EDGECC_ARM_TRACKER=HOST:PORT and EDGECC_ARM_KEY to register the board with a TVM RPC tracker.
set -euo pipefail

ROOTFS=${EDGECC_ARM_ROOTFS:-/var/cache/edgecc/arm64-rootfs}
PORT=${EDGECC_ARM_RPC_PORT:-9190}
MIRROR=${EDGECC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TVM_SPEC=${EDGECC_ARM_TVM:-apache-tvm==0.27.0.post1}
READY="$ROOTFS/.edgecc-ready"
SITE=/opt/edgecc-site          # inside the root filesystem
PIDFILE="$ROOTFS/tmp/edgecc-rpc.pid"
LOG="$ROOTFS/tmp/edgecc-rpc.log"

die() { echo "arm-emulator: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, binfmt)"; }

enable_binfmt() {
    # binfmt lets the kernel run aarch64 programs through qemu: the RPC server starts helper processes.
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        || die "cannot mount binfmt_misc (a container without privileges?)"
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 \
        || die "update-binfmts --enable qemu-aarch64 failed (apt-get install qemu-user-static binfmt-support)"
}

setup() {
    need_root
    if [ -f "$READY" ]; then echo "arm-emulator: $ROOTFS is ready"; return 0; fi
    command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap"
    [ -x /usr/bin/qemu-aarch64-static ] || die "qemu-aarch64-static missing: apt-get install qemu-user-static"
    enable_binfmt
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"
    debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 bookworm "$ROOTFS" "$MIRROR"
    cp /usr/bin/qemu-aarch64-static "$ROOTFS/usr/bin/"
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage
    # TVM and its dependencies as aarch64 wheels, installed from here into the root filesystem (no pip there).
    "${EDGECC_HOST_PYTHON:-python3}" -m pip install --quiet --target "$ROOTFS$SITE" --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
        --python-version 3.11 --implementation cp --only-binary=:all: \
        "$TVM_SPEC" "apache-tvm-ffi>=0.1.14,<0.1.15" numpy psutil cloudpickle tornado
    chroot "$ROOTFS" env PYTHONPATH="$SITE" python3 -c "import tvm, numpy; print('tvm', tvm.__version__, 'on', __import__('platform').machine())"
    touch "$READY"
    echo "arm-emulator: ready at $ROOTFS"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
    need_root
    [ -f "$READY" ] || die "not set up: run '$0 setup' first"
    enable_binfmt
    if running; then echo "rpc://127.0.0.1:$PORT"; return 0; fi
    mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
    # The full library, not the runtime-only one: the MetaSchedule runner needs its random-fill function.
    # With EDGECC_ARM_TRACKER=HOST:PORT the server registers there under EDGECC_ARM_KEY (default rpi4-emu).
    local tracker=()
    [ -n "${EDGECC_ARM_TRACKER:-}" ] && tracker=(--tracker "$EDGECC_ARM_TRACKER" --key "${EDGECC_ARM_KEY:-rpi4-emu}")
    # setsid: the server forks worker processes; stop ends the whole group.
    setsid chroot "$ROOTFS" env PYTHONPATH="$SITE" TVM_NUM_THREADS=2 \
        python3 -m tvm.exec.rpc_server --host 127.0.0.1 --port "$PORT" --port-end "$((PORT + 1))" "${tracker[@]}" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null; then
            echo "rpc://127.0.0.1:$PORT"; return 0
        fi
        running || { cat "$LOG" >&2; die "the RPC server exited"; }
        sleep 1
    done
    cat "$LOG" >&2
    die "the RPC server did not listen on $PORT within 120 s"
}

stop() {
    if running; then kill -- "-$(cat "$PIDFILE")" 2>/dev/null || kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; echo "stopped"
    else echo "not running"; fi
}

status() {
    if [ -f "$READY" ]; then echo "rootfs: ready ($ROOTFS)"; else echo "rootfs: not set up"; fi
    if running; then echo "server: rpc://127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; else echo "server: not running"; fi
}

case "${1:-}" in
    setup) setup ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 setup|start|stop|status" >&2; exit 2 ;;
esac
