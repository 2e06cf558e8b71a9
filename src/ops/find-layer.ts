import type { ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { type Role, roleOfLayer } from "../oci/dialects.ts";
import { type ManifestSelection, resolveManifest } from "./resolve.ts";

/** `--layer` names as onmetal-image and ironcore-image spell them, by role. */
export const LAYER_NAMES: Readonly<Record<string, Role>> = {
  kernel: "kernel",
  vmlinuz: "kernel",
  initramfs: "initrd",
  initrd: "initrd",
  rootfs: "rootfs",
  squashfs: "squashfs",
  uki: "uki",
  iso: "iso",
};

/**
 * The layer that plays `role` in the image `reference` names (an index is narrowed by platform
 * and flavor first). Roles come from media types only, for every dialect.
 */
export async function findLayer(store: ReadableStore, reference: string, role: Role, selection: ManifestSelection = {}, signal?: AbortSignal): Promise<Descriptor> {
  const resolved = await resolveManifest(store, reference, selection, signal);
  const layer = resolved.manifest.layers.find((candidate) => roleOfLayer(candidate) === role);
  if (!layer) {
    throw new OcibootError("NOT_FOUND", `Cannot find the ${role} layer of ${reference}: manifest ${resolved.descriptor.digest} has none`);
  }
  return layer;
}
