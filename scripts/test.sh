#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run calls this).
# Installs what the tests need (pinned), then: fmt, clippy, unused
# dependencies, every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
export OPENHOOK_REQUIRE_KVM=1
export OPENHOOK_REQUIRE_QEMU=1
export OPENHOOK_REQUIRE_KERNEL=1
export OPENHOOK_REQUIRE_TOOLS=1
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Dependencies no code uses (every package, the fuzz workspace included).
cargo machete
# No import cycle between sibling modules of a crate (docs/architecture.md).
python3 scripts/module-graph.py --check
# `cargo test` builds a package's binaries only for that package's own
# integration tests; the suites in tests/ run the broker and emulator
# binaries of other packages, so build every binary first.
cargo build --workspace --bins
cargo test --workspace
# Fuzzing: every target from its committed corpus, 60 s each (8 targets,
# about 7 minutes on 2 cores; see docs/fuzzing.md). FUZZ_SECONDS overrides.
# A fixed seed makes the run repeatable: a landing is not refused by
# whatever a random seed happened to find (FUZZ_SEED overrides).
FUZZ_SEED="${FUZZ_SEED:-1}" scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
