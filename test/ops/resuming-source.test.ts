import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { MemoryStore } from "../../src/content/memory.ts";
import type { FetchedContent, FetchOptions } from "../../src/content/store.ts";
import { OcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { exportArchive } from "../../src/ops/export.ts";
import { importArchive } from "../../src/ops/import.ts";
import { resumingReads } from "../../src/ops/resuming-source.ts";

/** A store whose first streams break off after `cutAfter` bytes, like a dropped connection. */
class BreakingStore extends MemoryStore {
  readonly offsetsAsked: number[] = [];
  breaksLeft: number;
  readonly #cutAfter: number;
  readonly #code: "NETWORK" | "INTEGRITY";
  readonly #ranges: boolean;

  constructor(options: { breaks: number; cutAfter: number; code?: "NETWORK" | "INTEGRITY"; ranges?: boolean }) {
    super();
    this.breaksLeft = options.breaks;
    this.#cutAfter = options.cutAfter;
    this.#code = options.code ?? "NETWORK";
    this.#ranges = options.ranges ?? true;
  }

  override async fetch(descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchedContent> {
    this.offsetsAsked.push(options.offset ?? 0);
    const fetched = await super.fetch(descriptor, this.#ranges ? options : {});
    if (descriptor.mediaType !== "application/octet-stream" || this.breaksLeft === 0) return fetched;
    this.breaksLeft--;
    const reader = fetched.stream.getReader();
    let passed = 0;
    const code = this.#code;
    const cutAfter = this.#cutAfter;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (passed >= cutAfter) {
          await reader.cancel();
          return controller.error(new OcibootError(code, "Cannot read blob: connection reset"));
        }
        const { done, value } = await reader.read();
        if (done) return controller.close();
        const part = value.subarray(0, cutAfter - passed);
        passed += part.byteLength;
        controller.enqueue(part);
      },
    }, { highWaterMark: 0 });
    return { stream, offset: fetched.offset };
  }
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const blobBytes = randomBytes(1_000_000);

describe("resumingReads", () => {
  it("continues a broken stream from the byte reached, with ranged requests", async () => {
    const store = new BreakingStore({ breaks: 2, cutAfter: 300_000 });
    const blob = store.add("application/octet-stream", blobBytes);
    const { stream } = await resumingReads(store, { retryDelayMs: 1 }).fetch(blob);
    expect((await readAll(stream)).equals(blobBytes)).toBe(true);
    expect(store.offsetsAsked).toEqual([0, 300_000, 600_000]);
  });

  it("skips what it had when the store answers from the start", async () => {
    const store = new BreakingStore({ breaks: 2, cutAfter: 300_000, ranges: false });
    const blob = store.add("application/octet-stream", blobBytes);
    const { stream } = await resumingReads(store, { retryDelayMs: 1 }).fetch(blob);
    expect((await readAll(stream)).equals(blobBytes)).toBe(true);
  });

  it("gives up after the bounded number of breaks", async () => {
    const store = new BreakingStore({ breaks: 10, cutAfter: 1000 });
    const blob = store.add("application/octet-stream", blobBytes);
    const { stream } = await resumingReads(store, { retryDelayMs: 1, breaks: 2 }).fetch(blob);
    await expect(readAll(stream)).rejects.toMatchObject({ code: "NETWORK" });
    expect(store.offsetsAsked).toEqual([0, 1000, 2000]);
  });

  it("does not ask again after a failure that is not the network's", async () => {
    const store = new BreakingStore({ breaks: 1, cutAfter: 1000, code: "INTEGRITY" });
    const blob = store.add("application/octet-stream", blobBytes);
    const { stream } = await resumingReads(store, { retryDelayMs: 1 }).fetch(blob);
    await expect(readAll(stream)).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(store.offsetsAsked).toEqual([0]);
  });

  it("lets exportArchive finish an archive across broken transfers, verified", async () => {
    const sandbox = await mkdtemp(join(tmpdir(), "ociboot-resuming-"));
    try {
      const store = new BreakingStore({ breaks: 3, cutAfter: 250_000 });
      const layer = store.add("application/octet-stream", blobBytes);
      const config = store.add("application/vnd.oci.empty.v1+json", new TextEncoder().encode("{}"));
      const manifest = store.add(
        "application/vnd.oci.image.manifest.v1+json",
        new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [layer] })),
      );
      const archive = join(sandbox, "image.tar");
      await exportArchive(store, manifest.digest, archive, { retryDelayMs: 1 });
      expect(store.breaksLeft).toBe(0);
      const imported = new OciLayoutStore(join(sandbox, "store"));
      await importArchive(imported, archive);
      expect(Buffer.from(await imported.readBlob(layer, blobBytes.byteLength)).equals(blobBytes)).toBe(true);
      expect(await readdir(sandbox)).toEqual(["image.tar", "store"]);
    } finally {
      await rm(sandbox, { recursive: true, force: true });
    }
  });
});
