import { GardenLinuxAnnotation } from "../oci/dialects.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import type { ImageManifest } from "../oci/manifest.ts";
import { normalizeArchitecture } from "../oci/platform.ts";

/**
 * The architecture an image says it is for: its index entry's platform, else the Garden Linux
 * `architecture` annotation of the manifest or of its kernel layer. Normalised (`aarch64` →
 * `arm64`); undefined when the image does not say (an onmetal manifest never does).
 */
export function imageArchitecture(descriptor: Descriptor, manifest: ImageManifest, kernel: Descriptor | undefined): string | undefined {
  const named =
    descriptor.platform?.architecture ??
    manifest.annotations?.[GardenLinuxAnnotation.architecture] ??
    kernel?.annotations?.[GardenLinuxAnnotation.layerArchitecture];
  return named === undefined || named === "" ? undefined : normalizeArchitecture(named).architecture;
}

/**
 * A QEMU command line that boots the kernel for `architecture`: the x86-64 PC for amd64, the
 * `virt` machine with the `max` CPU for arm64 (it has no default machine, and its default CPU
 * cannot run an arm64 kernel). None for other architectures, whose QEMU machine choice differs
 * from board to board. An image that names no architecture gets the amd64 line, as before, since
 * onmetal manifests carry none (docs/boot-hints.md).
 */
export function qemuCommandFor(architecture: string | undefined, files: { kernel: string; initrd?: string | undefined; cmdline?: string | undefined }): string | undefined {
  const tail = `-m 1024 -nographic -kernel ${files.kernel}${files.initrd ? ` -initrd ${files.initrd}` : ""}${files.cmdline ? ` -append "$(cat ${files.cmdline})"` : ""}`;
  if (architecture === undefined || architecture === "amd64") return `qemu-system-x86_64 ${tail}`;
  if (architecture === "arm64") return `qemu-system-aarch64 -M virt -cpu max ${tail}`;
  return undefined;
}
