import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { fetchBootImage } from "../../src/ops/fetch.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { makeBootImage, publishWithSkopeo, type WrittenLayout, writeOciLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";

/** What each hash computed in this test file was fed, when it was small enough to be a manifest. */
const hashed = vi.hoisted(() => ({ inputs: [] as Buffer[] }));

// The seam: every hash made through node:crypto, by ociboot or anything else, records its input.
vi.mock("node:crypto", async (importOriginal) => {
  const original = await importOriginal<typeof import("node:crypto")>();
  const createHash = (algorithm: string, options?: unknown) => {
    const hash = original.createHash(algorithm, options as never);
    const chunks: Buffer[] = [];
    let length = 0;
    const update = hash.update.bind(hash);
    const digest = hash.digest.bind(hash);
    Object.assign(hash, {
      update(data: string | Uint8Array, encoding?: BufferEncoding) {
        const bytes = typeof data === "string" ? Buffer.from(data, encoding) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        length += bytes.byteLength;
        if (length <= 64 * 1024) chunks.push(Buffer.from(bytes));
        update(data as never, encoding as never);
        return hash;
      },
      digest(encoding?: import("node:crypto").BinaryToTextEncoding) {
        if (length <= 64 * 1024) hashed.inputs.push(Buffer.concat(chunks));
        return encoding === undefined ? digest() : digest(encoding);
      },
    });
    return hash;
  };
  return { ...original, createHash, default: { ...original, createHash } };
});

/**
 * The main path (registry → fetch) reads each manifest and index once and hashes it once: the
 * digest computed when the bytes arrived is the check, so the graph walk does not hash them again.
 */
describe("fetch from a registry hashes each manifest once", () => {
  let work: string;
  let registry: RunningRegistry;
  let layout: WrittenLayout;
  let options: RegistryOptions;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-hashed-once-"));
    registry = await startRegistry();
    layout = await writeOciLayout(join(work, "layout"), {
      manifests: [
        makeBootImage({ dialect: "onmetal", kernel: { bytes: "kernel amd64" }, initrd: { bytes: "initrd amd64" }, rootfs: { bytes: "rootfs amd64" }, commandLine: "console=ttyS0" }),
        makeBootImage({ dialect: "onmetal", kernel: { bytes: "kernel arm64" }, initrd: { bytes: "initrd arm64" }, rootfs: { bytes: "rootfs arm64" }, commandLine: "console=ttyAMA0" }),
      ],
      indexes: [{ tag: "multi", manifests: [{ manifest: 0, platform: { os: "linux", architecture: "amd64" } }, { manifest: 1, platform: { os: "linux", architecture: "arm64" } }] }],
    });
    await publishWithSkopeo(layout.directory, "multi", registry, "os/boot");
    options = { env: {}, homeDir: work };
  }, 120_000);
  afterAll(async () => {
    await closeRegistryConnections(options);
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    hashed.inputs.length = 0;
  });

  const timesHashed = (bytes: Uint8Array) => hashed.inputs.filter((input) => input.equals(bytes)).length;

  it("through an index: the index once, the chosen manifest once, its config once", async () => {
    const repository = openRepository({ registry: registry.host, repository: "os/boot" }, options);
    const report = await fetchBootImage(repository, "multi", join(work, "out"), { platform: { os: "linux", architecture: "arm64" } });
    const [index] = layout.indexes;
    const arm64 = layout.manifests[1];
    expect(report.digest).toBe(arm64?.descriptor.digest);
    expect(report.commandLine).toBe("console=ttyAMA0");
    // The seam sees hashes at all: the blobs were checked, each once.
    expect(timesHashed(Buffer.from("rootfs arm64"))).toBe(1);
    expect(timesHashed(index!.bytes)).toBe(1);
    expect(timesHashed(arm64!.bytes)).toBe(1);
  });

  it("by digest: the manifest once", async () => {
    const repository = openRepository({ registry: registry.host, repository: "os/boot" }, options);
    const amd64 = layout.manifests[0]!;
    const report = await fetchBootImage(repository, amd64.descriptor.digest, join(work, "by-digest"));
    expect(report.digest).toBe(amd64.descriptor.digest);
    expect(timesHashed(amd64.bytes)).toBe(1);
  });
});
