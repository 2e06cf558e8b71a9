import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileRange } from "../../src/content/file-range.ts";
import type { FetchedContent, ReadableStore } from "../../src/content/store.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { toDigest } from "../../src/oci/digest.ts";
import { verifyBlob } from "../../src/ops/verify.ts";

const MiB = 1024 * 1024;
let dir: string;
let file: string;
let descriptor: Descriptor;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ociboot-verify-blob-"));
  file = join(dir, "blob");
  const bytes = randomBytes(24 * MiB + 5);
  await writeFile(file, bytes);
  descriptor = { mediaType: "application/octet-stream", digest: toDigest(`sha256:${createHash("sha256").update(bytes).digest("hex")}`), size: bytes.byteLength };
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A store of one blob, read from a file in pooled blocks; it records what comes back. */
function fileStore(given: Uint8Array[]): ReadableStore {
  return {
    description: "test store",
    async fetch(): Promise<FetchedContent> {
      const content = await readFileRange(file, 0, descriptor.size);
      const release = content.release;
      return {
        ...content,
        release: (chunk) => {
          given.push(chunk);
          release?.(chunk);
        },
      };
    },
  } as unknown as ReadableStore;
}

describe("verifyBlob", () => {
  it("gives every chunk back once hashed, so a pooled source reads a blob of any size in its few blocks", async () => {
    const given: Uint8Array[] = [];
    const item = await verifyBlob(fileStore(given), descriptor);
    expect(item.ok).toBe(true);
    expect(given.reduce((sum, chunk) => sum + chunk.byteLength, 0)).toBe(descriptor.size);
    // Twenty-five reads from one slab of ten blocks: the same memory, again and again.
    expect(new Set(given.map((chunk) => chunk.buffer)).size).toBe(1);
  });

  it("still reports a blob that does not match", async () => {
    const wrong = { ...descriptor, digest: toDigest(`sha256:${"0".repeat(64)}`) };
    const item = await verifyBlob(fileStore([]), wrong);
    expect(item.ok).toBe(false);
  });
});
