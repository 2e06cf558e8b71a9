import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { MemoryStore } from "../../src/content/memory.ts";
import { readVerified } from "../../src/content/verify.ts";
import type { ReadableStore } from "../../src/content/store.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { parseManifest } from "../../src/oci/manifest.ts";
import { buildImage, buildMultiArchImage } from "../../src/ops/build.ts";
import { pruneStore } from "../../src/ops/prune.ts";
import { attachFiles, discoverReferrers } from "../../src/ops/referrers.ts";

const TAG = "127.0.0.1:5000/os/metal:v1";
const FILES = { "metal.os-release": "ID=gardenlinux\n", "metal.manifest": "linux-image 6.1\n", "metal.log": "build log\n".repeat(1000) };
type FileName = keyof typeof FILES;
let work: string;
let store: OciLayoutStore;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-referrers-"));
  store = new OciLayoutStore(join(work, "store"));
  for (const [name, text] of Object.entries(FILES)) await writeFile(join(work, name), text);
  for (const name of ["kernel", "initrd", "rootfs"]) await writeFile(join(work, name), `${name} bytes`);
  await buildImage(store, { kernel: join(work, "kernel"), initramfs: join(work, "initrd"), rootfs: join(work, "rootfs") }, { format: "onmetal", tag: TAG });
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const path = (name: FileName) => join(work, name);
const sha256 = (bytes: Uint8Array | string) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

async function readBytes(source: ReadableStore, descriptor: Descriptor): Promise<string> {
  return new TextDecoder().decode(await readVerified((await source.fetch(descriptor)).stream, descriptor, 1 << 20));
}

async function attachSeedFiles(): Promise<Map<FileName, Descriptor>> {
  const artifacts = new Map<FileName, Descriptor>();
  for (const [name, type] of [["metal.os-release", "build/os-release"], ["metal.manifest", "build/manifest"], ["metal.log", "build/log"]] as const) {
    artifacts.set(name, (await attachFiles(store, TAG, [path(name)], { artifactType: type, created: "2026-11-26T00:00:00Z" })).artifact);
  }
  return artifacts;
}

