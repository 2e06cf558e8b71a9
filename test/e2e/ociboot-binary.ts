import { existsSync } from "node:fs";
import { join } from "node:path";
import { run, type RunOptions, type RunResult } from "../harness/commands.ts";

/** The built single executable (`npm test` builds it first). */
export const OCIBOOT_BINARY = join(import.meta.dirname, "..", "..", "dist", "ociboot");
const MAIN_SOURCE = join(import.meta.dirname, "..", "..", "src", "main.ts");
const DENO = join(import.meta.dirname, "..", "..", "node_modules", ".bin", "deno");

/** Runs the built binary as a user would, with a clean environment. */
export async function ociboot(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  if (!existsSync(OCIBOOT_BINARY)) throw new Error(`${OCIBOOT_BINARY} is missing: run npm run build`);
  return run(OCIBOOT_BINARY, args, { timeoutMs: 120_000, ...options, env: { HOME: "/nonexistent", ...options.env } });
}

/** Runs the sources under Deno. */
export async function ocibootUnderDeno(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run(DENO, ["run", "-A", MAIN_SOURCE, ...args], {
    timeoutMs: 120_000,
    ...options,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: "/nonexistent", DENO_NO_UPDATE_CHECK: "1", ...options.env },
  });
}
