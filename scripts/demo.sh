#!/usr/bin/env bash
# The main job on a local demo, from a fresh machine: install what is missing, build dist/ociboot,
# start a local registry, build and publish a boot image made from a real Debian kernel, fetch it
# with ociboot (verified while streaming), check it with sha256sum, and boot the fetched files in qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

needed=()
command -v docker-registry >/dev/null || needed+=(docker-registry)
command -v skopeo >/dev/null || needed+=(skopeo)
command -v qemu-system-x86_64 >/dev/null || needed+=(qemu-system-x86)
command -v cpio >/dev/null || needed+=(cpio)
command -v xz >/dev/null || needed+=(xz-utils)
[[ -x /bin/busybox ]] && file -L /bin/busybox | grep -q static || needed+=(busybox-static)
command -v file >/dev/null || needed+=(file)
if [[ ${#needed[@]} -gt 0 ]]; then
  say "Installing ${needed[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${needed[@]}"
fi
[[ -d node_modules ]] || { say "npm ci"; npm ci --no-audit --no-fund; }
say "Building dist/ociboot"
npm run --silent build

work=$(mktemp -d)
registry_pid=""
cleanup() { [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

say "Starting a local registry (CNCF distribution)"
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:0, secret: demo}
YAML
REGISTRY_LOG_LEVEL=info docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/registry.log" | head -n1)
  [[ -n "$port" ]] && curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
  sleep 0.1
done
[[ -n "${port:-}" ]] || { cat "$work/registry.log"; echo "registry did not start" >&2; exit 1; }
echo "registry at 127.0.0.1:$port"

say "Making a sample boot image: Debian's cloud kernel + a busybox initramfs"
bash scripts/boot-fixture.sh .tmp/boot-fixture
tar -C .tmp/boot-fixture -cf "$work/rootfs.tar" initrd   # a stand-in root file system
ref="127.0.0.1:$port/demo/gardenlinux:today"
ociboot="$root/dist/ociboot"
store="$work/store"
"$ociboot" --store-path "$store" build --kernel-file .tmp/boot-fixture/vmlinuz --initramfs-file .tmp/boot-fixture/initrd \
  --rootfs-file "$work/rootfs.tar" --command-line "console=ttyS0 panic=-1 quiet demo=ociboot" --tag "$ref"
"$ociboot" --store-path "$store" list

say "Publishing it to the registry"
if "$ociboot" --help | grep -q "^  push "; then
  "$ociboot" --store-path "$store" push "$ref"
else
  skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$store:$ref" "docker://$ref"
fi

out="$root/demo-boot"
rm -rf "$out"
say "ociboot fetch $ref -o $out"
"$ociboot" fetch "$ref" -o "$out"
say "Checking the files with sha256sum -c"
(cd "$out" && sha256sum -c SHA256SUMS)
if "$ociboot" --help | grep -q "^  verify "; then
  say "ociboot verify $ref --dir $out"
  "$ociboot" verify "$ref" --dir "$out"
fi

say "Booting the fetched files in qemu (software emulation, a few seconds)"
timeout 120 qemu-system-x86_64 -accel tcg -nodefaults -serial stdio -display none -m 256 -no-reboot \
  -kernel "$out/vmlinuz" -initrd "$out/initrd" -append "$(cat "$out/cmdline")" | grep --line-buffered "OCIBOOT-BOOT-MARKER"
say "Done: the verified boot files are in $out"
