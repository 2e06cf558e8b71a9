import { createHash } from "node:crypto";

/** The sha256 digest of some bytes, as a registry names them. */
export const digestOf = (bytes: Uint8Array | string) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/**
 * A one-layer onmetal boot image small enough to serve from a fault-injecting server's memory
 * (test/harness/fault-server.ts): a 256 KiB kernel, a config with a command line, and its manifest.
 */
export const KERNEL = Buffer.alloc(256 * 1024, 7);
export const CONFIG = Buffer.from('{"commandLine":"console=ttyS0"}');
export const MANIFEST = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.onmetal.image.config.v1alpha1+json", digest: digestOf(CONFIG), size: CONFIG.length },
    layers: [{ mediaType: "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz", digest: digestOf(KERNEL), size: KERNEL.length }],
  }),
);
