import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/content/memory.ts";
import type { FetchedContent, FetchOptions } from "../../src/content/store.ts";
import { isOcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { downloadBlob } from "../../src/ops/download.ts";

/** A blob the size a registry serves with bulk reads. */
const SIZE = 40 * 1024 * 1024 + 4321;
const BLOCK = 1024 * 1024;
/** The end of a large blob's partial file that a resumed download does not build on. */
const UNORDERED_TAIL = 4 * 1024 * 1024;

/**
 * Serves content as bulk-get does: chunks in shared blocks with `release`, and checks that no
 * block is released twice or while it was still needed.
 */
class SharedBlockStore extends MemoryStore {
  readonly offsets: number[] = [];
  released = 0;
  handedOut = 0;
  /** Replace the served bytes (a store that lies about its content). */
  override?: Uint8Array;

  override async fetch(descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchedContent> {
    this.offsets.push(options.offset ?? 0);
    const inner = await super.fetch(descriptor, options);
    const whole = this.override ?? new Uint8Array(await new Response(inner.stream).arrayBuffer());
    const bytes = this.override ? whole.subarray(inner.offset) : whole;
    const live = new Set<SharedArrayBuffer>();
    let position = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull: (controller) => {
        if (position >= bytes.byteLength) {
          controller.close();
          return;
        }
        const block = new Uint8Array(new SharedArrayBuffer(BLOCK));
        const length = Math.min(BLOCK, bytes.byteLength - position);
        block.set(bytes.subarray(position, position + length));
        position += length;
        live.add(block.buffer as SharedArrayBuffer);
        this.handedOut++;
        controller.enqueue(block.subarray(0, length));
      },
    });
    return {
      stream,
      offset: inner.offset,
      release: (chunk) => {
        const buffer = chunk.buffer as SharedArrayBuffer;
        if (!live.delete(buffer)) throw new Error("released twice or not ours");
        // Poison it: a reader that still needed these bytes would now see a wrong digest.
        new Uint8Array(buffer).fill(0xee);
        this.released++;
      },
    };
  }
}

describe("downloadBlob, large blobs in pooled chunks", () => {
  let dir: string;
  let store: SharedBlockStore;
  let content: Buffer;
  let descriptor: Descriptor;
  let target: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ociboot-download-large-"));
    store = new SharedBlockStore();
    content = randomBytes(SIZE);
    descriptor = store.add("application/octet-stream", content);
    target = join(dir, "rootfs");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes verified content and gives every chunk back once written", async () => {
    const result = await downloadBlob(store, descriptor, target);
    expect(result).toEqual({ status: "downloaded", transferred: SIZE });
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
    expect(store.released).toBe(store.handedOut);
    expect(existsSync(`${target}.partial`)).toBe(false);
  });

  it("refuses content that does not hash to the digest and leaves no file", async () => {
    const damaged = Buffer.from(content);
    damaged[SIZE - 10] = (damaged[SIZE - 10]! + 1) % 256;
    store.override = damaged;
    const error = await downloadBlob(store, descriptor, target, { attempts: 1 }).catch((caught: unknown) => caught);
    expect(isOcibootError(error, "INTEGRITY")).toBe(true);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.partial`)).toBe(false);
  });

  it("fails as soon as there are more bytes than declared", async () => {
    store.override = Buffer.concat([content, Buffer.alloc(3 * BLOCK)]);
    const error = await downloadBlob(store, descriptor, target, { attempts: 1 }).catch((caught: unknown) => caught);
    expect(isOcibootError(error, "INTEGRITY")).toBe(true);
    expect((error as Error).message).toContain("more than the declared");
    expect(store.handedOut).toBeLessThanOrEqual(Math.ceil(SIZE / BLOCK) + 1);
    expect(existsSync(target)).toBe(false);
  });

  it("resumes from a partial file after hashing its prefix, all but the last 4 MiB", async () => {
    const partial = 17 * 1024 * 1024 + 3;
    const trusted = partial - UNORDERED_TAIL;
    await writeFile(`${target}.partial`, content.subarray(0, partial));
    const result = await downloadBlob(store, descriptor, target);
    expect(result).toEqual({ status: "resumed", transferred: SIZE - trusted });
    expect(store.offsets).toEqual([trusted]);
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
  });

  it("resumes past a gap that direct writes in flight can leave near the end when killed", async () => {
    const MIB = 1024 * 1024;
    // 10 MiB written, the next 2 MiB write never landed, the one after it did.
    const partial = Buffer.concat([content.subarray(0, 10 * MIB), Buffer.alloc(2 * MIB), content.subarray(12 * MIB, 14 * MIB)]);
    await writeFile(`${target}.partial`, partial);
    const result = await downloadBlob(store, descriptor, target);
    expect(result).toEqual({ status: "resumed", transferred: SIZE - 10 * MIB });
    expect(store.offsets).toEqual([10 * MIB]);
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
  });

  it("starts over when a resumed prefix turns out wrong", async () => {
    const prefix = Buffer.from(content.subarray(0, 5 * 1024 * 1024));
    prefix[7] = (prefix[7]! + 1) % 256;
    await writeFile(`${target}.partial`, prefix);
    const result = await downloadBlob(store, descriptor, target);
    expect(result.status).toBe("downloaded");
    expect(store.offsets).toEqual([prefix.length - UNORDERED_TAIL, 0]);
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
  });
});
