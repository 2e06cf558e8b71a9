import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { CliContext } from "./context.ts";

export function homedirPath(context: CliContext, ...parts: string[]): string {
  return join(context.homeDir, ...parts);
}

export function resolvePath(context: CliContext, path: string): string {
  return resolve(context.cwd, path);
}

/** Where temporary stores go: `$OCIBOOT_TMPDIR`, else `$TMPDIR`, else the system's temporary directory. */
export function temporaryBase(context: CliContext): string {
  return context.env["OCIBOOT_TMPDIR"] ?? context.env["TMPDIR"] ?? tmpdir();
}
