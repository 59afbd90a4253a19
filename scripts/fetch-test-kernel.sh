#!/usr/bin/env bash
# Fetches a Debian cloud kernel and unpacks its uncompressed vmlinux (ELF)
# for the -kernel test (tests/tests/emulator_linux.rs). On PVM dev hosts the
# bzImage's own decompressor runs emulated and prints nothing for minutes;
# the ELF skips it and reaches the kernel's first earlyprintk line in
# seconds. Idempotent. Output: $OPENHOOK_TEST_KERNEL (default
# /var/tmp/openhook-test-kernel/vmlinux).
#
# The package is resolved through Debian's linux-image-cloud-amd64
# meta-package (the ABI-versioned name changes with each kernel update, so a
# fixed name would vanish from the mirror). Verified with
# linux-image-6.1.0-56-cloud-amd64 6.1.192-2 (LZ4-compressed payload).
set -euo pipefail
out=${OPENHOOK_TEST_KERNEL:-/var/tmp/openhook-test-kernel/vmlinux}
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
command -v lz4 >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq --no-install-recommends lz4; }
(cd "$work" && apt-get download -qq "$pkg" 2>/dev/null)
dpkg-deb -x "$work"/*.deb "$work/x"
bz=$(ls "$work"/x/boot/vmlinuz-*)
# Find the compressed payload inside the bzImage and unpack it.
python3 - "$bz" "$work" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
for name, magic in (("lz4", b"\x02\x21\x4c\x18"), ("xz", b"\xfd7zXZ\x00"), ("zst", b"\x28\xb5\x2f\xfd"), ("gz", b"\x1f\x8b\x08")):
    at = data.find(magic)
    if at >= 0:
        open(f"{sys.argv[2]}/payload.{name}", "wb").write(data[at:])
        break
PY
p=$(ls "$work"/payload.* 2>/dev/null | head -n1)
case "$p" in
  *.lz4) lz4 -dc "$p" > "$work/vmlinux" 2>/dev/null || true ;;
  *.xz) xz -dc "$p" > "$work/vmlinux" 2>/dev/null || true ;;
  *.zst) zstd -dc "$p" > "$work/vmlinux" 2>/dev/null || true ;;
  *.gz) gzip -dc "$p" > "$work/vmlinux" 2>/dev/null || true ;;
  *) echo "fetch-test-kernel: no known payload in $bz" >&2; exit 1 ;;
esac
head -c 4 "$work/vmlinux" | grep -q "ELF" || { echo "fetch-test-kernel: unpacking $p gave no ELF" >&2; exit 1; }
mv "$work/vmlinux" "$out"
echo "fetch-test-kernel: $pkg -> $out"
