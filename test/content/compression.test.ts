import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciArchiveWriter } from "../../src/content/archive-writer.ts";
import { xzCompressArguments } from "../../src/content/compression.ts";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { importArchive } from "../../src/ops/import.ts";
import { describeBytes, encodeManifest, OCI_MANIFEST } from "../harness/images.ts";

const exec = promisify(execFile);
let sandbox: string;

beforeEach(async () => {
  sandbox = await mkdtemp(join(tmpdir(), "ociboot-compression-"));
});
afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

/**
 * An image whose layer is base64 text of random bytes: it compresses (about 3:4) without being
 * trivial, and at 4 MiB it spans several xz blocks at level 0 (1 MiB each), so block
 * boundaries and thread scheduling would show in the bytes if they mattered.
 */
function textImage(layerBytes = 4 * 1024 * 1024) {
  const config = Buffer.from('{"commandLine":"console=ttyS0"}');
  const layer = Buffer.from(randomBytes((layerBytes * 3) / 4).toString("base64"));
  const configDescriptor = describeBytes("application/vnd.onmetal.image.config.v1alpha1+json", config);
  const layerDescriptor = describeBytes("application/vnd.onmetal.image.rootfs.v1alpha1.rootfs", layer);
  const manifest = encodeManifest({ config: configDescriptor, layers: [layerDescriptor] });
  return [
    { descriptor: configDescriptor, bytes: config },
    { descriptor: layerDescriptor, bytes: layer },
    { descriptor: describeBytes(OCI_MANIFEST, manifest), bytes: manifest },
  ];
}

async function writeArchive(path: string, blobs: ReturnType<typeof textImage>, options: Parameters<typeof OciArchiveWriter.create>[1] = {}) {
  const writer = await OciArchiveWriter.create(path, options);
  for (const blob of blobs) await writer.push(blob.descriptor, new Blob([blob.bytes]).stream());
  const manifest = blobs.at(-1);
  if (manifest === undefined) throw new Error("no manifest");
  await writer.addUntaggedEntry(manifest.descriptor);
  await writer.commit();
}

