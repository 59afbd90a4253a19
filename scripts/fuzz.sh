#!/usr/bin/env bash
# Runs the cargo-fuzz targets of tests/fuzz (docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds the targets (stable toolchain with RUSTC_BOOTSTRAP=1, AddressSanitizer),
# then runs each for SECONDS (default 60) starting from a scratch copy of its
# committed corpus (tests/fuzz/corpus/TARGET), so runs never grow the
# committed corpus. Prints executions per target and fails if any target finds
# a crash, a hang or a leak; the reproducer's path is printed (re-run it with
# `<binary> <file>`, or `cargo fuzz run --fuzz-dir tests/fuzz TARGET <file>`).
#
# Environment: CARGO_TARGET_DIR (the fuzz build goes to $CARGO_TARGET_DIR/fuzz,
# default target/fuzz), FUZZ_ARTIFACTS (where reproducers are kept, default
# $CARGO_TARGET_DIR/fuzz/artifacts), FUZZ_KEEP_CORPUS=DIR (keep the grown
# corpora there instead of deleting them), FUZZ_SEED=N (libFuzzer's -seed:
# the same mutation sequence on every run, as the test command uses so CI is
# repeatable; unset, every run draws a random seed, as longer campaigns
# should).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(hook_frame policy_toml policy_decide qmp_input qemu_opts virtio_blk_chain fdset_ops notify_request)

seconds=${1:-60}
if [ $# -gt 0 ]; then shift; fi
case "${FUZZ_SEED:-0}" in
  *[!0-9]*) echo "fuzz.sh: FUZZ_SEED must be a whole number, got '$FUZZ_SEED'" >&2; exit 2 ;;
esac
case "$seconds" in
  ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${ALL_TARGETS[@]}")
fi
for t in "${targets[@]}"; do
  case " ${ALL_TARGETS[*]} " in
    *" $t "*) ;;
    *) echo "fuzz.sh: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2 ;;
  esac
done

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is not installed (scripts/setup-deps.sh installs it)" >&2
  exit 2
fi

base_target=${CARGO_TARGET_DIR:-$PWD/target}
fuzz_target_dir="$base_target/fuzz"
artifacts=${FUZZ_ARTIFACTS:-$fuzz_target_dir/artifacts}
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTC_BOOTSTRAP=1

echo "fuzz.sh: building ${#targets[@]} target(s) into $fuzz_target_dir"
if [ ${#targets[@]} -eq ${#ALL_TARGETS[@]} ]; then
  cargo fuzz build --fuzz-dir tests/fuzz --target-dir "$fuzz_target_dir"
else
  for t in "${targets[@]}"; do
    cargo fuzz build --fuzz-dir tests/fuzz --target-dir "$fuzz_target_dir" "$t"
  done
fi
bin_dir="$fuzz_target_dir/$triple/release"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/openhook-fuzz.XXXXXX")
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT

failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$scratch/corpus/$t"
  mkdir -p "$corpus" "$artifacts/$t"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/
  seeds=$(find "$corpus" -type f | wc -l)
  log="$scratch/$t.log"
  echo "fuzz.sh: $t for ${seconds}s from $seeds seeds"
  status=0
  seed_arg=()
  if [ -n "${FUZZ_SEED:-}" ]; then seed_arg=(-seed="$FUZZ_SEED"); fi
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: bounded memory.
  "$bin_dir/$t" "$corpus" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "${seed_arg[@]}" \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  grown=$(find "$corpus" -type f | wc -l)
  if [ "$status" -ne 0 ]; then
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    echo "fuzz.sh: $t FAILED (exit $status); last lines of its log:" >&2
    tail -n 40 "$log" >&2
    echo "fuzz.sh: $t reproducer: ${artifact:-none written}" >&2
    failed+=("$t")
    summary+=("$(printf '%-18s %8s s %12s execs %8s/s %6s corpus  FAILED: %s' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$grown" "${artifact:-see log}")")
  else
    summary+=("$(printf '%-18s %8s s %12s execs %8s/s %6s corpus  ok' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$grown")")
  fi
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$t"/
  fi
done

echo "fuzz.sh: summary (target, time, executions, executions/s, corpus files, result)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
