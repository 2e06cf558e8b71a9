import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import { terminate, trackChild } from "./processes.ts";

export interface RunOptions {
  /**
   * Variables laid over the current environment; a value of `undefined` removes the variable,
   * so a test can hide e.g. `DOCKER_CONFIG` or `HOME` from the command.
   */
  env?: Record<string, string | undefined>;
  /** Written to the command's stdin, which is then closed. Without it stdin is empty, as in CI. */
  input?: string | Uint8Array;
  cwd?: string;
  /** The command is killed (SIGTERM, then SIGKILL) and `run` rejects once this passes. Default 60 s. */
  timeoutMs?: number;
}

export interface RunResult {
  /** Exit code, or null when the command died by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Runs a command to completion and collects its output. A non-zero exit is a result, not an error,
 * because end-to-end tests assert on failures as much as on successes; only a failure to start or a
 * timeout rejects.
 */
export async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const child = spawn(command, args, {
    env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdio: ["pipe", "pipe", "pipe"],
    // Its own process group, so a timeout ends the command's descendants too.
    detached: true,
  });
  trackChild(child, { processGroup: true });

  const stdoutChunks: Buffer[] = [];
  const stderrChunks: Buffer[] = [];
  child.stdout.on("data", (chunk: Buffer) => stdoutChunks.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderrChunks.push(chunk));
  // A command that exits without reading its input closes the pipe under us; that is not a test failure.
  child.stdin.on("error", () => {});
  child.stdin.end(options.input ?? "");

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void terminate(child, 1_000);
  }, timeoutMs);

  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once("error", reject);
      // "close" rather than "exit": it fires after stdout and stderr are drained.
      child.once("close", (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
    });
    const result: RunResult = {
      code,
      signal,
      stdout: Buffer.concat(stdoutChunks).toString("utf8"),
      stderr: Buffer.concat(stderrChunks).toString("utf8"),
    };
    if (timedOut) {
      throw new Error(
        `Cannot run ${command} ${args.join(" ")}: timed out after ${timeoutMs} ms\n` +
          `stdout: ${tail(result.stdout)}\nstderr: ${tail(result.stderr)}`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** Like `run`, but rejects unless the command exits 0; the error carries stderr for the test report. */
export async function runOk(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `Command failed (exit ${result.code ?? result.signal}): ${command} ${args.join(" ")}\n` +
        `stdout: ${tail(result.stdout)}\nstderr: ${tail(result.stderr)}`,
    );
  }
  return result;
}

function tail(text: string, maxChars = 4_000): string {
  return text.length > maxChars ? `…${text.slice(-maxChars)}` : text;
}

/**
 * Starts a command, waits until `path` has grown to `minBytes` (the command is busy writing it),
 * then sends SIGINT as Ctrl-C would, and returns how the command ended. Rejects if the command
 * ends, or `path` stays small, before the signal could be sent.
 */
export async function interruptOnceWriting(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; path: string; minBytes: number; timeoutMs?: number },
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command, args, { env: options.env, stdio: ["ignore", "ignore", "pipe"] });
  trackChild(child);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString("utf8")));
  let running = true;
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code))).finally(() => (running = false));
  for (let waited = 0; ((await stat(options.path).catch(() => undefined))?.size ?? 0) < options.minBytes; waited += 20) {
    if (!running || waited > (options.timeoutMs ?? 30_000)) throw new Error(`${command} never got going: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGINT");
  return { code: await exited, stderr };
}
