import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeBootImage, publishWithSkopeo, randomBytesFile, writeOciLayout, type RandomFile } from "./images.ts";
import { startRecordingProxy, type RecordingProxy } from "./recording-proxy.ts";
import { startRegistry, type RunningRegistry } from "./registry.ts";

/** A real registry holding one onmetal boot image with a large random rootfs, reached through a recording relay. */
export interface RelayedBootImage {
  work: string;
  registry: RunningRegistry;
  relay: RecordingProxy;
  rootfs: RandomFile;
  /** Matches the rootfs blob's URL path, to inject a fault into its GET. */
  rootfsPath: RegExp;
  stop(): Promise<void>;
}

/**
 * The setup the resume tests share: `rootfsBytes` of random rootfs (tagged `v1` in `repository`),
 * published with skopeo, and a relay in front of the registry that can cut a transfer and
 * records what each request asked for.
 */
export async function startRelayedBootImage(name: string, repository: string, rootfsBytes: number): Promise<RelayedBootImage> {
  const work = await mkdtemp(join(tmpdir(), `ociboot-${name}-`));
  const registry = await startRegistry();
  const rootfs = await randomBytesFile(join(work, "rootfs.img"), rootfsBytes);
  const layout = join(work, "layout");
  await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "kernel" }, initrd: { bytes: "initrd" }, rootfs: { file: rootfs.path } })],
  });
  await publishWithSkopeo(layout, "v1", registry, repository);
  const relay = await startRecordingProxy({ url: registry.url });
  return {
    work,
    registry,
    relay,
    rootfs,
    rootfsPath: new RegExp(`/blobs/sha256(:|%3A)${rootfs.digest.slice(7)}`),
    async stop() {
      await relay.stop();
      await registry.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}
