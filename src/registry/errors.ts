import { type ErrorCode, OcibootError } from "../errors.ts";
import { Limits } from "../oci/mediatypes.ts";
import { type HttpResponse, readBounded } from "./transport.ts";

/** One entry of the distribution spec's error body (`{"errors": [{code, message, detail}]}`). */
export interface RegistryErrorEntry {
  code: string;
  message: string;
}

/**
 * Turns an unexpected response into an OcibootError whose message names the registry's own error
 * code and message. Reads at most 64 KiB of the body, so a hostile server cannot flood memory.
 */
export async function errorFromResponse(response: HttpResponse, action: string): Promise<OcibootError> {
  let entries: RegistryErrorEntry[] = [];
  let text = "";
  let cut = false;
  try {
    const { bytes, truncated } = await readBounded(response.body, Limits.errorBodyBytes);
    text = bytes.toString("utf8");
    entries = parseErrorEntries(text);
    cut = truncated;
  } catch {
    // The status alone still explains the failure.
  }
  const code = errorCodeForStatus(response.status);
  const explanation =
    entries.length > 0
      ? entries.map((entry) => `${entry.code}${entry.message ? `: ${entry.message}` : ""}`).join("; ")
      : summariseText(text) + (cut ? ` (error body cut at ${Limits.errorBodyBytes} bytes)` : "");
  const state = `registry answered ${response.status}${explanation ? ` ${explanation}` : ""}`;
  return new OcibootError(code, `Cannot ${action}: ${state}`, {
    details: { status: response.status, errors: entries },
  });
}

/** Maps an HTTP status to the error code a user acts on. */
export function errorCodeForStatus(status: number): ErrorCode {
  if (status === 401) return "UNAUTHORIZED";
  if (status === 403) return "DENIED";
  if (status === 404) return "NOT_FOUND";
  if (status === 429) return "RATE_LIMITED";
  return "REGISTRY";
}

/** Extracts `errors[].code/message` from a distribution error body; anything else yields none. */
export function parseErrorEntries(text: string): RegistryErrorEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  if (typeof parsed !== "object" || parsed === null) return [];
  const errors = (parsed as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) return [];
  const entries: RegistryErrorEntry[] = [];
  for (const entry of errors.slice(0, 10)) {
    if (typeof entry !== "object" || entry === null) continue;
    const { code, message } = entry as { code?: unknown; message?: unknown };
    entries.push({
      code: typeof code === "string" ? printable(code, 64) : "UNKNOWN",
      message: typeof message === "string" ? printable(message, 300) : "",
    });
  }
  return entries;
}

function summariseText(text: string): string {
  const line = printable(text.trim().split("\n")[0] ?? "", 200);
  return line ? `(${line})` : "";
}

/** Keeps terminal control characters from a server out of our messages. */
function printable(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ");
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
