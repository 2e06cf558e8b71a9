import type { Command } from "@commander-js/extra-typings";
import type { CliContext } from "../context.ts";
import { fetchCommand } from "./fetch.ts";

/** Every command's factory; one file per command. */
export const COMMANDS: ReadonlyArray<(context: CliContext) => Command<any, any, any>> = [
  fetchCommand,
];
