import { OciLayoutStore } from "../../content/layout.ts";
import type { ImageListing } from "../../ops/store-ops.ts";
import type { CliContext } from "../context.ts";
import type { GlobalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";

/** The local store named by `--store-path` (or its default). */
export function openLocalStore(global: GlobalOptions, context: CliContext): OciLayoutStore {
  return new OciLayoutStore(resolvePath(context, global.storePath));
}

const NONE = "<none>";

/**
 * `list` as onmetal-image prints it: Go's `tabwriter.NewWriter(out, 12, 0, 1, ' ', 0)`, so every
 * column but the last is max(widest cell + 1, 12) wide; `<none>` where an entry has no name. With
 * `all`, a TYPE column tells images from referrers (by artifact type) and duplicate entries.
 */
export function formatImageTable(listings: readonly ImageListing[], options: { all?: boolean } = {}): string {
  const all = options.all === true;
  const header = all ? ["REPOSITORY", "TAG", "IMAGE ID", "TYPE"] : ["REPOSITORY", "TAG", "IMAGE ID"];
  const rows = [
    header,
    ...listings.map((listing) => {
      const row = [listing.repository ?? NONE, listing.tag ?? NONE, listing.id];
      if (all) row.push(listing.kind === "referrer" ? `referrer ${listing.artifactType ?? ""}`.trimEnd() : listing.kind);
      return row;
    }),
  ];
  const columns = header.length - 1;
  const widths = Array.from({ length: columns }, (_, column) => Math.max(12, ...rows.map((row) => (row[column] ?? "").length + 1)));
  return rows.map((row) => row.map((cell, column) => (column < columns ? cell.padEnd(widths[column] ?? 12) : cell)).join("")).join("\n") + "\n";
}

/** `list --json`: one object per entry, with the full digest and the raw reference; `null` where there is no name. */
export function formatImageJson(listings: readonly ImageListing[]): string {
  return `${JSON.stringify(
    listings.map((listing) => ({
      repository: listing.repository ?? null,
      tag: listing.tag ?? null,
      reference: listing.reference ?? null,
      id: listing.id,
      digest: listing.digest,
      mediaType: listing.mediaType,
      size: listing.size,
      type: listing.kind,
      ...(listing.kind === "referrer" ? { artifactType: listing.artifactType ?? null, subject: listing.subject ?? null } : {}),
    })),
    null,
    2,
  )}\n`;
}

/**
 * JSON as Go's `json.Encoder` with `SetIndent("", "  ")` writes it (onmetal-image's inspect and url):
 * two-space indent, trailing newline, `<`, `>`, `&`, U+2028, U+2029 escaped. Those characters
 * only ever occur inside strings in JSON text, so replacing them keeps the document valid.
 */
export function formatGoIndentedJson(value: unknown): string {
  const text = JSON.stringify(value, null, 2)
    .replaceAll("<", "\\u003c")
    .replaceAll(">", "\\u003e")
    .replaceAll("&", "\\u0026")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
  return `${text}\n`;
}
