import { OcibootError } from "../errors.ts";
import type { CliContext } from "./context.ts";

/**
 * `$SOURCE_DATE_EPOCH` (reproducible-builds.org) as RFC 3339 in whole seconds, as oras writes
 * timestamps; undefined when it is not set.
 */
export function sourceDateEpochTimestamp(context: CliContext): string | undefined {
  const epoch = context.env["SOURCE_DATE_EPOCH"];
  if (epoch === undefined || epoch === "") return undefined;
  if (!/^\d{1,12}$/.test(epoch)) throw new OcibootError("USAGE", `Cannot use SOURCE_DATE_EPOCH=${epoch}: expected whole seconds since 1970`);
  return rfc3339Seconds(Number(epoch) * 1000);
}

/** Now, or `$SOURCE_DATE_EPOCH` so that the same files give the same digest. */
export function createdTimestamp(context: CliContext): string {
  return sourceDateEpochTimestamp(context) ?? rfc3339Seconds(Date.now());
}

function rfc3339Seconds(milliseconds: number): string {
  return new Date(milliseconds).toISOString().replace(/\.\d{3}Z$/, "Z");
}