/** Runs a program with `input` on stdin and returns its stdout; a non-zero exit throws. */
async function run(command: string, args: string[], input?: Uint8Array): Promise<Buffer> {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  const exit = new Promise<number | null>((resolve) => child.once("close", resolve));
  child.stdin.end(input);
  const output = await collect(child.stdout);
  if ((await exit) !== 0) throw new Error(`${command} ${args.join(" ")} failed`);
  return output;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function withoutPath<T>(action: () => Promise<T>): Promise<T> {
  const saved = process.env["PATH"];
  process.env["PATH"] = "/nonexistent";
  try {
    return await action();
  } finally {
    process.env["PATH"] = saved;
  }
}

describe("archive compression", () => {
  it(".tar.xz: two exports of the same content are byte-identical, and equal to one-thread multi-threaded xz of the same tar at the same level", async () => {
    const image = textImage();
    const [first, second] = [join(sandbox, "a.oci.tar.xz"), join(sandbox, "b.oci.tar.xz")];
    await writeArchive(first, image, { level: 0 });
    await writeArchive(second, image, { level: 0 });
    const bytes = await readFile(first);
    expect(bytes.equals(await readFile(second))).toBe(true);
    const tar = await run("xz", ["-dc", first]);
    // `+1` runs xz's multi-threaded encoder on a single thread: what a one-core machine makes.
    const oneThread = await run("xz", [...xzCompressArguments(0).filter((arg) => arg !== "--threads=0"), "--threads=+1"], tar);
    expect(bytes.equals(oneThread)).toBe(true);
    const fourThreads = await run("xz", [...xzCompressArguments(0).filter((arg) => arg !== "--threads=0"), "--threads=4"], tar);
    expect(bytes.equals(fourThreads)).toBe(true);
    // More than one block: the file could be decoded on several threads, and the block size is what we chose.
    const { stdout } = await exec("xz", ["--robot", "--list", first]);
    expect(Number(stdout.match(/^totals\t\d+\t(\d+)/m)?.[1])).toBeGreaterThan(1);
  });

  it("--compression-level chooses xz's level: 0 and 3 give different files, each what xz gives at that level", async () => {
    const image = textImage(1024 * 1024);
    const sizes: number[] = [];
    for (const level of [0, 3]) {
      const path = join(sandbox, `l${level}.tar.xz`);
      await writeArchive(path, image, { level });
      const bytes = await readFile(path);
      const again = await run("xz", xzCompressArguments(level), await run("xz", ["-dc", path]));
      expect(bytes.equals(again)).toBe(true);
      sizes.push(bytes.byteLength);
    }
    expect(sizes[0]).toBeGreaterThan(sizes[1] ?? Infinity);
  });

  it(".tar.gz stays zlib in process, at the level asked for", async () => {
    const image = textImage(2 * 1024 * 1024);
    const path = join(sandbox, "image.tar.gz");
    await writeArchive(path, image, { level: 1 });
    const bytes = await readFile(path);
    const tar = gunzipSync(bytes);
    expect(bytes.equals(gzipSync(tar, { level: 1 }))).toBe(true);
    expect(bytes.equals(gzipSync(tar, { level: 9 }))).toBe(false);
    expect(await withoutPath(async () => {
      await writeArchive(join(sandbox, "no-programs.tar.gz"), image);
      return "written";
    })).toBe("written");
  });

  it(".tar.zst: written by zstd on all cores, byte-identical across runs and thread counts, read back by import and GNU tar", async () => {
    const image = textImage();
    const [first, second] = [join(sandbox, "a.oci.tar.zst"), join(sandbox, "b.oci.tar.zst")];
    await writeArchive(first, image, { level: 5 });
    await writeArchive(second, image, { level: 5 });
    const bytes = await readFile(first);
    expect(bytes.subarray(0, 4).toString("hex")).toBe("28b52ffd");
    expect(bytes.equals(await readFile(second))).toBe(true);
    const tar = await run("zstd", ["-dc", first]);
    expect(bytes.equals(await run("zstd", ["-q", "-c", "-T1", "-5"], tar))).toBe(true);
    expect(bytes.equals(await run("zstd", ["-q", "-c", "-T3", "-5"], tar))).toBe(true);
    const { stdout } = await exec("tar", ["--zstd", "-tf", first]);
    expect(stdout).toContain("index.json");
    const store = new OciLayoutStore(join(sandbox, "store"));
    const imported = await importArchive(store, first);
    const manifest = image.at(-1);
    expect(imported.images).toEqual([manifest?.descriptor]);
    for (const blob of image) expect(Buffer.from(await store.readBlob(blob.descriptor, blob.bytes.byteLength)).equals(blob.bytes)).toBe(true);
  });

  it("refuses .tar.zst clearly without the zstd program, writing and reading, and leaves nothing behind", async () => {
    const image = textImage(64 * 1024);
    const path = join(sandbox, "image.tar.zst");
    await expect(withoutPath(() => OciArchiveWriter.create(path))).rejects.toMatchObject({ code: "UNSUPPORTED", message: /\.tar\.zst needs the zstd program.*\.tar\.gz/ });
    expect(await readdir(sandbox)).toEqual([]);
    await writeArchive(path, image);
    const store = new OciLayoutStore(join(sandbox, "store"));
    await expect(withoutPath(() => importArchive(store, path))).rejects.toMatchObject({ code: "UNSUPPORTED", message: /zstd-compressed and needs the zstd program/ });
  });

  it("refuses a level the compression does not take, before anything is written", async () => {
    await expect(OciArchiveWriter.create(join(sandbox, "a.tar.xz"), { level: 10 })).rejects.toMatchObject({ code: "USAGE", message: /xz takes 0 to 9/ });
    await expect(OciArchiveWriter.create(join(sandbox, "a.tar.gz"), { level: 0 })).rejects.toMatchObject({ code: "USAGE", message: /gzip takes 1 to 9/ });
    await expect(OciArchiveWriter.create(join(sandbox, "a.tar.zst"), { level: 20 })).rejects.toMatchObject({ code: "USAGE", message: /zstd takes 1 to 19/ });
    await expect(OciArchiveWriter.create(join(sandbox, "a.tar"), { level: 3 })).rejects.toMatchObject({ code: "USAGE", message: /plain \.tar is not compressed/ });
    expect(await readdir(sandbox)).toEqual([]);
  });
});
