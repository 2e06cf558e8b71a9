#!/usr/bin/env bash
# Makes a real, bootable kernel + initramfs pair for the boot test and the demo:
# Debian's cloud kernel (unpacked with dpkg-deb, not installed) and a busybox initramfs whose /init
# prints a marker with the kernel command line and powers off.
# Usage: scripts/boot-fixture.sh OUT_DIR   → OUT_DIR/vmlinuz, OUT_DIR/initrd
set -euo pipefail
out=${1:?usage: boot-fixture.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -s "$out/vmlinuz" && -s "$out/initrd" ]]; then exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

busybox=$(command -v busybox || true)
[[ -n "$busybox" ]] || busybox=/bin/busybox
if ! file -L "$busybox" 2>/dev/null | grep -q "statically linked"; then
  echo "boot-fixture: needs a static busybox (apt-get install busybox-static)" >&2
  exit 1
fi

package=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [[ -z "$package" ]]; then
  echo "boot-fixture: cannot find Debian's cloud kernel package (run apt-get update first)" >&2
  exit 1
fi
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$package" >/dev/null)
dpkg-deb -x "$work"/"$package"_*.deb "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"

mkdir -p "$work/initramfs/bin" "$work/initramfs/proc"
cp "$busybox" "$work/initramfs/bin/busybox"
cat > "$work/initramfs/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "OCIBOOT-BOOT-MARKER cmdline=[$(/bin/busybox cat /proc/cmdline)]"
/bin/busybox poweroff -f
INIT
chmod +x "$work/initramfs/init"
(cd "$work/initramfs" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -9) > "$out/initrd.tmp"
mv "$out/initrd.tmp" "$out/initrd"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "boot-fixture: $package → $out/vmlinuz ($(stat -c %s "$out/vmlinuz") B), $out/initrd ($(stat -c %s "$out/initrd") B)"
