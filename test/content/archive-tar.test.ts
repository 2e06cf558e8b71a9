import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import tarStream from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spoolInto } from "../../src/content/archive-placement.ts";
import { openArchiveInPlace } from "../../src/content/archive-store.ts";
import { scanTar, type TarEntry } from "../../src/content/archive-tar.ts";
import { readVerified } from "../../src/content/verify.ts";
import { toDigest } from "../../src/oci/digest.ts";
import { fetchBootImage } from "../../src/ops/fetch.ts";
import { verifyLayoutStore } from "../../src/ops/verify.ts";
import { makeBootImage, writeOciLayout } from "../harness/images.ts";

const exec = promisify(execFile);
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-tar-scan-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** What tar-stream's streaming parser sees in the file: the reference the seeking scan must agree with. */
async function listedByTarStream(path: string): Promise<Array<{ name: string; type: string; size: number; data: string }>> {
  const extract = tarStream.extract();
  const entries: Array<{ name: string; type: string; size: number; data: string }> = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const header = (entry as unknown as { header: tarStream.Header }).header;
      entries.push({ name: header.name, type: header.type ?? "file", size: header.size ?? 0, data: createHash("sha256").update(Buffer.concat(chunks)).digest("hex") });
    }
  })();
  extract.end(await readFile(path));
  await done;
  return entries;
}

async function scanned(path: string): Promise<Array<{ name: string; type: string; size: number; data: string }>> {
  const entries: TarEntry[] = [];
  await scanTar(path, (entry) => void entries.push(entry));
  const bytes = await readFile(path);
  return entries.map((entry) => ({ name: entry.name, type: entry.type, size: entry.size, data: createHash("sha256").update(bytes.subarray(entry.offset, entry.offset + entry.size)).digest("hex") }));
}

describe("scanTar (the seeking header scan)", () => {
  // A top folder long enough that blob paths pass ustar's 100-character name field.
  const folder = `gardenlinux-metal-amd64-${"x".repeat(40)}`;

  beforeAll(async () => {
    await mkdir(join(work, "tree", folder, "blobs", "sha256"), { recursive: true });
    const content = randomBytes(70_000);
    await writeFile(join(work, "tree", folder, "blobs", "sha256", createHash("sha256").update(content).digest("hex")), content);
    await writeFile(join(work, "tree", folder, "small"), "x");
    await writeFile(join(work, "tree", folder, "empty"), "");
  });

  for (const [label, flags] of [
    ["GNU long names (L)", ["--format=gnu"]],
    ["ustar name prefixes", ["--format=ustar"]],
    ["pax extended headers (x)", ["--format=pax"]],
    ["a pax global header (g)", ["--format=pax", "--pax-option=comment:=made-by-a-test"]],
  ] as const) {
    it(`reads ${label} exactly as tar-stream does`, async () => {
      const archive = join(work, `${label.replace(/\W+/g, "-")}.tar`);
      await exec("tar", ["-cf", archive, ...flags, "-C", join(work, "tree"), folder]);
      const expected = (await listedByTarStream(archive)).filter((entry) => entry.type === "file" || entry.type === "directory");
      expect(expected.some((entry) => entry.name.length > 100)).toBe(true);
      expect(await scanned(archive)).toEqual(expected);
    });
  }

  it("names a cut tar, a damaged header and a tar without its end as truncated or corrupt", async () => {
    const archive = join(work, "whole.tar");
    await exec("tar", ["-cf", archive, "--format=gnu", "-C", join(work, "tree"), folder]);
    const whole = await readFile(archive);
    const cut = join(work, "cut.tar");
    await writeFile(cut, whole.subarray(0, 40_000));
    await expect(scanTar(cut, () => undefined)).rejects.toMatchObject({ code: "INTEGRITY", message: expect.stringContaining(`Cannot read archive ${cut}: it is truncated or corrupt`) });
    const damaged = join(work, "damaged.tar");
    const bytes = Buffer.from(whole);
    bytes[5] = (bytes[5] ?? 0) ^ 0x01;
    await writeFile(damaged, bytes);
    await expect(scanTar(damaged, () => undefined)).rejects.toMatchObject({ code: "INTEGRITY", message: expect.stringMatching(/checksum does not match/) });
    // Every entry there, but not the end-of-archive blocks.
    const endless = join(work, "endless.tar");
    const entries: TarEntry[] = [];
    await scanTar(archive, (entry) => void entries.push(entry));
    await writeFile(endless, whole);
    await truncate(endless, Math.max(...entries.map((entry) => entry.offset + Math.ceil(entry.size / 512) * 512)));
    await expect(scanTar(endless, () => undefined)).rejects.toMatchObject({ code: "INTEGRITY" });
  });
});

