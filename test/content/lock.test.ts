import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withFileLock } from "../../src/content/lock.ts";
import { mostHoldersAtOnce } from "./helpers/holders-at-once.ts";

let directory: string;
let lockPath: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), "ociboot-lock-"));
  lockPath = join(directory, "index.lock");
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** The PID of a process that has exited: nothing holds it any more. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(child.stdout);
}

describe("withFileLock", () => {
  it("holds the lock file while the action runs and removes it after, also on failure", async () => {
    await withFileLock(lockPath, async () => {
      const owner = JSON.parse(await readFile(lockPath, "utf8")) as { pid: number; host: string };
      expect(owner).toMatchObject({ pid: process.pid, host: hostname() });
    });
    await expect(stat(lockPath)).rejects.toMatchObject({ code: "ENOENT" });
    await expect(withFileLock(lockPath, async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await expect(stat(lockPath)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("serialises actions: no two run at once", async () => {
    expect(await mostHoldersAtOnce(withFileLock, lockPath, 8)).toBe(1);
  });

  it("waits for a live holder and gives up with LOCKED", async () => {
    await writeFile(lockPath, JSON.stringify({ pid: process.pid, host: hostname(), token: "other" }));
    await expect(withFileLock(lockPath, async () => "never", { timeoutMs: 150 })).rejects.toMatchObject({
      code: "LOCKED",
      message: expect.stringContaining(`held by process ${process.pid}`),
    });
  });

  it("breaks the lock of a process that died", async () => {
    await writeFile(lockPath, JSON.stringify({ pid: deadPid(), host: hostname(), token: "crashed" }));
    expect(await withFileLock(lockPath, async () => "ran", { timeoutMs: 1_000 })).toBe("ran");
  });

  it("is not stalled by a breaker that died while breaking a stale lock", async () => {
    await writeFile(lockPath, JSON.stringify({ pid: deadPid(), host: hostname(), token: "crashed" }));
    await writeFile(`${lockPath}.break`, JSON.stringify({ pid: deadPid(), host: hostname(), token: "crashed-breaker" }));
    expect(await withFileLock(lockPath, async () => "ran", { timeoutMs: 1_000 })).toBe("ran");
  });

  it("breaks another host's lock only once it is older than the stale age", async () => {
    await writeFile(lockPath, JSON.stringify({ pid: 1, host: "elsewhere", token: "remote" }));
    await expect(withFileLock(lockPath, async () => "never", { timeoutMs: 100, staleAfterMs: 60_000 })).rejects.toMatchObject({ code: "LOCKED" });
    const old = new Date(Date.now() - 120_000);
    await utimes(lockPath, old, old);
    expect(await withFileLock(lockPath, async () => "ran", { timeoutMs: 1_000, staleAfterMs: 60_000 })).toBe("ran");
  });

  it("puts a complete owner record in place at once and leaves no scratch file behind", async () => {
    await withFileLock(lockPath, async () => {
      expect(JSON.parse(await readFile(lockPath, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    });
    expect(await readdir(directory)).toEqual([]);
  });

  it("breaks an empty lock (a holder killed between create and write) after seconds, not the stale age", async () => {
    await writeFile(lockPath, "");
    await expect(withFileLock(lockPath, async () => "never", { timeoutMs: 100 })).rejects.toMatchObject({ code: "LOCKED" });
    const old = new Date(Date.now() - 10_000);
    await utimes(lockPath, old, old);
    expect(await withFileLock(lockPath, async () => "ran", { timeoutMs: 1_000 })).toBe("ran");
  });
});
