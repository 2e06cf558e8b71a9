import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import type { FetchedContent, OpenAt } from "../../src/content/store.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { sha256Digest } from "../../src/oci/digest.ts";
import { pruneStore } from "../../src/ops/prune.ts";

// Small enough to go through the page cache: every kept byte is trusted as a prefix.
const CONTENT = randomBytes(300 * 1024);
const DESCRIPTOR: Descriptor = {
  mediaType: "application/octet-stream",
  digest: sha256Digest(createHash("sha256").update(CONTENT).digest("hex")),
  size: CONTENT.length,
};

/** A source of CONTENT that records the offsets asked for; it can ignore ranges or cut the stream after some bytes. */
function source(behaviour: { ignoreRange?: boolean; cutAfter?: number } = {}): { open: OpenAt; offsets: number[] } {
  const offsets: number[] = [];
  const open: OpenAt = async (offset) => {
    offsets.push(offset);
    const start = behaviour.ignoreRange ? 0 : offset;
    const end = behaviour.cutAfter === undefined ? CONTENT.length : start + behaviour.cutAfter;
    let position = start;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (position >= end) {
          if (end < CONTENT.length) controller.error(Object.assign(new Error("connection reset"), { code: "ECONNRESET" }));
          else controller.close();
          return;
        }
        const next = Math.min(end, position + 64 * 1024);
        controller.enqueue(new Uint8Array(CONTENT.subarray(position, next)));
        position = next;
      },
    });
    const content: FetchedContent = { stream, offset: start };
    return content;
  };
  return { open, offsets };
}

describe("a layout store's per-digest partial files", () => {
  let root: string;
  let store: OciLayoutStore;
  let partial: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "ociboot-layout-partial-"));
    store = new OciLayoutStore(root);
    partial = join(root, ".ociboot", "tmp", `partial-sha256-${DESCRIPTOR.digest.slice(7)}`);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function leavePartial(bytes: Uint8Array): Promise<void> {
    await mkdir(join(root, ".ociboot", "tmp"), { recursive: true });
    await writeFile(partial, bytes);
  }

  async function expectStored(): Promise<void> {
    expect(Buffer.compare(await readFile(store.blobPath(DESCRIPTOR.digest)), CONTENT)).toBe(0);
    expect(existsSync(partial)).toBe(false);
    expect(existsSync(`${partial}.lock`)).toBe(false);
  }

  it("keeps what arrived before a cut, and the next push asks only for the rest", async () => {
    const cut = source({ cutAfter: 100 * 1024 });
    await expect(store.pushFrom(DESCRIPTOR, cut.open)).rejects.toMatchObject({ code: "NETWORK" });
    expect((await stat(partial)).size).toBe(100 * 1024);
    expect(existsSync(store.blobPath(DESCRIPTOR.digest))).toBe(false);

    const rest = source();
    const progress: number[] = [];
    await store.pushFrom(DESCRIPTOR, rest.open, { onBytes: (done) => progress.push(done) });
    expect(rest.offsets).toEqual([100 * 1024]);
    expect(progress[0]).toBe(100 * 1024);
    expect(progress.at(-1)).toBe(CONTENT.length);
    await expectStored();
  });

  it("never commits a stale partial that does not match: the blob is fetched once more from byte 0", async () => {
    const wrong = Buffer.from(CONTENT.subarray(0, 120 * 1024));
    wrong[5] = (wrong[5]! + 1) % 256;
    await leavePartial(wrong);
    const good = source();
    await store.pushFrom(DESCRIPTOR, good.open);
    expect(good.offsets).toEqual([120 * 1024, 0]);
    await expectStored();
  });

  it("starts over when the partial is longer than the blob, or the source ignores the range", async () => {
    await leavePartial(Buffer.concat([CONTENT, Buffer.from("more")]));
    const first = source();
    await store.pushFrom(DESCRIPTOR, first.open);
    expect(first.offsets).toEqual([0]);
    await expectStored();

    await rm(store.blobPath(DESCRIPTOR.digest));
    await leavePartial(CONTENT.subarray(0, 50 * 1024));
    const noRanges = source({ ignoreRange: true });
    await store.pushFrom(DESCRIPTOR, noRanges.open);
    expect(noRanges.offsets).toEqual([50 * 1024]);
    await expectStored();
  });

  it("two pushes of one blob at once: one writes it, the other waits and finds it stored", async () => {
    const [a, b] = [source(), source()];
    await Promise.all([store.pushFrom(DESCRIPTOR, a.open), store.pushFrom(DESCRIPTOR, b.open)]);
    expect(a.offsets.length + b.offsets.length).toBe(1);
    await expectStored();
  });

  it("prune removes a partial file older than the grace period, and keeps a younger one", async () => {
    await store.pushFrom(DESCRIPTOR, source({ cutAfter: 10 * 1024 }).open).catch(() => undefined);
    expect(existsSync(partial)).toBe(true);
    const young = await pruneStore(store, { graceMs: 60_000 });
    expect(young.removedPartials).toEqual([]);
    const old = new Date(Date.now() - 120_000);
    await utimes(partial, old, old);
    const pruned = await pruneStore(store, { graceMs: 60_000 });
    expect(pruned.removedPartials).toMatchObject([{ digest: DESCRIPTOR.digest, size: 10 * 1024 }]);
    expect(existsSync(partial)).toBe(false);
  });

  it("a lock a killed run left is cleared by the next push of that blob, and by prune", async () => {
    // The pid of a process that has exited: the lock's holder is gone.
    const dead = spawnSync("true").pid;
    const deadLock = JSON.stringify({ pid: dead, host: hostname(), token: "left-by-a-killed-run" });
    await store.pushFrom(DESCRIPTOR, source().open);
    await writeFile(`${partial}.lock`, deadLock);
    const again = source();
    await store.pushFrom(DESCRIPTOR, again.open);
    expect(again.offsets).toEqual([]);
    expect(existsSync(`${partial}.lock`)).toBe(false);

    await writeFile(`${partial}.lock`, deadLock);
    const pruned = await pruneStore(store, { graceMs: 0 });
    expect(pruned.removedPartials).toEqual([]);
    expect(existsSync(`${partial}.lock`)).toBe(false);
  });

  it("prune removes the temporary files killed runs left (a lock's scratch copy, a blob temporary) once older than the grace period, and keeps partial files' locks to their own rule", async () => {
    await store.pushFrom(DESCRIPTOR, source().open);
    const temporary = join(store.root, ".ociboot", "tmp");
    const scratch = join(temporary, `${partial.split("/").at(-1)}.lock.0b7c6d2e-1f3a-4b5c-9d8e-7f6a5b4c3d2e.new`);
    const blobTemporary = join(temporary, "blob-12345-abcdef");
    await writeFile(scratch, "{}");
    await writeFile(blobTemporary, "half a blob");
    const young = await pruneStore(store, { graceMs: 60_000 });
    expect(young.removedTemporaryFiles).toBe(0);
    expect(existsSync(scratch) && existsSync(blobTemporary)).toBe(true);
    const old = new Date(Date.now() - 120_000);
    await utimes(scratch, old, old);
    await utimes(blobTemporary, old, old);
    const dry = await pruneStore(store, { graceMs: 60_000, dryRun: true });
    expect(existsSync(scratch) && existsSync(blobTemporary)).toBe(true);
    expect(dry.removed).toEqual([]);
    const pruned = await pruneStore(store, { graceMs: 60_000 });
    expect(pruned.removedTemporaryFiles).toBe(2);
    expect(existsSync(scratch) || existsSync(blobTemporary)).toBe(false);
    await expectStored();
  });
});
