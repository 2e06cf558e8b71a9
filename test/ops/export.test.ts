import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { MemoryStore } from "../../src/content/memory.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { copyImage } from "../../src/ops/copy-image.ts";
import { exportArchive, exportLayout } from "../../src/ops/export.ts";
import { importArchive } from "../../src/ops/import.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { makeBootImage, publishWithSkopeo, REF_NAME_ANNOTATION, writeOciLayout, type ManifestSpec } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";

let sandbox: string;
beforeEach(async () => {
  sandbox = await mkdtemp(join(tmpdir(), "ociboot-export-"));
});
afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

const bootImage = (name: string): ManifestSpec =>
  makeBootImage({ kernel: { bytes: `kernel ${name}` }, initrd: { bytes: `initrd ${name}` }, rootfs: { bytes: `rootfs ${name}`.repeat(5000) }, commandLine: "console=ttyS0", dialect: "onmetal" });

/** An artifact about `subject`, as `oras attach --artifact-type build/log` makes one. */
const buildLog = (subject: Descriptor): ManifestSpec => ({
  config: { mediaType: "application/vnd.oci.empty.v1+json", bytes: "{}" },
  layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", bytes: "build log", annotations: { "org.opencontainers.image.title": "build.log" } }],
  artifactType: "build/log",
  subject,
  untaggedEntry: true,
});

async function importInto(archive: string): Promise<{ store: OciLayoutStore; images: Descriptor[] }> {
  const store = new OciLayoutStore(join(sandbox, `imported-${Math.random().toString(16).slice(2)}`));
  const { images } = await importArchive(store, archive);
  return { store, images };
}

