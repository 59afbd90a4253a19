#!/usr/bin/env bash
# Load run (not part of CI): many brokered opens and a long QMP session
# side by side; prints figures (docs/performance.md).
#
#   scripts/load.sh            # 4 pairs x 100000 opens, QMP for 60 s
#   OPENS=20000 QMP_SECONDS=10 scripts/load.sh
#
# At once:
# - four openhook-broker + openhook-test-peer pairs, each client doing
#   $OPENS round trips through HookClient (alternating an allowed and a
#   denied path, every decision audited);
# - one openhook-broker + openhook-emulator (held with -S, QMP on a
#   [[listen]] socket) answering query-status as fast as one client can
#   send for $QMP_SECONDS seconds.
# VmRSS and open fd count of every broker, client and the emulator are
# sampled before the load, every $EVERY seconds during it and after it
# (processes still alive, idle), and printed as a table. Flat = the
# "after" row equals "before" (fds) and RSS stays within allocator noise.
#
# Binaries: $BIN (default: $CARGO_TARGET_DIR or target, /debug); build
# them first: cargo build -p openhook-broker -p openhook-tests -p openhook-emulator -p openhook-firmware
set -euo pipefail
cd "$(dirname "$0")/.."
OPENS=${OPENS:-100000}
QMP_SECONDS=${QMP_SECONDS:-60}
EVERY=${EVERY:-10}
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug}
for b in openhook-broker openhook-test-peer openhook-emulator openhook-fw-image; do
    [ -e "$BIN/$b" ] || { echo "load.sh: $BIN/$b missing (see header)" >&2; exit 2; }
done
W=$(mktemp -d /tmp/openhook-load.XXXXXX)
cleanup() {
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/ok"
echo data > "$W/ok/a"
cat > "$W/opens.toml" <<EOT
version = 1
[[allow]]
path = "$W/ok/"
access = "r"
EOT

# --- four open pairs: each waits for "go" on its fifo ----------------------
declare -a BROKERS CLIENTS HOLDERS
for i in 1 2 3 4; do
    mkfifo "$W/in$i"
    "$BIN/openhook-broker" --policy "$W/opens.toml" --audit-log "$W/audit$i.log" -- \
        "$BIN/openhook-test-peer" mixed "$OPENS" "$W/ok/a" "$W/denied" \
        < "$W/in$i" > "$W/out$i" &
    BROKERS[$i]=$!
    # Holds the fifo's write end so the client's stdin stays open between
    # the "go" lines (a shell fd would leak into the next broker).
    sleep 100000 > "$W/in$i" &
    HOLDERS[$i]=$!
done
for i in 1 2 3 4; do
    until grep -q ready "$W/out$i" 2>/dev/null; do sleep 0.05; done
    CLIENTS[$i]=$(awk '{print $1}' "/proc/${BROKERS[$i]}/task/${BROKERS[$i]}/children")
done

# --- the QMP machine -----------------------------------------------------------
IMAGE="$W/openhook-fw.bin"
"$BIN/openhook-fw-image" openhook-fw.bin > "$IMAGE"
truncate -s 1M "$W/disk.img"
cat > "$W/vm.toml" <<EOT
version = 1
[[allow]]
path = "/dev/kvm"
access = "rw"
types = ["char"]
[[allow]]
path = "$IMAGE"
access = "r"
[[allow]]
path = "$W/"
access = "rw"
create = true
[[listen]]
path = "$W/qmp.sock"
fd = 10
EOT
"$BIN/openhook-broker" --policy "$W/vm.toml" -- "$BIN/openhook-emulator" \
    -m 16 -nodefaults -nographic -no-reboot -bios "$IMAGE" \
    -serial "file:$W/serial.txt" -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -drive "id=d0,file=$W/disk.img,format=raw,if=none" -device virtio-blk-device,drive=d0 \
    -S -chardev socket,id=mon,fd=10,server=on,wait=off -mon chardev=mon,mode=control \
    > "$W/vm.out" 2>&1 &
VMB=$!
until [ -S "$W/qmp.sock" ] && [ -n "$(cat /proc/$VMB/task/$VMB/children 2>/dev/null)" ]; do sleep 0.05; done
EMU=$(awk '{print $1}' "/proc/$VMB/task/$VMB/children")

# --- sampling ------------------------------------------------------------------
NAMES=("b1" "c1" "b2" "c2" "b3" "c3" "b4" "c4" "qmp-broker" "emulator")
PIDS=("${BROKERS[1]}" "${CLIENTS[1]}" "${BROKERS[2]}" "${CLIENTS[2]}" "${BROKERS[3]}" "${CLIENTS[3]}" "${BROKERS[4]}" "${CLIENTS[4]}" "$VMB" "$EMU")
sample() {
    local label=$1 row="" i
    for i in "${!PIDS[@]}"; do
        local p=${PIDS[$i]} rss fds
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo -)
        fds=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
        row+=$(printf ' %8s/%-3s' "${rss:--}" "$fds")
    done
    printf '%-10s%s\n' "$label" "$row" | tee -a "$W/samples"
}
printf '%-10s' "sample"; for n in "${NAMES[@]}"; do printf ' %12s' "$n"; done; echo "   (VmRSS kB / fds)"
sample before

# --- load ----------------------------------------------------------------------
START=$(date +%s.%N)
for i in 1 2 3 4; do echo go > "$W/in$i"; done
python3 - "$W/qmp.sock" "$QMP_SECONDS" > "$W/qmp.count" <<'PY' &
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
json.loads(f.readline())
f.write(b'{"execute":"qmp_capabilities"}\n'); f.flush(); f.readline()
end = time.monotonic() + float(sys.argv[2]); n = 0; bad = 0
while time.monotonic() < end:
    f.write(b'{"execute":"query-status","id":%d}\n' % n); f.flush()
    r = json.loads(f.readline())
    while "return" not in r and "error" not in r:
        r = json.loads(f.readline())
    if r.get("return", {}).get("status") != "prelaunch": bad += 1
    n += 1
print(n, bad)
PY
QMPC=$!
T=0
while kill -0 $QMPC 2>/dev/null; do
    sleep "$EVERY"; T=$((T + EVERY))
    kill -0 $QMPC 2>/dev/null && sample "t+${T}s"
done
wait $QMPC
for i in 1 2 3 4; do until grep -q done "$W/out$i"; do sleep 0.1; done; done
END=$(date +%s.%N)
sample after

# --- figures -------------------------------------------------------------------
echo
for i in 1 2 3 4; do
    echo "pair $i: $(grep done "$W/out$i") ($(wc -l < "$W/audit$i.log") audit lines)"
done
read -r N BAD < "$W/qmp.count"
echo "qmp: $N query-status in ${QMP_SECONDS}s ($((N / QMP_SECONDS))/s), $BAD unexpected replies"
echo "wall: $(echo "$END - $START" | bc) s"

# --- shut down: clients exit 0, the machine quits via QMP ----------------------
for i in 1 2 3 4; do echo go > "$W/in$i"; kill "${HOLDERS[$i]}"; done
python3 - "$W/qmp.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
f.readline(); f.write(b'{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'); f.flush()
f.readline(); f.readline()
PY
RC=0
for i in 1 2 3 4; do wait "${BROKERS[$i]}" || RC=$?; done
wait "$VMB" || true
echo "brokers exited ${RC} (0 expected)"
