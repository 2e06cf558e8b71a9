import type { CliContext } from "./context.ts";

/**
 * Prints a command's result: the text line(s) people read (stable columns, see
 * docs/commands.md "Output"), or with `--json` one JSON document. The exit code is the same either way.
 */
export function printResult(context: CliContext, options: { json?: boolean }, text: string, value: unknown, quiet = false): void {
  if (options.json === true) context.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  // -q silences status lines; a requested --json report is output, not status (docs/cli-behaviour.md).
  else if (!quiet) context.stdout.write(text);
}

export const JSON_HELP = "print the result as JSON";
