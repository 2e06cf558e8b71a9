import type { CliContext } from "./context.ts";

/**
 * Prints a command's result: the text line(s) people read (stable columns, see
 * docs/commands.md "Output"), or with `--json` one JSON document. The exit code is the same either way.
 */
export function printResult(context: CliContext, options: { json?: boolean }, text: string, value: unknown): void {
  context.stdout.write(options.json === true ? `${JSON.stringify(value, null, 2)}\n` : text);
}

export const JSON_HELP = "print the result as JSON";
