import { join, resolve } from "node:path";
import type { CliContext } from "./context.ts";

export function homedirPath(context: CliContext, ...parts: string[]): string {
  return join(context.homeDir, ...parts);
}

export function resolvePath(context: CliContext, path: string): string {
  return resolve(context.cwd, path);
}
