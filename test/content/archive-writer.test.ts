import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compressionForPath, OciArchiveWriter } from "../../src/content/archive-writer.ts";
import { readOciArchive } from "../../src/content/archive.ts";
import { OciLayoutStore } from "../../src/content/layout.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { importArchive } from "../../src/ops/import.ts";
import { describeBytes, encodeManifest, OCI_MANIFEST, REF_NAME_ANNOTATION } from "../harness/images.ts";

const exec = promisify(execFile);
let sandbox: string;

beforeEach(async () => {
  sandbox = await mkdtemp(join(tmpdir(), "ociboot-archive-writer-"));
});
afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

/** A small image: config, one layer of `layerSize` random bytes, and the manifest over them. */
function smallImage(layerSize = 300_000) {
  const config = Buffer.from('{"commandLine":"console=ttyS0"}');
  const layer = randomBytes(layerSize);
  const configDescriptor = describeBytes("application/vnd.onmetal.image.config.v1alpha1+json", config);
  const layerDescriptor = describeBytes("application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz", layer);
  const manifest = encodeManifest({ config: configDescriptor, layers: [layerDescriptor] });
  return {
    blobs: [
      { descriptor: configDescriptor, bytes: config },
      { descriptor: layerDescriptor, bytes: layer },
    ],
    manifest: { descriptor: describeBytes(OCI_MANIFEST, manifest), bytes: manifest },
  };
}

