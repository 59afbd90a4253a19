#!/usr/bin/env bash
# Installs the external tools the tests and the demo use. Idempotent; pinned
# where the registry allows it. Nothing installed by hand is assumed.
set -euo pipefail
need_apt=()
for tool in strace:strace socat:socat qemu-system-x86_64:qemu-system-x86 python3:python3 pip3:python3-pip; do
  cmd=${tool%%:*} pkg=${tool##*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# The real Python QMP client drives the emulator in tests/tests/qmp_python.rs.
QEMU_QMP_VERSION=0.0.6
if ! python3 -c "import qemu.qmp, importlib.metadata as m; assert m.version('qemu.qmp') == '$QEMU_QMP_VERSION'" >/dev/null 2>&1; then
  python3 -m pip install -q "qemu.qmp==$QEMU_QMP_VERSION" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "qemu.qmp==$QEMU_QMP_VERSION"
fi
