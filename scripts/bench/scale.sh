#!/usr/bin/env bash
# N broker + emulator pairs side by side (paused, -S): per-pair PSS (from
# /proc/PID/smaps_rollup), RSS and fds of each process, and the start
# latency (launch -> QMP greeting) of the first and the Nth pair, started
# one after another; then stops them (SIGTERM). Then N QEMU 7.2 microvm
# processes the same way, the reference in the same run. A benchmark:
# prints figures, asserts nothing. Release build; docs/performance.md
# records N = 1, 10, 50.
#
#   scripts/bench/scale.sh N
#
# Environment: CARGO_TARGET_DIR (default target), SCALE_QEMU=0 (no QEMU).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:?usage: scripts/bench/scale.sh N}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p openhook-broker -p openhook-emulator -p openhook-firmware --bins
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/release/openhook-fw-image" openhook-fw-boot.bin > "$work/firmware.bin"
ulimit -n 65536 2>/dev/null || true
qemu=()
if [ "${SCALE_QEMU:-1}" != 0 ] && command -v qemu-system-x86_64 >/dev/null; then
  qemu=("$(command -v qemu-system-x86_64)")
fi
python3 scripts/bench/scale.py "$n" "$PWD/$target/release/openhook-broker" \
  "$PWD/$target/release/openhook-emulator" "$work/firmware.bin" "${qemu[@]}"
