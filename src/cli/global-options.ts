import type { Command } from "@commander-js/extra-typings";
import { homedirPath } from "./paths.ts";
import type { CliContext } from "./context.ts";

/** Options that every command accepts, before or after the command name. */
export interface GlobalOptions {
  storePath: string;
  debug: boolean;
  quiet: boolean;
  caFile?: string;
  insecure: boolean;
  plainHttp: boolean;
  registryConfig?: string;
  registryMirrors: string[];
  username?: string;
  passwordStdin: boolean;
  authFile?: string;
}

/** Reads the global options seen anywhere on the command line (commander merges them on the root). */
export function globalOptions(command: Command<unknown[], Record<string, unknown>>, context: CliContext): GlobalOptions {
  let root: Command<unknown[], Record<string, unknown>> = command;
  while (root.parent) root = root.parent as Command<unknown[], Record<string, unknown>>;
  const merged = { ...root.opts(), ...command.optsWithGlobals() } as Record<string, unknown>;
  const result: GlobalOptions = {
    storePath: typeof merged["storePath"] === "string" ? merged["storePath"] : defaultStorePath(context),
    debug: merged["debug"] === true,
    quiet: merged["quiet"] === true,
    insecure: merged["insecure"] === true,
    plainHttp: merged["plainHttp"] === true,
    registryMirrors: Array.isArray(merged["registryMirror"]) ? (merged["registryMirror"] as string[]) : [],
    passwordStdin: merged["passwordStdin"] === true,
  };
  if (typeof merged["username"] === "string") result.username = merged["username"];
  if (typeof merged["authfile"] === "string") result.authFile = merged["authfile"];
  if (typeof merged["caFile"] === "string") result.caFile = merged["caFile"];
  if (typeof merged["registryConfig"] === "string") result.registryConfig = merged["registryConfig"];
  return result;
}

/** `$OCIBOOT_STORE`, else onmetal-image's default `~/.onmetal`, so both tools share a store. */
export function defaultStorePath(context: CliContext): string {
  return context.env["OCIBOOT_STORE"] ?? homedirPath(context, ".onmetal");
}
