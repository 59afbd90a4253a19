#!/usr/bin/env bash
# Builds the Debian package openhook_<version>_<arch>.deb with dpkg-deb (no
# debian/ tree, no debhelper): the three binaries, their man pages and
# openhook-policy(5), bash/zsh/fish completions (all generated at build time
# by the openhook-manpages crate), the systemd units of contrib/systemd/,
# docs/ and the example policy and arguments of contrib/examples/.
#
#   scripts/package-deb.sh [OUTDIR]      (default target/debian)
#
# Environment: OPENHOOK_DEB_PROFILE (cargo profile, default release; the
# tests use dev to package the binaries they already built),
# CARGO_TARGET_DIR (default target). Writes nothing outside OUTDIR and the
# target directory. docs/packaging.md describes the layout.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/debian}
profile=${OPENHOOK_DEB_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
case "$profile" in
  dev) bindir=$target/debug ;;
  *) bindir=$target/$profile ;;
esac
for tool in dpkg-deb gzip objcopy; do
  command -v "$tool" >/dev/null || { echo "package-deb: $tool not found (scripts/setup-deps.sh installs it)" >&2; exit 2; }
done

cargo build --quiet --profile "$profile" \
  -p openhook-broker -p openhook-emulator -p openhook-wire -p openhook-manpages --bins
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
bins=(openhook-broker openhook-emulator openhook-qmp)

mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/man/man5" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/lib/systemd/system" \
  "$root/usr/share/doc/openhook/examples" "$root/usr/share/doc/openhook/docs" \
  "$root/etc/openhook" "$root/DEBIAN"

for b in "${bins[@]}"; do
  # Debug info stays in the build; the package gets stripped binaries.
  objcopy --strip-debug "$bindir/$b" "$root/usr/bin/$b"
  chmod 0755 "$root/usr/bin/$b"
done

gen=$stage/generated
"$bindir/openhook-manpages" "$gen"
for page in "$gen"/man/*.[1-9]; do
  section=${page##*.}
  gzip -9n < "$page" > "$root/usr/share/man/man$section/$(basename "$page").gz"
done
install -m 0644 "$gen"/completions/bash/* "$root/usr/share/bash-completion/completions/"
install -m 0644 "$gen"/completions/zsh/* "$root/usr/share/zsh/vendor-completions/"
install -m 0644 "$gen"/completions/fish/* "$root/usr/share/fish/vendor_completions.d/"

install -m 0644 contrib/systemd/openhook-vm@.service contrib/systemd/openhook-vm@.socket \
  "$root/lib/systemd/system/"
install -m 0644 contrib/examples/* "$root/usr/share/doc/openhook/examples/"
install -m 0644 README.md "$root/usr/share/doc/openhook/"
cp -r docs/. "$root/usr/share/doc/openhook/docs/"
find "$root/usr/share/doc/openhook/docs" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
cat > "$root/usr/share/doc/openhook/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: openhook

Files: *
Copyright: the openhook developers
License: Apache-2.0
 On Debian systems the full text of the license is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# The highest glibc symbol version the binaries use.
glibc=$(for b in "${bins[@]}"; do objdump -T "$root/usr/bin/$b"; done |
  grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: openhook
Version: $version
Architecture: $arch
Maintainer: openhook developers <openhook@localhost>
Installed-Size: $size
Depends: libc6 (>= $glibc)
Section: admin
Priority: optional
Homepage: https://localhost/openhook
Description: privilege-separated open broker and sandboxed KVM micro-VM
 openhook-emulator is a KVM micro-VM with QEMU's microvm layout, command
 line and QMP monitor that never opens a path itself: openhook-broker
 launches it confined (seccomp, Landlock, no capabilities) and answers its
 open requests under a policy file, with an audit log. openhook-qmp is a
 manager-side QMP client that can pass fds. Includes systemd units for
 running VMs as services (openhook-vm@.service, openhook-vm@.socket).
EOF
# Units are templates: nothing to enable; tell a running systemd about them.
for script in postinst postrm; do
  cat > "$root/DEBIAN/$script" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
EOF
  chmod 0755 "$root/DEBIAN/$script"
done

deb=$out/openhook_${version}_${arch}.deb
# xz for a release; a dev build (the tests') is big and only unpacked again.
if [ "$profile" = dev ]; then compress=(-Zgzip -z1); else compress=(-Zxz); fi
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >/dev/null
echo "$deb"