describe("openArchiveInPlace of a plain tar", () => {
  it("serves each blob as a range of the archive, which the reader verifies", async () => {
    const layout = join(work, "layout");
    const blob = randomBytes(1_234_567);
    const digest = createHash("sha256").update(blob).digest("hex");
    await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
    await writeFile(join(layout, "blobs", "sha256", digest), blob);
    await writeFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(layout, "index.json"), '{"schemaVersion":2,"manifests":[]}');
    const archive = join(work, "layout.tar");
    await exec("tar", ["-cf", archive, "-C", layout, "."]);
    const store = await openArchiveInPlace(archive);
    const descriptor = { mediaType: "application/octet-stream", digest: toDigest(`sha256:${digest}`), size: blob.byteLength };
    const { stream } = await store.fetch(descriptor);
    expect(Buffer.from(await readVerified(stream, descriptor, 2 * 1024 * 1024)).equals(blob)).toBe(true);
    const ranged = await store.fetch(descriptor, { offset: 1_000_000 });
    expect(ranged.offset).toBe(1_000_000);
    const chunks: Uint8Array[] = [];
    for await (const chunk of ranged.stream as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(blob.subarray(1_000_000))).toBe(true);
  });
});

describe("openArchiveInPlace of a compressed archive", () => {
  it("verifies every blob in its one pass; with keepCorrupt a corrupt large blob is one failed item of verify", async () => {
    const rootfs = randomBytes(5 * 1024 * 1024);
    const written = await writeOciLayout(join(work, "gz", "onmetal"), {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "kernel" }, initrd: { bytes: "initrd" }, rootfs: { bytes: rootfs } })],
    });
    const rootfsLayer = written.manifests[0]!.layers.find((layer) => layer.size === rootfs.byteLength)!;
    const archive = join(work, "good.oci.tar.gz");
    await exec("tar", ["-czf", archive, "-C", join(work, "gz"), "onmetal"]);
    const good = await verifyLayoutStore(await openArchiveInPlace(archive, { keepCorrupt: true }));
    expect(good.ok).toBe(true);
    expect(good.items).toHaveLength(5);

    const damaged = Buffer.from(rootfs);
    damaged[4_000_000] = (damaged[4_000_000] ?? 0) ^ 0xff;
    await writeFile(join(work, "gz", "onmetal", "blobs", "sha256", rootfsLayer.digest.slice("sha256:".length)), damaged);
    const bad = join(work, "bad.oci.tar.gz");
    await exec("tar", ["-czf", bad, "-C", join(work, "gz"), "onmetal"]);
    await expect(openArchiveInPlace(bad)).rejects.toMatchObject({ code: "INTEGRITY", message: expect.stringContaining("content hashes to") });
    const report = await verifyLayoutStore(await openArchiveInPlace(bad, { keepCorrupt: true }));
    expect(report.items.filter((item) => !item.ok).map((item) => item.name)).toEqual([rootfsLayer.digest]);
    expect(report.items.filter((item) => item.ok)).toHaveLength(4);
  });
});

describe("fetch from a compressed archive spooled into the output folder", () => {
  it("needs the archive no more after its one pass: large blobs are renamed from the spool, nothing else is left", async () => {
    const rootfs = randomBytes(6 * 1024 * 1024);
    await writeOciLayout(join(work, "spool", "onmetal"), {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: randomBytes(5 * 1024 * 1024) }, initrd: { bytes: "initrd" }, rootfs: { bytes: rootfs }, commandLine: "console=ttyS0" })],
    });
    const archive = join(work, "spool.oci.tar.gz");
    await exec("tar", ["-czf", archive, "-C", join(work, "spool"), "onmetal"]);
    const out = join(work, "spool-out");
    const placement = spoolInto(out);
    const store = await openArchiveInPlace(archive, { placement });
    expect((await readdir(out)).filter((name) => name.startsWith(".ociboot-"))).toHaveLength(2);
    // Any read of the archive from here on would fail: the files must come from the spool.
    await rm(archive);
    const report = await fetchBootImage(store, "v1", out);
    await placement.close();
    expect(report.files.map((file) => file.status)).toEqual(["downloaded", "downloaded", "downloaded", "written"]);
    expect((await readFile(join(out, "rootfs"))).equals(rootfs)).toBe(true);
    expect((await readdir(out)).filter((name) => name.startsWith(".ociboot-") || name.endsWith(".partial"))).toEqual([]);
    // A store that dropped its large blobs reads them again from the archive, which is gone now.
    await exec("tar", ["-czf", archive, "-C", join(work, "spool"), "onmetal"]);
    const dropped = await openArchiveInPlace(archive);
    await rm(archive);
    await expect(fetchBootImage(dropped, "v1", join(work, "spool-out-2"))).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
