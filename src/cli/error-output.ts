import { OcibootError } from "../errors.ts";

/**
 * True when the command line asks for JSON output. Only arguments before a lone `--` count, so a
 * file or reference spelled `--json` after it is not mistaken for the option.
 */
export function wantsJsonOutput(argv: readonly string[]): boolean {
  for (const argument of argv) {
    if (argument === "--") return false;
    if (argument === "--json") return true;
  }
  return false;
}

/** The one-line message (with the cause chain under `--debug`) written to stderr on failure. */
export function formatErrorText(error: unknown, debug: boolean): string {
  if (error instanceof OcibootError) {
    let text = `ociboot: ${error.message}\n`;
    if (debug) {
      let cause: unknown = error.cause;
      while (cause) {
        text += `  caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}\n`;
        cause = cause instanceof Error ? cause.cause : undefined;
      }
    }
    return text;
  }
  const detail = error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error);
  return `ociboot: internal error: ${detail}\n`;
}

/**
 * `{"error":{"code","message","details"}}` on one line, the document a `--json` run prints on
 * stdout when it fails (docs/json-errors.md). `details` is always an object so readers need no
 * null check; values JSON cannot hold (bigint, cycles) are written as strings.
 */
export function formatErrorJson(error: unknown): string {
  const body =
    error instanceof OcibootError
      ? { code: error.code, message: error.message, details: error.details ?? {} }
      : { code: "INTERNAL", message: `internal error: ${error instanceof Error ? error.message : String(error)}`, details: {} };
  return `${JSON.stringify({ error: body }, jsonSafe())}\n`;
}

function jsonSafe(): (key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return (_key, value) => {
    if (typeof value === "bigint") return value.toString();
    if (value instanceof Error) return { name: value.name, message: value.message };
    if (typeof value === "object" && value !== null) {
      if (seen.has(value)) return "[circular]";
      seen.add(value);
    }
    return value;
  };
}
