#!/usr/bin/env bash
# The main job end to end on the bundled default: openhook-broker launches
# the sandboxed openhook-emulator, which boots the bundled guest firmware
# (built from source) against a brokered disk image. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh >/dev/null
cargo build --release --quiet -p openhook-broker -p openhook-emulator -p openhook-tests -p openhook-firmware --bins
bin=$PWD/target/release
work=$(mktemp -d /tmp/openhook-demo.XXXXXX)
mkdir -p "$work/logs"
"$bin/openhook-fw-image" openhook-fw.bin > "$work/firmware.bin"
"$bin/openhook-fw-disk" "$work/disk.img"
cat > "$work/vm.toml" <<POLICY
version = 1
deny_errno = "EACCES"

[[allow]]
path = "/dev/kvm"
access = "rw"
types = ["char"]

[[allow]]
path = "$work/firmware.bin"
access = "r"

[[allow]]
path = "$work/disk.img"
access = "rw"

[[allow]]
path = "$work/logs/"
access = "w"
create = true
mode = 0o640

[sandbox]
mode = "require"
POLICY
echo "== policy: $work/vm.toml"
echo "== running: openhook-broker -- openhook-emulator (serial below)"
set +e
"$bin/openhook-broker" --policy "$work/vm.toml" --audit-log "$work/audit.jsonl" -- \
  "$bin/openhook-emulator" -M microvm -m 16 -nodefaults -no-reboot -name demo \
  -bios "$work/firmware.bin" \
  -serial "file:$work/logs/serial.txt" \
  -device isa-debug-exit,iobase=0xf4,iosize=4 \
  -drive "id=disk0,file=$work/disk.img,format=raw,if=none" \
  -device virtio-blk-device,drive=disk0
status=$?
set -e
cat "$work/logs/serial.txt" 2>/dev/null || true
echo "== audit log ($work/audit.jsonl):"
cat "$work/audit.jsonl" 2>/dev/null || true
echo "== exit status $status (firmware: 1 = pass, 3 = fail)"
[ "$status" -eq 1 ]
