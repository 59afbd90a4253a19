#!/usr/bin/env bash
# Installs the external tools the tests and the demo use. Idempotent; pinned
# where the registry allows it. Nothing installed by hand is assumed.
set -euo pipefail
need_apt=()
# qemu-system-x86: the reference machine for the firmware comparison tests
# (tests/tests/firmware_qemu.rs). Installed by name from Debian bookworm:
# the exact version is not pinned because bookworm point releases replace it
# on the mirror (an `=<version>` pin would break at the next update). Verified
# with 1:7.2+dfsg-7+deb12u18+b2 (QEMU 7.2.22); the check below warns unless 7.2.
# gcc/binutils: tests/firmware/build.rs builds the guest firmware (gcc -m32, ld, objcopy).
# python3/pip: the qemu.qmp client tests (emulator/tests/qmp_python.rs).
# man/groff, zsh/fish: the man page and completion tests (tests/tests/manpages.rs).
# systemd (systemd-analyze, systemd-socket-activate; the package only, no
# service is started): the unit tests (tests/tests/systemd_units.rs).
# dpkg-deb: the package build (scripts/package-deb.sh).
for tool in strace:strace socat:socat qemu-system-x86_64:qemu-system-x86 gcc:gcc ld:binutils objcopy:binutils python3:python3 pip3:python3-pip \
    man:man-db groff:groff-base zsh:zsh fish:fish systemd-analyze:systemd systemd-socket-activate:systemd dpkg-deb:dpkg; do
  cmd=${tool%%:*} pkg=${tool##*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# libc6-dev (libc.a, headers): the transparent-mode tests build their C
# probes with gcc, one of them static (tests/data/transparent/).
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need_apt+=(libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  qemu_version=$(qemu-system-x86_64 --version | head -n1)
  case "$qemu_version" in
    *"version 7.2."*) ;;
    *) echo "setup-deps: warning: expected QEMU 7.2.x (Debian bookworm), found: $qemu_version" >&2 ;;
  esac
fi

# The real Python QMP client drives the emulator in emulator/tests/qmp_python.rs.
QEMU_QMP_VERSION=0.0.6
if ! python3 -c "import qemu.qmp, importlib.metadata as m; assert m.version('qemu.qmp') == '$QEMU_QMP_VERSION'" >/dev/null 2>&1; then
  python3 -m pip install -q "qemu.qmp==$QEMU_QMP_VERSION" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "qemu.qmp==$QEMU_QMP_VERSION"
fi

# A Debian cloud kernel's uncompressed vmlinux for the -kernel test
# (tests/tests/emulator_linux.rs); see the script for why the ELF.
"$(dirname "$0")/fetch-test-kernel.sh"

# cargo-fuzz drives the fuzz targets of tests/fuzz (scripts/fuzz.sh, docs/fuzzing.md).
CARGO_FUZZ_VERSION=0.13.1
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# cargo-machete finds dependencies no code uses (scripts/test.sh runs it;
# stable toolchain, no build needed: it reads the sources).
CARGO_MACHETE_VERSION=0.9.1
if ! cargo machete --version 2>/dev/null | grep -q "$CARGO_MACHETE_VERSION"; then
  cargo install cargo-machete --version "$CARGO_MACHETE_VERSION" --locked
fi
