#!/usr/bin/env bash
# Brokered-open latency and throughput: the C floor broker of ../shared/bench
# (openat2 + fstat + SCM_RIGHTS, no policy) against openhook-broker (release
# build, one-rule and 10,000-rule policies), run alternately with the same
# client, scripts/bench/hook_client_mt.c (built here with gcc). Per run it
# prints 1-thread and 2-thread p50/p99, brokered throughput, direct
# openat+close p50 and the broker's peak RSS; then medians and our/floor
# ratios. A benchmark, not a test: it prints figures and asserts nothing.
#
# The 2-thread figures are two client threads sharing the one hook
# connection (one request in flight per connection, so they serialise on a
# mutex in the client): they measure contention on one hook socket.
#
#   scripts/bench-latency.sh [ROUNDS] [COUNT]      (defaults: 5 rounds, 20000 requests)
#
# Environment: BENCH_SRC (default ../shared/bench relative to the repo, or
# /work/shared/bench), CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
count=${2:-20000}
src=${BENCH_SRC:-}
for d in "$src" ../shared/bench /work/shared/bench; do
    if [ -n "$d" ] && [ -f "$d/floor_broker.c" ]; then src=$d; break; fi
done
[ -f "$src/floor_broker.c" ] || { echo "floor_broker.c not found; set BENCH_SRC" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/floor" "$src/floor_broker.c"
gcc -O2 -pthread -o "$work/client" scripts/bench/hook_client_mt.c
cargo build --release -q -p openhook-broker
broker="$target/release/openhook-broker"

mkdir -p "$work/root"
echo data > "$work/root/file"
cat > "$work/policy.toml" <<POLICY
version = 1
deny_errno = "EACCES"

[[allow]]
path = "$work/root/"
access = "r"

# Like the floor broker: no child sandbox (the client's direct-openat
# comparison would be refused by Landlock otherwise).
[sandbox]
mode = "off"
POLICY

# A 10,000-rule policy (matching must not be a linear scan): 9,999 exact
# rules for other files plus the subtree rule the client uses.
{
    printf 'version = 1\ndeny_errno = "EACCES"\n\n[sandbox]\nmode = "off"\n\n[[allow]]\npath = "%s/root/"\naccess = "r"\n' "$work"
    for i in $(seq 1 9999); do
        printf '\n[[allow]]\npath = "%s/root/other%d"\naccess = "r"\n' "$work" "$i"
    done
} > "$work/policy10k.toml"

field() { # field NAME LINE
    echo "$2" | tr ' ' '\n' | awk -v k="$1" 'f {print; exit} $0 == k {f=1}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

keys="t1_p50_ns t1_p99_ns t1_opens_per_s t2_p50_ns t2_p99_ns t2_opens_per_s direct_p50_ns broker_vmhwm_kib"
for kind in floor ours ours10k; do for k in $keys; do : > "$work/$kind.$k"; done; done
printf '%-4s %-8s %11s %11s %11s %11s %11s %11s %10s %9s\n' run broker t1_p50_ns t1_p99_ns t1_opens/s t2_p50_ns t2_p99_ns t2_opens/s direct_ns hwm_KiB
for r in $(seq 1 "$rounds"); do
    for kind in floor ours ours10k; do
        case $kind in
            floor) out=$("$work/floor" "$work/root" -- "$work/client" "$work/root/file" "$count") ;;
            ours) out=$("$broker" --policy "$work/policy.toml" -- "$work/client" "$work/root/file" "$count") ;;
            ours10k) out=$("$broker" --policy "$work/policy10k.toml" -- "$work/client" "$work/root/file" "$count") ;;
        esac
        vals=()
        for k in $keys; do
            v=$(field "$k" "$out"); vals+=("$v"); echo "$v" >> "$work/$kind.$k"
        done
        printf '%-4s %-8s %11s %11s %11s %11s %11s %11s %10s %9s\n' "$r" "$kind" "${vals[@]}"
    done
done
echo
echo "medians over $rounds runs:"
printf '%-8s %11s %11s %11s %11s %11s %11s %10s %9s\n' broker t1_p50_ns t1_p99_ns t1_opens/s t2_p50_ns t2_p99_ns t2_opens/s direct_ns hwm_KiB
for kind in floor ours ours10k; do
    vals=()
    for k in $keys; do
        m=$(median < "$work/$kind.$k"); vals+=("$m"); eval "med_${kind}_$k=$m"
    done
    printf '%-8s %11s %11s %11s %11s %11s %11s %10s %9s\n' "$kind" "${vals[@]}"
done
echo
for kind in ours ours10k; do
    for k in t1_p50_ns t1_p99_ns t2_p50_ns t2_p99_ns t1_opens_per_s t2_opens_per_s; do
        eval "o=\$med_${kind}_$k; f=\$med_floor_$k"
        awk -v kind="$kind" -v k="$k" -v o="$o" -v f="$f" 'BEGIN { printf "ratio %s/floor %-15s %.3f\n", kind, k, o / f }'
    done
done
echo "(latency ratio target: t1_p50 <= 1.10; broker peak RSS target <= 4096 KiB)"