/** Splits bytes into small chunks, so the writer sees a stream as a registry would deliver it. */
function chunked(bytes: Uint8Array, size = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

async function writeImage(path: string, options: Parameters<typeof OciArchiveWriter.create>[1] = {}, reference?: string) {
  const image = smallImage();
  const writer = await OciArchiveWriter.create(path, options);
  for (const blob of [...image.blobs, image.manifest]) await writer.push(blob.descriptor, chunked(blob.bytes));
  if (reference === undefined) await writer.addUntaggedEntry(image.manifest.descriptor);
  else await writer.tag(image.manifest.descriptor, reference);
  await writer.commit();
  return image;
}

async function tarListing(path: string): Promise<string[]> {
  const { stdout } = await exec("tar", ["-tf", path]);
  return stdout.trim().split("\n");
}

describe("OciArchiveWriter", () => {
  it("writes a plain tar holding an OCI layout at its root, index.json last, tags as ref names", async () => {
    const path = join(sandbox, "image.tar");
    const image = await writeImage(path, {}, "ghcr.io/org/os:1.0");
    const hex = (descriptor: Descriptor) => descriptor.digest.slice("sha256:".length);
    expect(await tarListing(path)).toEqual([
      "oci-layout",
      "blobs/",
      "blobs/sha256/",
      ...[...image.blobs, image.manifest].map((blob) => `blobs/sha256/${hex(blob.descriptor)}`),
      "index.json",
    ]);
    await exec("tar", ["-xf", path, "-C", sandbox]);
    expect(await readFile(join(sandbox, "oci-layout"), "utf8")).toBe('{"imageLayoutVersion":"1.0.0"}');
    const index = JSON.parse(await readFile(join(sandbox, "index.json"), "utf8"));
    expect(index).toEqual({
      schemaVersion: 2,
      manifests: [{ ...image.manifest.descriptor, annotations: { [REF_NAME_ANNOTATION]: "ghcr.io/org/os:1.0" } }],
    });
    for (const blob of image.blobs) expect(await readFile(join(sandbox, "blobs", "sha256", hex(blob.descriptor)))).toEqual(blob.bytes);
    expect(await readdir(sandbox)).not.toContain("image.tar.partial");
  });

  it("writes the same bytes for the same content (entries dated 1970, owned by root)", async () => {
    const image = smallImage();
    const paths = [join(sandbox, "a.tar"), join(sandbox, "b.tar")];
    for (const path of paths) {
      const writer = await OciArchiveWriter.create(path);
      for (const blob of [...image.blobs, image.manifest]) await writer.push(blob.descriptor, chunked(blob.bytes));
      await writer.addUntaggedEntry(image.manifest.descriptor);
      await writer.commit();
    }
    const [first, second] = await Promise.all(paths.map((path) => readFile(path)));
    expect(first?.equals(second ?? Buffer.alloc(0))).toBe(true);
    const { stdout } = await exec("tar", ["-tvf", paths[0] ?? ""]);
    expect(stdout).toMatch(/^-rw-r--r-- 0\/0 .* 1970-01-01 00:00 oci-layout$/m);
  });

  for (const [name, compression, magic, listFlag] of [
    ["image.oci.tar.gz", "gzip", "1f8b", "-tzf"],
    ["image.oci.tar.xz", "xz", "fd377a585a00", "-tJf"],
  ] as const) {
    it(`compresses ${name} (${compression}) by its name; ociboot import and GNU tar read it`, async () => {
      const path = join(sandbox, name);
      expect(compressionForPath(path)).toBe(compression);
      const image = await writeImage(path);
      expect((await readFile(path)).subarray(0, magic.length / 2).toString("hex")).toBe(magic);
      const { stdout } = await exec("tar", [listFlag, path]);
      expect(stdout).toContain(`blobs/sha256/${image.manifest.descriptor.digest.slice("sha256:".length)}`);
      const store = new OciLayoutStore(join(sandbox, "store"));
      const imported = await importArchive(store, path);
      expect(imported.images).toEqual([image.manifest.descriptor]);
      expect(await store.readBlob(image.manifest.descriptor)).toEqual(new Uint8Array(image.manifest.bytes));
    });
  }

  it("puts the layout under --archive-folder with an empty ingest/, as an onmetal-image store", async () => {
    const path = join(sandbox, "gardenlinux.oci.tar.xz");
    const image = await writeImage(path, { folder: "onmetal" });
    const listing = await tarListing(path);
    expect(listing.slice(0, 4)).toEqual(["onmetal/", "onmetal/oci-layout", "onmetal/ingest/", "onmetal/blobs/"]);
    expect(listing.every((name) => name.startsWith("onmetal/"))).toBe(true);
    expect(listing.at(-1)).toBe("onmetal/index.json");
    const kinds: string[] = [];
    for await (const entry of readOciArchive(path)) {
      kinds.push(entry.kind);
      if (entry.kind === "blob") await entry.content.cancel();
    }
    expect(kinds).toEqual(["layout", "blob", "blob", "blob", "index"]);
    const store = new OciLayoutStore(join(sandbox, "store"));
    expect((await importArchive(store, path)).images).toEqual([image.manifest.descriptor]);
  });

  it("refuses a folder the archive reader would take for part of the layout", async () => {
    for (const folder of ["blobs", "a/b", "..", ""]) {
      await expect(OciArchiveWriter.create(join(sandbox, "x.tar"), { folder })).rejects.toMatchObject({ code: "USAGE" });
    }
    expect(await readdir(sandbox)).toEqual([]);
  });

  it("lists a manifest with a subject untagged, with its artifact type, as oras --oci-layout does", async () => {
    const path = join(sandbox, "referrers.tar");
    const image = smallImage(1000);
    const extra = describeBytes("text/plain", "os-release");
    const emptyConfig = describeBytes("application/vnd.oci.empty.v1+json", "{}");
    const referrerBytes = encodeManifest({ artifactType: "build/os-release", config: emptyConfig, layers: [extra], subject: image.manifest.descriptor });
    const referrer = describeBytes(OCI_MANIFEST, referrerBytes);
    const writer = await OciArchiveWriter.create(path);
    for (const blob of [...image.blobs, image.manifest]) await writer.push(blob.descriptor, chunked(blob.bytes));
    await writer.tag(image.manifest.descriptor, "latest");
    await writer.push(extra, chunked(Buffer.from("os-release")));
    await writer.push(emptyConfig, chunked(Buffer.from("{}")));
    await writer.push(referrer, chunked(referrerBytes));
    await writer.commit();
    const store = new OciLayoutStore(join(sandbox, "store"));
    const { images } = await importArchive(store, path);
    expect(images.map((entry) => [entry.digest, entry.artifactType, entry.annotations])).toEqual([
      [image.manifest.descriptor.digest, undefined, { [REF_NAME_ANNOTATION]: "latest" }],
      [referrer.digest, "build/os-release", undefined],
    ]);
  });

  it("refuses content that does not match its descriptor; abort leaves neither FILE nor FILE.partial", async () => {
    const path = join(sandbox, "bad.tar.gz");
    const image = smallImage();
    const [config, layer] = image.blobs;
    if (config === undefined || layer === undefined) throw new Error("image without blobs");
    const corrupted = Buffer.from(layer.bytes);
    corrupted[12345] = (corrupted[12345] ?? 0) ^ 0xff;
    const writer = await OciArchiveWriter.create(path);
    await writer.push(config.descriptor, chunked(config.bytes));
    await expect(writer.push(layer.descriptor, chunked(corrupted))).rejects.toMatchObject({ code: "INTEGRITY", message: /content hashes to sha256:/ });
    // The tar now holds a bad entry: nothing more may be added to it.
    await expect(writer.push(image.manifest.descriptor, chunked(image.manifest.bytes))).rejects.toMatchObject({ code: "LOCAL_IO" });
    await writer.abort();
    expect(await readdir(sandbox)).toEqual([]);
  });

  it("refuses content longer than declared before writing past the size", async () => {
    const writer = await OciArchiveWriter.create(join(sandbox, "long.tar"));
    const declared = describeBytes("application/octet-stream", "abc");
    await expect(writer.push(declared, chunked(Buffer.from("abcdef")))).rejects.toMatchObject({ code: "INTEGRITY", message: /more than the declared 3 bytes/ });
    await writer.abort();
    expect(await readdir(sandbox)).toEqual([]);
  });

  it("streams a blob larger than any buffer: 64 MiB arrive intact", async () => {
    const path = join(sandbox, "big.tar");
    const big = randomBytes(64 * 1024 * 1024);
    const descriptor = describeBytes("application/octet-stream", big);
    const writer = await OciArchiveWriter.create(path);
    await writer.push(descriptor, chunked(big, 1024 * 1024));
    await writer.commit();
    for await (const entry of readOciArchive(path)) {
      if (entry.kind !== "blob") continue;
      const hash = createHash("sha256");
      for await (const chunk of entry.content) hash.update(chunk);
      expect(`sha256:${hash.digest("hex")}`).toBe(descriptor.digest);
    }
  });

  it("reads the source only as fast as gzip and the disk take it: never more than a few MiB in flight", async () => {
    const path = join(sandbox, "paced.tar.gz");
    // Random bytes do not compress, so what is in the file shows how much of the source has gone through.
    const big = randomBytes(48 * 1024 * 1024);
    const descriptor = describeBytes("application/octet-stream", big);
    let read = 0;
    let mostInFlight = 0;
    const source = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (read >= big.byteLength) return controller.close();
          const written = (await stat(`${path}.partial`)).size;
          mostInFlight = Math.max(mostInFlight, read - written);
          controller.enqueue(big.subarray(read, read + 1024 * 1024));
          read += 1024 * 1024;
        },
      },
      { highWaterMark: 0 },
    );
    const writer = await OciArchiveWriter.create(path);
    await writer.push(descriptor, source);
    await writer.commit();
    expect(mostInFlight).toBeLessThan(8 * 1024 * 1024);
    expect((await stat(path)).size).toBeGreaterThan(big.byteLength);
  });

  it("does not overwrite the FILE.partial of another writer", async () => {
    const path = join(sandbox, "busy.tar");
    await writeFile(`${path}.partial`, "someone else's");
    await expect(OciArchiveWriter.create(path)).rejects.toMatchObject({ code: "LOCAL_IO", message: /busy\.tar\.partial exists/ });
    expect(await readFile(`${path}.partial`, "utf8")).toBe("someone else's");
  });

  it("refuses .tar.xz clearly when there is no xz program, suggesting .tar.gz", async () => {
    const path = process.env["PATH"];
    process.env["PATH"] = "/nonexistent";
    try {
      await expect(OciArchiveWriter.create(join(sandbox, "image.tar.xz"))).rejects.toMatchObject({ code: "UNSUPPORTED", message: /xz program.*\.tar\.gz/ });
    } finally {
      process.env["PATH"] = path;
    }
    expect(await readdir(sandbox)).toEqual([]);
  });

  it("names tags and untagged entries only for content it holds", async () => {
    const writer = await OciArchiveWriter.create(join(sandbox, "x.tar"));
    const missing = describeBytes(OCI_MANIFEST, "{}");
    await expect(writer.tag(missing, "latest")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(writer.addUntaggedEntry(missing)).rejects.toMatchObject({ code: "NOT_FOUND" });
    await writer.abort();
  });
});
