import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

/**
 * Every daemon and command the harness starts is registered here, so that a failing test, an
 * interrupted run or a forgotten `stop()` never leaves a registry listening on this shared machine.
 */
const liveChildren = new Set<ChildProcess>();
const temporaryDirectories = new Set<string>();
let exitHookInstalled = false;

/** Children started as leaders of their own process group: signals go to the whole group. */
const groupLeaders = new WeakSet<ChildProcess>();

/**
 * Registers a child process to be killed when the test process exits; it unregisters itself on exit.
 * `processGroup: true` for a child spawned with `detached: true`: then its descendants (a shell's
 * commands, `timeout`'s child) are signalled too, so none is left holding the output pipes.
 */
export function trackChild(child: ChildProcess, options: { processGroup?: boolean } = {}): void {
  installExitHook();
  liveChildren.add(child);
  if (options.processGroup === true) groupLeaders.add(child);
  child.once("exit", () => liveChildren.delete(child));
}

function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (groupLeaders.has(child) && child.pid !== undefined) {
    try {
      process.kill(-child.pid, name);
    } catch {
      // The group is already gone.
    }
    return;
  }
  child.kill(name);
}

/** Registers a temporary directory to be removed when the test process exits. */
export function trackTemporaryDirectory(path: string): void {
  installExitHook();
  temporaryDirectories.add(path);
}

export function untrackTemporaryDirectory(path: string): void {
  temporaryDirectories.delete(path);
}

/**
 * Sends SIGTERM, waits for the exit, and escalates to SIGKILL after `graceMs`.
 * Resolves at once for a process that has already exited.
 */
export async function terminate(child: ChildProcess, graceMs = 2_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // A test may have frozen the process with SIGSTOP; a stopped process would sit on SIGTERM.
  signal(child, "SIGCONT");
  signal(child, "SIGTERM");
  const escalation = setTimeout(() => signal(child, "SIGKILL"), graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(escalation);
  }
}

function killEverythingNow(): void {
  for (const child of liveChildren) {
    // Only synchronous work is possible in an exit hook: SIGKILL cannot be ignored, so no wait is needed.
    signal(child, "SIGKILL");
  }
  liveChildren.clear();
  for (const path of temporaryDirectories) {
    rmSync(path, { recursive: true, force: true });
  }
  temporaryDirectories.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", killEverythingNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      killEverythingNow();
      // Our listener replaced the default action; re-raise so the process still dies by the signal,
      // unless someone else (the test runner) handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}
