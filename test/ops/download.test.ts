import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/content/memory.ts";
import type { FetchedContent, FetchOptions } from "../../src/content/store.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { downloadBlob } from "../../src/ops/download.ts";

/** A memory store that records the offsets asked for and can refuse ranges. */
class RecordingStore extends MemoryStore {
  readonly offsets: number[] = [];
  honourRanges = true;
  override async fetch(descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchedContent> {
    this.offsets.push(options.offset ?? 0);
    return super.fetch(descriptor, this.honourRanges ? options : {});
  }
}

describe("downloadBlob", () => {
  let dir: string;
  let store: RecordingStore;
  let content: Uint8Array;
  let descriptor: Descriptor;
  let target: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ociboot-download-"));
    store = new RecordingStore();
    content = randomBytes(3 * 1024 * 1024 + 17);
    descriptor = store.add("application/octet-stream", content);
    target = join(dir, "vmlinuz");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes verified content under the final name and leaves no partial file", async () => {
    const result = await downloadBlob(store, descriptor, target);
    expect(result).toEqual({ status: "downloaded", transferred: content.byteLength });
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
    expect(existsSync(`${target}.partial`)).toBe(false);
  });

  it("keeps an existing file that matches without fetching", async () => {
    await writeFile(target, content);
    const result = await downloadBlob(store, descriptor, target);
    expect(result).toEqual({ status: "existing", transferred: 0 });
    expect(store.offsets).toEqual([]);
  });

  it("replaces an existing file that does not match", async () => {
    const damaged = Buffer.from(content);
    damaged[100] = (damaged[100]! + 1) % 256;
    await writeFile(target, damaged);
    const result = await downloadBlob(store, descriptor, target);
    expect(result.status).toBe("downloaded");
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
  });

  it("resumes a partial file with a ranged fetch and transfers only the rest", async () => {
    const prefix = 1024 * 1024 + 5;
    await writeFile(`${target}.partial`, content.subarray(0, prefix));
    const result = await downloadBlob(store, descriptor, target);
    expect(result).toEqual({ status: "resumed", transferred: content.byteLength - prefix });
    expect(store.offsets).toEqual([prefix]);
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
  });

  it("starts over when the source ignores the range", async () => {
    store.honourRanges = false;
    await writeFile(`${target}.partial`, content.subarray(0, 1000));
    const result = await downloadBlob(store, descriptor, target);
    expect(result).toEqual({ status: "downloaded", transferred: content.byteLength });
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
  });

  it("never splices a bad prefix: a partial file with wrong bytes is fetched again from the start", async () => {
    const wrongPrefix = randomBytes(4096);
    await writeFile(`${target}.partial`, wrongPrefix);
    const result = await downloadBlob(store, descriptor, target);
    expect(result.status).toBe("downloaded");
    expect(store.offsets).toEqual([4096, 0]);
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
  });

  it("fails with INTEGRITY on altered content and leaves neither final nor partial file", async () => {
    const altered = Buffer.from(content);
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 0xff;
    store.corrupt(descriptor.digest, altered);
    await expect(downloadBlob(store, descriptor, target)).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.partial`)).toBe(false);
  });

  it("fails with INTEGRITY on truncated and on over-long content", async () => {
    store.corrupt(descriptor.digest, content.subarray(0, content.byteLength - 1));
    await expect(downloadBlob(store, descriptor, target)).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(existsSync(target)).toBe(false);
    store.corrupt(descriptor.digest, Buffer.concat([content, Buffer.from("x")]));
    await expect(downloadBlob(store, descriptor, target)).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(existsSync(target)).toBe(false);
  });

  it("handles an empty blob", async () => {
    const empty = store.add("application/octet-stream", new Uint8Array());
    const result = await downloadBlob(store, empty, join(dir, "empty"));
    expect(result.status).toBe("downloaded");
    expect((await readFile(join(dir, "empty"))).byteLength).toBe(0);
  });
});
