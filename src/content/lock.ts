import { randomUUID } from "node:crypto";
import { link, open, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
// The lock records and checks the holder's process id: that is what makes a lock left by a
// crashed process recognisable as stale without waiting for a timeout.
import { kill, pid } from "node:process";
import { OcibootError } from "../errors.ts";
import { sleep } from "../retry.ts";
import { errorCode, errorMessage } from "./fs-util.ts";

/** Options for {@link withFileLock}. */
export interface FileLockOptions {
  /** Give up with LOCKED after waiting this long (default 30 s). */
  timeoutMs?: number;
  /** A lock whose holder cannot be checked (other host, unreadable) counts as stale after this age (default 10 min). */
  staleAfterMs?: number;
  signal?: AbortSignal;
}

interface LockOwner {
  pid: number;
  host: string;
  token: string;
}

const BREAK_SUFFIX = ".break";
const INCOMPLETE_RECORD_STALE_AFTER_MS = 5_000;
// A lock breaker holds `<lock>.break` only for a read and an unlink: one older than this, or
// whose owner died, was left by a crash.
const BREAK_STALE_AFTER_MS = 30_000;

/**
 * Runs `action` while holding an exclusive lock across processes on `lockPath`.
 *
 * The lock is a file created with O_EXCL holding the owner's host, PID and a random token. A lock
 * whose owner process is gone (same host) is broken, but only by whoever holds the `.break` side
 * lock and only if the lock file still holds what was judged stale, so two waiters can never both
 * break one lock and end up holding it together.
 */
export async function withFileLock<T>(lockPath: string, action: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const token = await acquire(lockPath, options);
  try {
    return await action();
  } finally {
    await release(lockPath, token);
  }
}

async function acquire(lockPath: string, options: FileLockOptions): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const staleAfterMs = options.staleAfterMs ?? 10 * 60_000;
  const owner: LockOwner = { pid, host: hostname(), token: randomUUID() };
  const deadline = Date.now() + timeoutMs;
  let delayMs = 2;
  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (await tryCreate(lockPath, JSON.stringify(owner))) return owner.token;
    const observed = await readOwnerText(lockPath);
    if (observed !== undefined && (await isStale(lockPath, observed, staleAfterMs))) {
      await breakStaleLock(lockPath, observed);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new OcibootError("LOCKED", `Cannot lock ${lockPath}: held by ${describeOwner(observed)} for longer than ${timeoutMs} ms`);
    }
    await sleep(delayMs + Math.random() * delayMs);
    delayMs = Math.min(delayMs * 2, 100);
  }
}

/**
 * Creates the lock file with its owner record, or returns false if it exists. The record is
 * written to a scratch file first and hard-linked into place (link fails when the lock exists), so
 * a process killed meanwhile never leaves an empty lock that nobody could judge. File systems
 * without hard links (FAT on a USB disk) get an exclusive create, then the write.
 */
async function tryCreate(path: string, content: string): Promise<boolean> {
  const scratch = `${path}.${randomUUID()}${SCRATCH_SUFFIX}`;
  try {
    await writeFile(scratch, content, { flag: "wx", mode: 0o644 });
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot create lock ${path}: ${errorMessage(error)}`, { cause: error });
  }
  try {
    await link(scratch, path);
    return true;
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    if (!NO_HARD_LINKS.has(errorCode(error) ?? "")) {
      throw new OcibootError("LOCAL_IO", `Cannot create lock ${path}: ${errorMessage(error)}`, { cause: error });
    }
  } finally {
    await unlink(scratch).catch(() => undefined);
  }
  return tryCreateInPlace(path, content);
}

const SCRATCH_SUFFIX = ".new";
/** What link(2) answers where the file system has no hard links. */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV"]);

async function tryCreateInPlace(path: string, content: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, "wx", 0o644);
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    throw new OcibootError("LOCAL_IO", `Cannot create lock ${path}: ${errorMessage(error)}`, { cause: error });
  }
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  return true;
}

/** The lock file's text, or undefined when it vanished meanwhile. */
async function readOwnerText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw new OcibootError("LOCAL_IO", `Cannot read lock ${path}: ${errorMessage(error)}`, { cause: error });
  }
}

async function isStale(path: string, ownerText: string, staleAfterMs: number): Promise<boolean> {
  const owner = parseOwner(ownerText);
  if (owner && owner.host === hostname()) return !isProcessAlive(owner.pid);
  // Another host's lock, judged by age only; an incomplete record (a holder killed between create
  // and write, where there are no hard links) is written at once, so it is stale much sooner.
  const maxAgeMs = owner ? staleAfterMs : Math.min(staleAfterMs, INCOMPLETE_RECORD_STALE_AFTER_MS);
  try {
    const { mtimeMs } = await stat(path);
    return Date.now() - mtimeMs > maxAgeMs;
  } catch {
    return false;
  }
}

async function breakStaleLock(lockPath: string, observed: string): Promise<void> {
  const breakPath = lockPath + BREAK_SUFFIX;
  const breaker: LockOwner = { pid, host: hostname(), token: randomUUID() };
  if (!(await tryCreate(breakPath, JSON.stringify(breaker)))) {
    // Another waiter is breaking the lock; if it died doing so, its side lock is stale in turn.
    const other = await readOwnerText(breakPath);
    if (other !== undefined && (await isStale(breakPath, other, BREAK_STALE_AFTER_MS))) {
      if ((await readOwnerText(breakPath)) === other) await unlink(breakPath).catch(() => undefined);
    }
    await sleep(5);
    return;
  }
  try {
    // Only the lock that was judged stale may go: another waiter may have broken it and taken a fresh one.
    if ((await readOwnerText(lockPath)) === observed) await unlink(lockPath).catch(() => undefined);
  } finally {
    await unlink(breakPath).catch(() => undefined);
  }
}

async function release(lockPath: string, token: string): Promise<void> {
  const text = await readOwnerText(lockPath);
  if (text !== undefined && parseOwner(text)?.token === token) await unlink(lockPath).catch(() => undefined);
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid === "number" && typeof value.host === "string" && typeof value.token === "string") {
      return { pid: value.pid, host: value.host, token: value.token };
    }
  } catch {
    // Not (yet) a complete owner record.
  }
  return undefined;
}

function isProcessAlive(processId: number): boolean {
  try {
    kill(processId, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return errorCode(error) !== "ESRCH";
  }
}

function describeOwner(text: string | undefined): string {
  const owner = text === undefined ? undefined : parseOwner(text);
  return owner ? `process ${owner.pid} on ${owner.host}` : "another process";
}
