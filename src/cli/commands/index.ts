import type { Command } from "@commander-js/extra-typings";
import type { CliContext } from "../context.ts";

/** Every command's factory; one file per command. */
export const COMMANDS: ReadonlyArray<(context: CliContext) => Command<any, any, any>> = [];
