#!/usr/bin/env bash
# Installs the external tools the tests and the demo use. Idempotent; pinned
# where the registry allows it. Nothing installed by hand is assumed.
set -euo pipefail
need_apt=()
for tool in strace:strace socat:socat; do
  cmd=${tool%%:*} pkg=${tool##*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
