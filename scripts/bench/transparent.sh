#!/usr/bin/env bash
# Transparent mode (seccomp user notification) against its floor and
# against bare QEMU, run alternately in one go. A benchmark, not a test: it
# prints figures and asserts nothing.
#
# 1. Per-open latency of an unmodified static program
#    (../shared/bench/open_loop.c: open + close, COUNT times): bare, under
#    the C floor ../shared/bench/floor_unotify.c, and under
#    `openhook-broker --transparent` (release build) with a one-rule policy.
#    p50/p99 per run, medians over ROUNDS, ratio ours/floor (goal <= 1.10).
# 2. QEMU 7.2 -M microvm running the boot-only firmware (banner, then
#    isa-debug-exit; serial on stdio): launch -> first serial byte and
#    launch -> exit, bare vs `--transparent` with a policy made by
#    `openhook-broker learn` for the same command. Medians, ratio (goal <= 1.10).
# 3. The broker's peak RSS (VmHWM, sampled every 2 ms) while it serves that
#    QEMU under the learned policy; QEMU's own beside it.
#
#   scripts/bench/transparent.sh [ROUNDS] [COUNT] [QEMU_ROUNDS]
#       (defaults: 7 rounds, 20000 opens, 11 QEMU rounds)
#
# Environment: BENCH_SRC (default ../shared/bench relative to the repo, or
# /work/shared/bench), CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-7}
count=${2:-20000}
qrounds=${3:-11}
src=${BENCH_SRC:-}
for d in "$src" ../shared/bench /work/shared/bench; do
    if [ -n "$d" ] && [ -f "$d/floor_unotify.c" ]; then src=$d; break; fi
done
[ -f "$src/floor_unotify.c" ] || { echo "floor_unotify.c not found; set BENCH_SRC" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/floor_unotify" "$src/floor_unotify.c"
gcc -O2 -static -o "$work/open_loop" "$src/open_loop.c"
cargo build --release -q -p openhook-broker -p openhook-firmware --bins
broker="$target/release/openhook-broker"

mkdir -p "$work/root"
echo data > "$work/root/file"
cat > "$work/policy.toml" <<POLICY
version = 1
deny_errno = "EACCES"

[[allow]]
path = "$work/root/"
access = "r"
POLICY

field() { # field NAME LINE
    echo "$2" | tr ' ' '\n' | awk -v k="$1" 'f {print; exit} $0 == k {f=1}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v o="$1" -v f="$2" 'BEGIN { if (f > 0) printf "%.3f", o / f; else print "n/a" }'; }

echo "== open + close of a cached file, $count opens per run, $rounds rounds"
for kind in bare floor ours; do : > "$work/$kind.p50"; : > "$work/$kind.p99"; done
printf '%-4s %-6s %12s %12s\n' run kind open_ns_p50 open_ns_p99
for r in $(seq 1 "$rounds"); do
    for kind in bare floor ours; do
        case $kind in
            bare) out=$("$work/open_loop" "$work/root/file" "$count") ;;
            floor) out=$("$work/floor_unotify" "$work/root" -- "$work/open_loop" "$work/root/file" "$count") ;;
            ours) out=$("$broker" --policy "$work/policy.toml" --transparent -- "$work/open_loop" "$work/root/file" "$count") ;;
        esac
        p50=$(field open_ns_p50 "$out"); p99=$(field open_ns_p99 "$out")
        echo "$p50" >> "$work/$kind.p50"; echo "$p99" >> "$work/$kind.p99"
        printf '%-4s %-6s %12s %12s\n' "$r" "$kind" "$p50" "$p99"
    done
done
echo
echo "medians over $rounds runs:"
printf '%-6s %12s %12s\n' kind open_ns_p50 open_ns_p99
for kind in bare floor ours; do
    m50=$(median < "$work/$kind.p50"); m99=$(median < "$work/$kind.p99")
    eval "med_${kind}_p50=$m50; med_${kind}_p99=$m99"
    printf '%-6s %12s %12s\n' "$kind" "$m50" "$m99"
done
echo "ratio ours/floor p50 $(ratio "$med_ours_p50" "$med_floor_p50")  p99 $(ratio "$med_ours_p99" "$med_floor_p99")  (goal p50 <= 1.10)"
echo "ratio ours/bare  p50 $(ratio "$med_ours_p50" "$med_bare_p50")"

if ! command -v qemu-system-x86_64 > /dev/null || [ ! -e /dev/kvm ]; then
    echo
    echo "qemu-system-x86_64 or /dev/kvm missing: QEMU figures skipped"
    exit 0
fi

"$target/release/openhook-fw-image" openhook-fw-boot.bin > "$work/fw.bin"
qemu=$(command -v qemu-system-x86_64)
qemu_args=(-M microvm -accel kvm -cpu host,-arch-capabilities -global virtio-mmio.force-legacy=false
    -m 128 -nodefaults -nographic -no-reboot -bios "$work/fw.bin" -serial stdio
    -device isa-debug-exit,iobase=0xf4,iosize=4)

