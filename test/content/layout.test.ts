import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { isOcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { sha256Digest } from "../../src/oci/digest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { LAYOUT_FILE_TABLE } from "../oci/fixtures/conformance.ts";

const run = promisify(execFile);
const DENO = join(process.cwd(), "node_modules", ".bin", "deno");
const HELPERS = join(process.cwd(), "test", "content", "helpers");

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "ociboot-layout-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function describeBytes(bytes: Uint8Array, mediaType = "application/octet-stream"): Descriptor {
  return { mediaType, digest: sha256Digest(createHash("sha256").update(bytes).digest("hex")), size: bytes.byteLength };
}

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(stream).text();
}

/** A store holding one small manifest tagged `base`, as the child processes expect. */
function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

async function storeWithBase(path: string): Promise<{ store: OciLayoutStore; manifest: Descriptor }> {
  const store = new OciLayoutStore(path);
  const config = await store.ingestBytes(bytesOf("{}"), "application/vnd.onmetal.image.config.v1alpha1+json");
  const manifestBytes = bytesOf(JSON.stringify({ schemaVersion: 2, config, layers: [] }));
  const manifest = await store.ingestBytes(manifestBytes, MediaType.ociManifest);
  await store.tag(manifest, "base");
  return { store, manifest };
}

