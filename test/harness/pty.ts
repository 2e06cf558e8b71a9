import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { trackChild } from "./processes.ts";

/**
 * A command on a real pseudo-terminal: `timeout -k 5 N script -qec "exec CMD" /dev/null` (util-linux),
 * so progress bars draw and standard output and error are terminals, and a hang ends the run with 124
 * instead of hanging the suite. `exec` makes the command itself the child of `script`, the leader of
 * the terminal's foreground process group, which is what Ctrl-C signals.
 */
export interface PtyRun {
  /** Everything drawn on the terminal so far (stdout and stderr together, with escapes). */
  screen(): string;
  /** Resolves once the screen matches; rejects if the command ends or `timeoutMs` passes first. */
  waitForScreen(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves once `check` holds; rejects if the command ends or `timeoutMs` passes first. */
  waitFor(check: () => Promise<boolean>, what: string, timeoutMs?: number): Promise<void>;
  /** Ctrl-C: SIGINT to the terminal's foreground process group (the command and any child it started there). */
  interrupt(): Promise<void>;
  /** How it ended: the command's exit code (124 when `timeout` had to end it) and the final screen. */
  exited: Promise<{ code: number | null; screen: string }>;
}

export function runInPty(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutSeconds?: number } = {},
): PtyRun {
  const line = ["exec", command, ...args].map(shellQuote).join(" ");
  const child = spawn("timeout", ["-k", "5", String(options.timeoutSeconds ?? 60), "script", "-qec", line, "/dev/null"], {
    env: options.env ?? process.env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  trackChild(child, { processGroup: true });
  let screen = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (text: string) => void (screen += text));
  child.stderr.on("data", (text: string) => void (screen += text));
  let running = true;
  const exited = new Promise<{ code: number | null; screen: string }>((resolve) =>
    child.once("close", (code) => {
      running = false;
      resolve({ code, screen });
    }),
  );

  const waitFor = async (check: () => Promise<boolean>, what: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (!running) throw new Error(`${command} ended before ${what}:\n${screen}`);
      if (Date.now() > deadline) throw new Error(`${command}: no ${what} within ${timeoutMs} ms:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  return {
    screen: () => screen,
    waitFor,
    waitForScreen: (pattern, timeoutMs) => waitFor(async () => pattern.test(screen), `screen matching ${pattern}`, timeoutMs),
    async interrupt() {
      const pid = await commandPid(child.pid ?? 0, command);
      // The command leads the terminal's process group (script made it a session leader): signal the group as the tty driver does.
      process.kill(-pid, "SIGINT");
    },
    exited,
  };
}

/** The PID of `command` among the descendants of `rootPid` (timeout → script → command). */
async function commandPid(rootPid: number, command: string): Promise<number> {
  const parents = new Map<number, number>();
  const commands = new Map<number, string>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // Field 4 (ppid) follows the parenthesised name, which may itself hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
      commands.set(Number(entry), (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0")[0] ?? "");
    } catch {
      // Gone meanwhile.
    }
  }
  for (const [pid, argv0] of commands) {
    if (argv0 !== command) continue;
    for (let ancestor = parents.get(pid); ancestor !== undefined && ancestor > 1; ancestor = parents.get(ancestor)) {
      if (ancestor === rootPid) return pid;
    }
  }
  throw new Error(`Cannot find ${command} under process ${rootPid}`);
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The screen without colours and cursor movements, for matching messages. */
export function plainScreen(screen: string): string {
  return screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
}