# Launch -> first stdout byte, launch -> exit, and (with --hwm) the peak
# VmHWM of the launched process and of its child, sampled every 2 ms.
cat > "$work/timed.py" <<'PY'
import os, subprocess, sys, time, select
hwm = sys.argv[1] == "--hwm"
argv = sys.argv[2:] if hwm else sys.argv[1:]
def vmhwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for l in f:
                if l.startswith("VmHWM:"):
                    return int(l.split()[1])
    except OSError:
        pass
    return 0
def child_of(pid):
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                k = f.read().split()
                if k:
                    return int(k[0])
    except OSError:
        pass
    return None
t0 = time.perf_counter_ns()
p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
first = None
out = b""
peak, kid_peak, kid = 0, 0, None
fd = p.stdout.fileno()
while True:
    r, _, _ = select.select([fd], [], [], 0.002 if hwm else None)
    if hwm:
        peak = max(peak, vmhwm(p.pid))
        kid = kid or child_of(p.pid)
        if kid:
            kid_peak = max(kid_peak, vmhwm(kid))
    if r:
        b = os.read(fd, 65536)
        if not b:
            break
        if first is None:
            first = time.perf_counter_ns()
        out += b
rc = p.wait()
t_exit = time.perf_counter_ns()
ok = b"result: PASS" in out and rc == 1
print(f"first_byte_us {(first - t0) // 1000 if first else -1} exit_us {(t_exit - t0) // 1000} "
      f"status {rc} pass {int(ok)} hwm_kib {peak} child_hwm_kib {kid_peak}")
PY

# The firmware's PASS is exit status 1 (isa-debug-exit), mirrored by learn.
st=0
"$broker" learn --output "$work/qemu.toml" -- "$qemu" "${qemu_args[@]}" > /dev/null || st=$?
[ "$st" -eq 1 ] || { echo "learn run ended with status $st, not the firmware's PASS (1)" >&2; exit 1; }
echo
echo "== QEMU microvm, boot-only firmware, serial on stdio, $qrounds rounds (learned policy: $(grep -c '^\[\[allow\]\]' "$work/qemu.toml") allow rules)"
for kind in bare ours; do : > "$work/q$kind.first"; : > "$work/q$kind.exit"; done
printf '%-4s %-6s %14s %10s %s\n' run kind first_byte_us exit_us pass
for r in $(seq 1 "$qrounds"); do
    for kind in bare ours; do
        case $kind in
            bare) out=$(python3 "$work/timed.py" "$qemu" "${qemu_args[@]}") ;;
            ours) out=$(python3 "$work/timed.py" "$broker" --policy "$work/qemu.toml" --transparent -- "$qemu" "${qemu_args[@]}") ;;
        esac
        fb=$(field first_byte_us "$out"); ex=$(field exit_us "$out"); ok=$(field pass "$out")
        echo "$fb" >> "$work/q$kind.first"; echo "$ex" >> "$work/q$kind.exit"
        printf '%-4s %-6s %14s %10s %s\n' "$r" "$kind" "$fb" "$ex" "$ok"
    done
done
echo
echo "medians over $qrounds runs:"
for kind in bare ours; do
    f=$(median < "$work/q$kind.first"); e=$(median < "$work/q$kind.exit")
    eval "q_${kind}_first=$f; q_${kind}_exit=$e"
    printf '%-6s first_byte_us %8s exit_us %8s\n' "$kind" "$f" "$e"
done
echo "ratio ours/bare first byte $(ratio "$q_ours_first" "$q_bare_first")  exit $(ratio "$q_ours_exit" "$q_bare_exit")  (goal <= 1.10)"

echo
echo "== peak RSS (VmHWM), 3 runs each, largest shown"
for kind in bare ours; do : > "$work/h$kind"; : > "$work/hk$kind"; done
for r in 1 2 3; do
    out=$(python3 "$work/timed.py" --hwm "$qemu" "${qemu_args[@]}")
    field hwm_kib "$out" >> "$work/hbare"
    out=$(python3 "$work/timed.py" --hwm "$broker" --policy "$work/qemu.toml" --transparent -- "$qemu" "${qemu_args[@]}")
    field hwm_kib "$out" >> "$work/hours"; field child_hwm_kib "$out" >> "$work/hkours"
done
echo "broker (learned QEMU policy) VmHWM_KiB $(sort -n "$work/hours" | tail -1)"
echo "QEMU under the broker        VmHWM_KiB $(sort -n "$work/hkours" | tail -1)"
echo "QEMU bare                    VmHWM_KiB $(sort -n "$work/hbare" | tail -1)"
