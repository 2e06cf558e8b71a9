import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileRange } from "../../src/content/file-range.ts";

const MiB = 1024 * 1024;
let dir: string;
let file: string;
let bytes: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ociboot-file-range-"));
  file = join(dir, "data");
  bytes = randomBytes(11 * MiB + 777);
  await writeFile(file, bytes);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function drain(stream: ReadableStream<Uint8Array>, each: (chunk: Uint8Array) => void): Promise<void> {
  const reader = stream.getReader();
  for (let next = await reader.read(); !next.done; next = await reader.read()) each(next.value);
}

const sha = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

describe("readFileRange", () => {
  it("gives exactly the range, at an unaligned offset, in page-aligned blocks that a releasing consumer reuses", async () => {
    const offset = 512 * 3 + 1;
    const length = 10 * MiB + 123;
    const content = await readFileRange(file, offset, length);
    expect(content.alignment).toBe(4096);
    const hash = createHash("sha256");
    const memories = new Set<ArrayBufferLike>();
    const sizes: number[] = [];
    await drain(content.stream, (chunk) => {
      // Copied before it goes back: the pool may lend the block again for a later read.
      hash.update(chunk);
      sizes.push(chunk.byteLength);
      expect(chunk.byteOffset % 4096).toBe(0);
      memories.add(chunk.buffer);
      content.release?.(chunk);
    });
    expect(hash.digest("hex")).toBe(sha(bytes.subarray(offset, offset + length)));
    // Every chunk but the last is a whole block; eleven reads came from the one slab.
    expect(sizes.slice(0, -1).every((size) => size === MiB)).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(length);
    expect(memories.size).toBe(1);
  });

  it("still gives every byte to a consumer that never releases (ordinary memory once the pool is out)", async () => {
    const content = await readFileRange(file, 0, bytes.byteLength);
    const chunks: Uint8Array[] = [];
    await drain(content.stream, (chunk) => chunks.push(chunk));
    expect(sha(Buffer.concat(chunks))).toBe(sha(bytes));
  });

  it("ends early, without an error, when the file is shorter than the range: the consumer's size check names it", async () => {
    const short = join(dir, "short");
    await writeFile(short, bytes.subarray(0, 3 * MiB));
    const content = await readFileRange(short, 0, 3 * MiB);
    await truncate(short, 2 * MiB + 5);
    let total = 0;
    await drain(content.stream, (chunk) => (total += chunk.byteLength));
    expect(total).toBe(2 * MiB + 5);
  });

  it("reads a small range (a manifest, a config) into ordinary memory of its size, with no pool to give back to", async () => {
    const content = await readFileRange(file, 4096, 3000);
    expect(content.release).toBeUndefined();
    expect(content.alignment).toBeUndefined();
    const chunks: Uint8Array[] = [];
    await drain(content.stream, (chunk) => chunks.push(chunk));
    expect(chunks.map((chunk) => chunk.buffer.byteLength)).toEqual([3000]);
    expect(sha(Buffer.concat(chunks))).toBe(sha(bytes.subarray(4096, 7096)));
  });

  it("fails at once for a missing file", async () => {
    await expect(readFileRange(join(dir, "missing"), 0, 10)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("closes its file when cancelled mid-range, with reads still ahead", async () => {
    const content = await readFileRange(file, 0, bytes.byteLength);
    const reader = content.stream.getReader();
    await reader.read();
    await reader.cancel();
    // A closed handle: the descriptor count of this process does not grow over many cancelled ranges.
    const before = (await readdir("/proc/self/fd")).length;
    for (let i = 0; i < 20; i++) {
      const again = await readFileRange(file, 0, bytes.byteLength);
      const r = again.stream.getReader();
      await r.read();
      await r.cancel();
    }
    expect((await readdir("/proc/self/fd")).length).toBeLessThanOrEqual(before);
  });
});
