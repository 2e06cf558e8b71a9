import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDecompressed } from "../../src/content/decompress.ts";

const exec = promisify(execFile);
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-decompress-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * Reads a stream to its end, keeping only a hash and a length. It waits a moment after each chunk,
 * as a disk would: a read the decoder's input stream started meanwhile has then landed.
 */
async function slowDigestOf(stream: ReadableStream<Uint8Array>): Promise<{ hex: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    bytes += chunk.byteLength;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { hex: hash.digest("hex"), bytes };
}

describe("the WebAssembly xz decoder", () => {
  // The decoder's input is read into two buffers used in turn: if either were refilled while the
  // decoder still held bytes of it (a read-ahead), the output would differ from the original or
  // fail to decode. Runs of one byte (a chunk of input yields megabytes), random stretches (stored
  // as they are) and text between them make the decoder ask for input at every pace.
  it("gives back the exact bytes of a multi-megabyte file, and counts every compressed byte read", async () => {
    const parts: Buffer[] = [];
    for (let round = 0; round < 6; round += 1) {
      parts.push(Buffer.alloc(3 * 1024 * 1024, round));
      parts.push(randomBytes(700 * 1024));
      parts.push(Buffer.from(randomBytes(900 * 1024).toString("hex")));
    }
    const original = Buffer.concat(parts);
    const path = join(work, "mixed.xz");
    await writeFile(join(work, "mixed"), original);
    await exec("xz", ["-T0", "-1", "-k", "-S", ".xz", join(work, "mixed")]);
    const size = (await stat(path)).size;
    expect(size).toBeGreaterThan(4 * 256 * 1024);

    let lastRead = 0;
    const decoded = await openDecompressed(path, { xz: "wasm", onRead: (done, total) => {
      expect(total).toBe(size);
      expect(done).toBeGreaterThan(lastRead);
      lastRead = done;
    } });
    expect(decoded.decoder).toBe("wasm");
    expect(await slowDigestOf(decoded.stream)).toEqual({ hex: createHash("sha256").update(original).digest("hex"), bytes: original.byteLength });
    expect(lastRead).toBe(size);
  });
});