describe("OciLayoutStore", () => {
  it("creates the layout on first write and stores a verified blob under blobs/sha256", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    const bytes = bytesOf("kernel bytes");
    const descriptor = describeBytes(bytes);
    expect(await store.exists(descriptor)).toBe(false);
    await store.push(descriptor, new Blob([bytes]).stream());
    expect(await store.exists(descriptor)).toBe(true);
    expect(await readFile(join(root, "store", "oci-layout"), "utf8")).toBe('{"imageLayoutVersion":"1.0.0"}');
    expect(await readFile(store.blobPath(descriptor.digest), "utf8")).toBe("kernel bytes");
    expect(await text((await store.fetch(descriptor)).stream)).toBe("kernel bytes");
    expect(await text((await store.fetch(descriptor, { offset: 7 })).stream)).toBe("bytes");
  });

  it("refuses content that does not match its descriptor and leaves no file behind", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    const descriptor = describeBytes(bytesOf("the real content"));
    const push = store.push(descriptor, new Blob([bytesOf("the fake content")]).stream());
    await expect(push).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(await store.exists(descriptor)).toBe(false);
    expect(await readdir(join(root, "store", ".ociboot", "tmp"))).toEqual([]);
    expect(await readdir(join(root, "store", "blobs", "sha256"))).toEqual([]);
  });

  it("validates a digest before building any path from it", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    for (const digest of ["sha256:../../etc/passwd", "sha256:" + "A".repeat(64), "md5:ab/c", "../x"]) {
      expect(() => store.blobPath(digest)).toThrow(expect.objectContaining({ code: "INVALID_DIGEST" }));
    }
    expect(() => store.blobPath("md5:abc")).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
  });

  it("ingests a stream of unknown digest in one pass", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    const bytes = bytesOf("x".repeat(3 * 1024 * 1024 + 17));
    const descriptor = await store.ingest(new Blob([bytes]).stream(), "application/test");
    expect(descriptor).toEqual(describeBytes(bytes, "application/test"));
    expect(await store.exists(descriptor)).toBe(true);
  });

  it("tags with the full reference as an extra index.json entry, replacing an older tag of that name", async () => {
    const { store, manifest } = await storeWithBase(join(root, "store"));
    await store.tag(manifest, "ghcr.io/user/project:1.0");
    await store.tag(manifest, "ghcr.io/user/project:1.0");
    const index = JSON.parse(await readFile(join(root, "store", "index.json"), "utf8")) as { manifests: Descriptor[] };
    expect(index.manifests.map((entry) => entry.annotations?.["org.opencontainers.image.ref.name"])).toEqual([
      "base",
      "ghcr.io/user/project:1.0",
    ]);
    expect(await store.resolve("ghcr.io/user/project:1.0")).toMatchObject({ digest: manifest.digest, size: manifest.size });
    expect(await store.resolve(manifest.digest)).toMatchObject({ digest: manifest.digest });
    expect(await store.resolve(`ghcr.io/user/project@${manifest.digest}`)).toMatchObject({ digest: manifest.digest });
    const tags: string[] = [];
    for await (const tag of store.tags()) tags.push(tag);
    expect(tags).toEqual(["base", "ghcr.io/user/project:1.0"]);
    await expect(store.resolve("ghcr.io/user/project:2.0")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("resolves a manifest digest that is not listed in index.json from the blob itself", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    const bytes = bytesOf(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const descriptor = await store.ingestBytes(bytes, "ignored");
    expect(await store.resolve(descriptor.digest)).toEqual({ ...descriptor, mediaType: MediaType.ociIndex });
  });

  it("sees a missing store as empty and refuses to turn a foreign directory into a store", async () => {
    expect(await new OciLayoutStore(join(root, "nothing")).entries()).toEqual([]);
    await mkdir(join(root, "home"));
    await writeFile(join(root, "home", "notes.txt"), "mine");
    const store = new OciLayoutStore(join(root, "home"));
    await expect(store.ingestBytes(bytesOf("{}"), "x")).rejects.toMatchObject({ code: "LOCAL_IO" });
  });

  it.each(LAYOUT_FILE_TABLE)("reads a layout whose oci-layout is %s: %s", async (_label, content, outcome) => {
    const { store } = await storeWithBase(join(root, "store"));
    const layoutPath = join(root, "store", "oci-layout");
    if (content === undefined) await rm(layoutPath);
    else await writeFile(layoutPath, content);
    const reader = new OciLayoutStore(join(root, "store"));
    if (outcome === "readable") {
      await reader.requireLayout();
      expect((await reader.entries()).length).toBe(1);
      expect((await reader.resolve("base")).mediaType).toBe(MediaType.ociManifest);
      return;
    }
    const code = outcome === "invalid" ? "INVALID_MANIFEST" : "UNSUPPORTED";
    for (const read of [() => reader.requireLayout(), () => reader.entries(), () => reader.resolve("base")]) {
      await expect(read()).rejects.toMatchObject({ code, message: expect.stringContaining(layoutPath) });
    }
    expect(store).toBeDefined();
  });

  it("tells a missing directory and a directory that holds no layout apart from an empty store", async () => {
    await expect(new OciLayoutStore(join(root, "nothing")).requireLayout()).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("no such directory") });
    await mkdir(join(root, "empty"));
    await expect(new OciLayoutStore(join(root, "empty")).requireLayout()).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("not an OCI image layout") });
    await storeWithBase(join(root, "store"));
    await new OciLayoutStore(join(root, "store")).requireLayout();
  });

  it("writes oci-layout into a layout that lacks it before changing index.json", async () => {
    const { store, manifest } = await storeWithBase(join(root, "store"));
    await rm(join(root, "store", "oci-layout"));
    await store.tag(manifest, "again");
    expect(await readFile(join(root, "store", "oci-layout"), "utf8")).toBe('{"imageLayoutVersion":"1.0.0"}');
  });

  it("keeps index.json fields written by other tools", async () => {
    const { store, manifest } = await storeWithBase(join(root, "store"));
    const path = join(root, "store", "index.json");
    const index = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    await writeFile(path, JSON.stringify({ ...index, mediaType: MediaType.ociIndex, annotations: { by: "oras" } }));
    await store.tag(manifest, "other");
    const rewritten = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    expect(Object.keys(rewritten)).toEqual(["schemaVersion", "mediaType", "manifests", "annotations"]);
    expect(rewritten["annotations"]).toEqual({ by: "oras" });
  });

  it("rejects an index.json entry with a hostile digest", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    await mkdir(join(root, "store"));
    await writeFile(
      join(root, "store", "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: "sha256:../../x", size: 1 }] }),
    );
    const failure = await store.entries().catch((error: unknown) => error);
    expect(isOcibootError(failure, "INVALID_MANIFEST")).toBe(true);
  });

  it("loses no update when two processes tag into one store at once", async () => {
    const path = join(root, "store");
    await storeWithBase(path);
    const count = 150;
    await Promise.all(
      ["alpha", "beta"].map((prefix) => run(DENO, ["run", "-A", join(HELPERS, "tag-loop.ts"), path, prefix, String(count)])),
    );
    const tags: string[] = [];
    for await (const tag of new OciLayoutStore(path).tags()) tags.push(tag);
    expect(tags.filter((tag) => tag.startsWith("example.test/alpha:"))).toHaveLength(count);
    expect(tags.filter((tag) => tag.startsWith("example.test/beta:"))).toHaveLength(count);
  });

  it("never leaves a torn index.json when a writer is killed mid-write, and recovers its stale lock", async () => {
    const path = join(root, "store");
    const { store, manifest } = await storeWithBase(path);
    const before = await readFile(join(path, "index.json"), "utf8");
    for (let round = 0; round < 2; round++) {
      const tag = `example.test/crash:${round}`;
      const child = spawn(DENO, ["run", "-A", join(HELPERS, "pause-mid-write.ts"), path, tag], { stdio: ["ignore", "pipe", "inherit"] });
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      try {
        // The child says when it is inside the write: the kill lands there, whatever the machine's speed.
        await new Promise<void>((resolve, reject) => {
          child.stdout.on("data", (chunk: Buffer) => {
            if (chunk.toString().includes("mid-write")) resolve();
          });
          void exited.then(() => reject(new Error("the writer exited before it reached the middle of its write")));
        });
        // Proof that the kill is mid-write: an incomplete new index naming the tag sits in a temporary file.
        const names = await readdir(join(path, ".ociboot"), { recursive: true });
        const texts = await Promise.all(names.map((name) => readFile(join(path, ".ociboot", name), "utf8").catch(() => "")));
        expect(texts.some((text) => text.includes(tag) && !parsesAsJson(text))).toBe(true);
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
      expect(await readFile(join(path, "index.json"), "utf8")).toBe(before);
    }
    // The killed writer held the lock: the next writer must get it without waiting for a timeout.
    const quickStore = new OciLayoutStore(path, { lockTimeoutMs: 5_000 });
    await quickStore.tag(manifest, "after-crash");
    expect(await store.resolve("after-crash")).toMatchObject({ digest: manifest.digest });
  });
});
