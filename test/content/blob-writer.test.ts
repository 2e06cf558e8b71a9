import { randomBytes } from "node:crypto";
import { closeSync, constants, existsSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statfsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type BlobWriter, openBlobWriter } from "../../src/content/blob-writer.ts";

const MIB = 1024 * 1024;
const O_DIRECT_OCTAL = 0o40000;
const TMPFS_MAGIC = 0x01021994;

/** The open flags of our descriptor for `path`, from /proc: proves what the kernel was asked for. */
function openFlagsOf(path: string): number[] {
  return readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== path) return [];
      const match = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
      return match?.[1] ? [Number.parseInt(match[1], 8)] : [];
    } catch {
      return [];
    }
  });
}

/** Hands `bytes` to the writer in uneven chunks, as a network does. */
async function addInPieces(writer: BlobWriter, bytes: Uint8Array): Promise<void> {
  const sizes = [1, 4095, 65_536, 1_048_577, 333, 2 * MIB + 17];
  let offset = 0;
  for (let index = 0; offset < bytes.byteLength; index++) {
    const length = Math.min(sizes[index % sizes.length] as number, bytes.byteLength - offset);
    // A copy, as a source would hand out its own memory.
    await writer.add(bytes.slice(offset, offset + length));
    offset += length;
  }
}

const procAvailable = existsSync("/proc/self/fdinfo");
const shmIsTmpfs = (() => {
  try {
    return statfsSync("/dev/shm").type === TMPFS_MAGIC;
  } catch {
    return false;
  }
})();
/** Whether this file system takes O_DIRECT at all (overlay and older tmpfs may not). */
function directIoWorksIn(directory: string): boolean {
  const probe = join(directory, "direct-probe");
  try {
    closeSync(openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT, 0o644));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { force: true });
  }
}
const directInTmp = directIoWorksIn(tmpdir());