describe("exportArchive", () => {
  it("round-trips a multi-arch index through .tar.gz with every digest preserved", async () => {
    const layout = await writeOciLayout(join(sandbox, "source"), {
      manifests: [bootImage("amd64"), bootImage("arm64")],
      indexes: [{ tag: "multi", manifests: [{ manifest: 0, platform: { os: "linux", architecture: "amd64" } }, { manifest: 1, platform: { os: "linux", architecture: "arm64" } }] }],
    });
    const index = layout.indexes[0];
    if (index === undefined) throw new Error("no index written");
    const archive = join(sandbox, "multi.oci.tar.gz");
    const result = await exportArchive(new OciLayoutStore(layout.directory), "multi", archive, { targetReference: "ghcr.io/org/os:multi" });
    expect(result.descriptor).toEqual(index.descriptor);
    // The config both platforms share, three layers and a manifest per platform, then the index.
    expect(result.copied.count).toBe(1 + 2 * 4 + 1);
    const { store, images } = await importInto(archive);
    expect(images).toEqual([{ ...index.descriptor, annotations: { [REF_NAME_ANNOTATION]: "ghcr.io/org/os:multi" } }]);
    expect(Buffer.from(await store.readBlob(index.descriptor))).toEqual(index.bytes);
    for (const manifest of layout.manifests) {
      expect(Buffer.from(await store.readBlob(manifest.descriptor))).toEqual(manifest.bytes);
      for (const blob of [manifest.config, ...manifest.layers]) expect(await store.exists(blob)).toBe(true);
    }
  });

  it("refuses a corrupted source blob: INTEGRITY, and neither FILE nor FILE.partial is left", async () => {
    const layout = await writeOciLayout(join(sandbox, "source"), { manifests: [{ ...bootImage("x"), tag: "latest" }] });
    const kernel = layout.manifests[0]?.layers[2];
    if (kernel === undefined) throw new Error("no kernel layer written");
    await writeFile(join(layout.directory, "blobs", "sha256", kernel.digest.slice("sha256:".length)), "kernel X"); // same size, other bytes
    const archive = join(sandbox, "out", "broken.tar");
    await mkdir(join(sandbox, "out"));
    await expect(exportArchive(new OciLayoutStore(layout.directory), "latest", archive)).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(await readdir(join(sandbox, "out"))).toEqual([]);
  });

  it("takes the referrers along as untagged entries with --with-referrers, and leaves them out without", async () => {
    const image = await writeOciLayout(join(sandbox, "image-only"), { manifests: [{ ...bootImage("r"), tag: "latest" }] });
    const subject = image.manifests[0]?.descriptor;
    if (subject === undefined) throw new Error("no manifest written");
    // The same image again, now beside an artifact that refers to it (an oras --oci-layout store).
    const layout = await writeOciLayout(join(sandbox, "source"), { manifests: [{ ...bootImage("r"), tag: "latest" }, buildLog(subject)] });
    const referrer = layout.manifests[1]?.descriptor;
    if (referrer === undefined) throw new Error("no referrer written");
    const source = new OciLayoutStore(layout.directory);

    const withReferrers = join(sandbox, "with.tar");
    const result = await exportArchive(source, "latest", withReferrers, { withReferrers: true });
    expect(result.referrers.map((descriptor) => [descriptor.digest, descriptor.artifactType])).toEqual([[referrer.digest, "build/log"]]);
    const imported = await importInto(withReferrers);
    expect(imported.images.map((entry) => [entry.digest, entry.artifactType, entry.annotations])).toEqual([
      [subject.digest, undefined, undefined],
      [referrer.digest, "build/log", undefined],
    ]);
    expect((await imported.store.referrers(subject)).map((descriptor) => descriptor.digest)).toEqual([referrer.digest]);

    const without = join(sandbox, "without.tar");
    expect((await exportArchive(source, "latest", without)).referrers).toEqual([]);
    expect((await importInto(without)).images.map((entry) => entry.digest)).toEqual([subject.digest]);
  });

  it("refuses --with-referrers for a source that cannot list them, writing nothing", async () => {
    const source = new MemoryStore();
    const config = source.add("application/vnd.oci.empty.v1+json", new TextEncoder().encode("{}"));
    const manifest = source.add(
      "application/vnd.oci.image.manifest.v1+json",
      new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [] })),
    );
    await expect(exportArchive(source, manifest.digest, join(sandbox, "x.tar"), { withReferrers: true })).rejects.toMatchObject({ code: "UNSUPPORTED" });
    expect(await readdir(sandbox)).toEqual([]);
  });

  describe("from a registry", () => {
    let registry: RunningRegistry;
    let options: RegistryOptions;
    let work: string;
    let published: Awaited<ReturnType<typeof writeOciLayout>>;

    beforeAll(async () => {
      work = await mkdtemp(join(tmpdir(), "ociboot-export-registry-"));
      registry = await startRegistry();
      published = await writeOciLayout(join(work, "layout"), { manifests: [{ ...bootImage("registry"), tag: "today" }] });
      await publishWithSkopeo(published.directory, "today", registry, "os/boot");
      options = { env: {}, homeDir: work };
    });
    afterAll(async () => {
      await closeRegistryConnections(options);
      await registry?.stop();
      await rm(work, { recursive: true, force: true });
    });

    it("streams every blob from the registry into an onmetal/ .tar.xz that imports with the manifest bytes unchanged", async () => {
      const repository = openRepository({ registry: registry.host, repository: "os/boot" }, options);
      const archive = join(sandbox, "gardenlinux.oci.tar.xz");
      const result = await exportArchive(repository, "today", archive, { folder: "onmetal" });
      const manifest = published.manifests[0];
      expect(result.descriptor.digest).toBe(manifest?.descriptor.digest);
      const { store, images } = await importInto(archive);
      expect(images.map((entry) => [entry.digest, entry.annotations])).toEqual([[manifest?.descriptor.digest, undefined]]);
      expect(Buffer.from(await store.readBlob(images[0] as Descriptor))).toEqual(manifest?.bytes);
      expect((await readFile(archive)).subarray(0, 6).toString("hex")).toBe("fd377a585a00");
    });
  });
});

describe("exportLayout", () => {
  it("archives every index.json entry of a store, tagged, untagged and referrers alike, so an import lists the same", async () => {
    const first = bootImage("first");
    const written = await writeOciLayout(join(sandbox, "source"), { manifests: [{ ...first, tag: "ghcr.io/org/os:1" }, { ...bootImage("second"), untaggedEntry: true }] });
    const subject = written.manifests[0]?.descriptor;
    if (subject === undefined) throw new Error("no manifest written");
    const store = new OciLayoutStore(written.directory);
    await writeOciLayout(join(sandbox, "artifact"), { manifests: [buildLog(subject)] }).then(async (artifact) => {
      const artifactStore = new OciLayoutStore(artifact.directory);
      for (const entry of await artifactStore.entries()) await copyImage(artifactStore, entry.digest, store);
    });
    const archive = join(sandbox, "store.oci.tar.gz");
    await exportLayout(store, archive, { folder: "onmetal" });
    const { store: imported } = await importInto(archive);
    const plain = (entries: Descriptor[]) => entries.map((entry) => [entry.digest, entry.annotations?.[REF_NAME_ANNOTATION] ?? null]);
    expect(plain(await imported.entries())).toEqual(plain(await store.entries()));
    expect((await imported.referrers(subject)).map((referrer) => referrer.artifactType)).toEqual(["build/log"]);
  });
});