describe("attach and discover in an OCI layout", () => {
  it("lists the three build files by artifact type, with titles, and their bytes are the originals", async () => {
    const artifacts = await attachSeedFiles();
    const subject = await store.resolve(TAG);
    const listing = await discoverReferrers(store, TAG);
    expect(listing.subject).toEqual({ mediaType: subject.mediaType, digest: subject.digest, size: subject.size });
    expect(listing.referrers.map((referrer) => referrer.descriptor)).toEqual([...artifacts.values()]);
    expect(listing.referrers.map((referrer) => referrer.descriptor.artifactType)).toEqual(["build/os-release", "build/manifest", "build/log"]);
    for (const referrer of listing.referrers) {
      const [layer] = referrer.layers ?? [];
      const title = layer?.annotations?.["org.opencontainers.image.title"] as FileName;
      expect(Object.keys(FILES)).toContain(title);
      expect(await readBytes(store, layer!)).toBe(FILES[title]);
    }
    const logs = await discoverReferrers(store, subject.digest, { artifactType: "build/log" });
    expect(logs.referrers.map((referrer) => referrer.descriptor.digest)).toEqual([artifacts.get("metal.log")!.digest]);
  });

  it("writes each artifact as an untagged index.json entry with its artifactType and annotations, as oras does", async () => {
    const { artifact } = await attachFiles(store, TAG, [path("metal.log")], { artifactType: "build/log", annotations: { "io.example": "x" }, created: "2026-11-26T00:00:00Z" });
    const entry = (await store.entries()).find((candidate) => candidate.digest === artifact.digest);
    expect(entry).toEqual({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: artifact.digest,
      size: artifact.size,
      artifactType: "build/log",
      annotations: { "io.example": "x", "org.opencontainers.image.created": "2026-11-26T00:00:00Z" },
    });
    const manifest = parseManifest(await store.readBlob(artifact));
    expect(manifest).toMatchObject({ kind: "manifest", manifest: { config: { mediaType: "application/vnd.oci.empty.v1+json", size: 2 } } });
    expect(await store.exists({ mediaType: "application/vnd.oci.empty.v1+json", digest: sha256("{}") as Descriptor["digest"], size: 2 })).toBe(true);
  });

  it("gives the same digest and one entry for the same files and time; another time adds a second artifact", async () => {
    const options = { artifactType: "build/log", created: "2026-11-26T00:00:00Z" };
    const first = await attachFiles(store, TAG, [path("metal.log")], options);
    const again = await attachFiles(store, TAG, [path("metal.log")], options);
    expect(again.artifact.digest).toBe(first.artifact.digest);
    const later = await attachFiles(store, TAG, [path("metal.log")], { ...options, created: "2026-11-27T00:00:00Z" });
    expect(later.artifact.digest).not.toBe(first.artifact.digest);
    expect((await store.entries()).filter((entry) => entry.artifactType === "build/log")).toHaveLength(2);
    expect((await discoverReferrers(store, TAG)).referrers).toHaveLength(2);
  });

  it("keeps every artifact of concurrent attaches (index.json is changed under the lock)", async () => {
    const attaches = Array.from({ length: 6 }, (_, position) =>
      attachFiles(store, TAG, [path("metal.log")], { artifactType: "build/log", created: `2026-11-26T00:00:0${position}Z` }),
    );
    const digests = (await Promise.all(attaches)).map((result) => result.artifact.digest);
    expect((await discoverReferrers(store, TAG)).referrers.map((referrer) => referrer.descriptor.digest).sort()).toEqual(digests.sort());
  });

  it("attaches several files to one artifact, one layer each in order", async () => {
    const { layers } = await attachFiles(store, TAG, [path("metal.os-release"), path("metal.manifest")], { artifactType: "build/info" });
    expect(layers.map((layer) => layer.annotations?.["org.opencontainers.image.title"])).toEqual(["metal.os-release", "metal.manifest"]);
    expect(layers.map((layer) => layer.mediaType)).toEqual(["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar"]);
    expect(layers.map((layer) => layer.digest)).toEqual([sha256(FILES["metal.os-release"]), sha256(FILES["metal.manifest"])]);
  });

  it("takes the index as subject when the reference names one", async () => {
    const multi = await buildMultiArchImage(store, [{ architecture: "amd64", files: { kernel: join(work, "kernel") } }], { format: "ironcore", tag: "127.0.0.1:5000/os/multi:1" });
    const { subject } = await attachFiles(store, "127.0.0.1:5000/os/multi:1", [path("metal.log")], { artifactType: "build/log" });
    expect(subject).toEqual({ mediaType: "application/vnd.oci.image.index.v1+json", digest: multi.descriptor.digest, size: multi.descriptor.size });
    expect((await discoverReferrers(store, multi.descriptor.digest)).referrers).toHaveLength(1);
    expect((await discoverReferrers(store, TAG)).referrers).toHaveLength(0);
  });

  it("survives prune: the artifact's entry keeps its blobs", async () => {
    const artifacts = await attachSeedFiles();
    const result = await pruneStore(store, { graceMs: 0 });
    expect(result.removed).toEqual([]);
    const log = (await discoverReferrers(store, TAG, { artifactType: "build/log" })).referrers[0];
    expect(log?.descriptor.digest).toBe(artifacts.get("metal.log")?.digest);
    expect(await readBytes(store, log!.layers![0]!)).toBe(FILES["metal.log"]);
  });

  it("refuses two files with the same base name, a missing file and an unknown subject", async () => {
    await mkdir(join(work, "other"));
    await writeFile(join(work, "other", "metal.log"), "other");
    await expect(attachFiles(store, TAG, [path("metal.log"), join(work, "other", "metal.log")], { artifactType: "build/log" })).rejects.toMatchObject({ code: "USAGE" });
    await expect(attachFiles(store, TAG, [join(work, "nope")], { artifactType: "build/log" })).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("Cannot read") });
    await expect(attachFiles(store, "127.0.0.1:5000/os/none:1", [path("metal.log")], { artifactType: "build/log" })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect((await discoverReferrers(store, TAG)).referrers).toEqual([]);
  });
});

describe("attach to a store that cannot ingest (read twice: hash, then upload)", () => {
  it("pushes verified blobs and the manifest; discover says the store cannot list referrers", async () => {
    const memory = new MemoryStore();
    const subjectBytes = await readFile(store.blobPath((await store.resolve(TAG)).digest));
    const subject = memory.add("application/vnd.oci.image.manifest.v1+json", subjectBytes);
    const { artifact, layers } = await attachFiles(memory, subject.digest, [path("metal.log")], { artifactType: "build/log" });
    expect(layers[0]?.digest).toBe(sha256(FILES["metal.log"]));
    expect(await readBytes(memory, layers[0]!)).toBe(FILES["metal.log"]);
    const manifest = parseManifest(new TextEncoder().encode(await readBytes(memory, artifact)));
    expect(manifest).toMatchObject({ kind: "manifest", manifest: { subject: { digest: subject.digest }, artifactType: "build/log" } });
    await expect(discoverReferrers(memory, subject.digest)).rejects.toMatchObject({ code: "UNSUPPORTED" });
  });
});
