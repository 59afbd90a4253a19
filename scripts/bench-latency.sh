#!/usr/bin/env bash
# Brokered-open latency: the C floor broker of ../shared/bench (openat2 +
# fstat + SCM_RIGHTS, no policy) against openhook-broker (release build),
# run alternately with the same C client. Prints each run and the medians.
# A benchmark, not a test: it prints figures and asserts nothing.
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
[ -f "$src/floor_broker.c" ] || { echo "bench sources (floor_broker.c, hook_client.c) not found; set BENCH_SRC" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/floor" "$src/floor_broker.c"
gcc -O2 -o "$work/client" "$src/hook_client.c"
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

: > "$work/floor.p50"; : > "$work/ours.p50"; : > "$work/ours10k.p50"; : > "$work/direct.p50"
echo "run      kind      brokered_p50_ns brokered_p99_ns direct_p50_ns"
for r in $(seq 1 "$rounds"); do
    for kind in floor ours ours10k; do
        case $kind in
            floor) out=$("$work/floor" "$work/root" -- "$work/client" "$work/root/file" "$count") ;;
            ours) out=$("$broker" --policy "$work/policy.toml" -- "$work/client" "$work/root/file" "$count") ;;
            ours10k) out=$("$broker" --policy "$work/policy10k.toml" -- "$work/client" "$work/root/file" "$count") ;;
        esac
        p50=$(field brokered_ns_p50 "$out"); p99=$(field brokered_ns_p99 "$out"); d=$(field direct_ns_p50 "$out")
        printf '%-8s %-9s %15s %15s %13s\n' "$r" "$kind" "$p50" "$p99" "$d"
        echo "$p50" >> "$work/$kind.p50"
        echo "$d" >> "$work/direct.p50"
    done
done
f=$(median < "$work/floor.p50"); o=$(median < "$work/ours.p50"); o10=$(median < "$work/ours10k.p50"); d=$(median < "$work/direct.p50")
echo
echo "median brokered p50: floor ${f} ns, openhook ${o} ns, openhook with 10,000 rules ${o10} ns; direct openat ${d} ns"
awk -v f="$f" -v o="$o" -v o10="$o10" 'BEGIN { printf "ratio openhook/floor: %.3f   (10,000 rules: %.3f)\n", o / f, o10 / f }'