describe("openBlobWriter", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ociboot-writer-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(!procAvailable || !directInTmp)("writes a large blob with O_DIRECT, the unaligned tail included, and syncs it", async () => {
    const path = join(dir, "blob.partial");
    const bytes = randomBytes(20 * MIB + 1234);
    const writer = await openBlobWriter(path, { start: 0, expectedBytes: bytes.byteLength });
    expect(writer.kind).toBe("direct");
    const flags = openFlagsOf(path);
    expect(flags.some((value) => (value & O_DIRECT_OCTAL) !== 0)).toBe(true);
    await addInPieces(writer, bytes);
    expect(await writer.finish()).toBe(bytes.byteLength);
    await writer.close();
    expect(openFlagsOf(path)).toEqual([]);
    expect(Buffer.compare(await readFile(path), bytes)).toBe(0);
  });

  it("gives every chunk's memory back exactly once", async () => {
    const path = join(dir, "blob.partial");
    const bytes = randomBytes(18 * MIB + 5);
    for (const buffered of [false, true]) {
      const released = new Set<Uint8Array>();
      let twice = 0;
      const writer = await openBlobWriter(path, {
        start: 0,
        expectedBytes: bytes.byteLength,
        buffered,
        chunks: {
          release: (chunk) => {
            if (released.has(chunk)) twice++;
            released.add(chunk);
          },
        },
      });
      const chunks: Uint8Array[] = [];
      for (let offset = 0; offset < bytes.byteLength; offset += 3 * MIB + 7) {
        const chunk = bytes.slice(offset, offset + 3 * MIB + 7);
        chunks.push(chunk);
        await writer.add(chunk);
      }
      await writer.finish();
      await writer.close();
      expect(twice).toBe(0);
      expect(chunks.every((chunk) => released.has(chunk))).toBe(true);
      expect(Buffer.compare(await readFile(path), bytes)).toBe(0);
    }
  });

  it.skipIf(!directInTmp)("still writes every byte when a source promises aligned chunks but hands out unaligned memory", async () => {
    const path = join(dir, "misaligned.partial");
    const bytes = randomBytes(20 * MIB + 777);
    const writer = await openBlobWriter(path, { start: 0, expectedBytes: bytes.byteLength, chunks: { alignment: 4096 } });
    expect(writer.kind).toBe("direct");
    let offset = 0;
    for (let index = 0; offset < bytes.byteLength; index++) {
      const length = Math.min(MIB, bytes.byteLength - offset);
      // Two views 16 bytes apart: at most one of them can start on a page.
      const backing = new Uint8Array(length + 64);
      const chunk = backing.subarray(16 + (index % 2) * 16, 16 + (index % 2) * 16 + length);
      chunk.set(bytes.subarray(offset, offset + length));
      await writer.add(chunk);
      offset += length;
    }
    expect(await writer.finish()).toBe(bytes.byteLength);
    await writer.close();
    expect(Buffer.compare(await readFile(path), bytes)).toBe(0);
  });

  it("writes small blobs through the page cache", async () => {
    const path = join(dir, "small.partial");
    const bytes = randomBytes(100_000);
    const writer = await openBlobWriter(path, { start: 0, expectedBytes: bytes.byteLength });
    expect(writer.kind).toBe("buffered");
    await addInPieces(writer, bytes);
    await writer.finish();
    await writer.close();
    expect(Buffer.compare(await readFile(path), bytes)).toBe(0);
  });

  it.skipIf(!shmIsTmpfs || !procAvailable)("writes correctly on tmpfs, whether or not the kernel allows O_DIRECT there", async () => {
    const shmDir = await mkdtemp("/dev/shm/ociboot-writer-");
    try {
      const path = join(shmDir, "blob.partial");
      const bytes = randomBytes(17 * MIB + 3);
      const writer = await openBlobWriter(path, { start: 0, expectedBytes: bytes.byteLength });
      // The kind the writer reports is what the kernel was actually asked for.
      const direct = openFlagsOf(path).some((value) => (value & O_DIRECT_OCTAL) !== 0);
      expect(writer.kind).toBe(direct ? "direct" : "buffered");
      await addInPieces(writer, bytes);
      await writer.finish();
      await writer.close();
      expect(Buffer.compare(await readFile(path), bytes)).toBe(0);
    } finally {
      await rm(shmDir, { recursive: true, force: true });
    }
  });

  it("continues after a kept prefix: directly from an aligned one, through the page cache from any other", async () => {
    const bytes = randomBytes(24 * MIB + 99);
    for (const [prefix, kind] of [
      [4 * MIB, directInTmp ? "direct" : "buffered"],
      [4 * MIB + 1, "buffered"],
    ] as const) {
      const path = join(dir, `resume-${prefix}.partial`);
      // The prefix, followed by junk that must be cut off.
      await writeFile(path, Buffer.concat([bytes.subarray(0, prefix), randomBytes(5000)]));
      const writer = await openBlobWriter(path, { start: prefix, expectedBytes: bytes.byteLength - prefix });
      expect(writer.kind).toBe(kind);
      await addInPieces(writer, bytes.subarray(prefix));
      expect(await writer.finish()).toBe(bytes.byteLength);
      await writer.close();
      expect(Buffer.compare(await readFile(path), bytes)).toBe(0);
    }
  });

  it("leaves exactly the bytes added so far after a cut, so a later run resumes after them", async () => {
    const bytes = randomBytes(20 * MIB);
    for (const buffered of [false, true]) {
      const path = join(dir, `cut-${buffered}.partial`);
      const writer = await openBlobWriter(path, { start: 0, expectedBytes: bytes.byteLength, buffered });
      const received = 5 * MIB + 12_345;
      await addInPieces(writer, bytes.subarray(0, received));
      await writer.flush();
      await writer.close();
      expect(Buffer.compare(await readFile(path), bytes.subarray(0, received))).toBe(0);
    }
  });

  it("fails with LOCAL_IO when the file cannot be created", async () => {
    await expect(openBlobWriter(join(dir, "missing", "blob.partial"), { start: 0, expectedBytes: 64 * MIB })).rejects.toMatchObject({
      code: "LOCAL_IO",
    });
  });
});
