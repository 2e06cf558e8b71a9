import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// A file system without hard links (FAT on a USB disk): link(2) answers EPERM.
vi.mock("node:fs/promises", async (importOriginal) => {
  const original = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...original,
    link: async () => {
      throw Object.assign(new Error("EPERM: operation not permitted, link"), { code: "EPERM" });
    },
  };
});

const { withFileLock } = await import("../../src/content/lock.ts");
const { mostHoldersAtOnce } = await import("./helpers/holders-at-once.ts");

let directory: string;
let lockPath: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), "ociboot-lock-nolink-"));
  lockPath = join(directory, "index.lock");
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("withFileLock where there are no hard links", () => {
  it("creates the lock in place with its owner record, and leaves nothing behind", async () => {
    await withFileLock(lockPath, async () => {
      expect(JSON.parse(await readFile(lockPath, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    });
    expect(await readdir(directory)).toEqual([]);
  });

  it("still lets only one action run at a time", async () => {
    expect(await mostHoldersAtOnce(withFileLock, lockPath, 6)).toBe(1);
  });
});
