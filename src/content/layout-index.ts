import { OcibootError } from "../errors.ts";
import { type Descriptor, parseDescriptor } from "../oci/descriptor.ts";
import { Annotation } from "../oci/mediatypes.ts";
import { imageNameKey } from "../oci/reference.ts";
import { parseStrictJson, StrictJsonError } from "../oci/strict-json.ts";

/**
 * The `index.json` of an OCI image layout: its entries, plus every other top-level field exactly as
 * read, so that rewriting the file keeps what other tools put there.
 */
export interface LayoutIndex {
  fields: Record<string, unknown>;
  manifests: Descriptor[];
}

/** An empty index, written as `{"schemaVersion":2,"manifests":[]}` like onmetal-image does. */
export function emptyLayoutIndex(): LayoutIndex {
  return { fields: { schemaVersion: 2 }, manifests: [] };
}

/** Parses and validates `index.json`; every digest is checked before it can name a path. */
export function parseLayoutIndex(bytes: Uint8Array, source: string): LayoutIndex {
  let value: unknown;
  try {
    value = parseStrictJson(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    const why = error instanceof StrictJsonError ? error.message : "not valid UTF-8";
    throw new OcibootError("INVALID_MANIFEST", `Cannot read ${source}: ${why}`, { cause: error });
  }
  if (!isRecord(value) || value["schemaVersion"] !== 2) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot read ${source}: not an image index with schemaVersion 2`);
  }
  const entries = value["manifests"] ?? [];
  if (!Array.isArray(entries)) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot read ${source}: "manifests" is not an array`);
  }
  const manifests = entries.map((entry: unknown, position) => parseDescriptor(entry, `${source} entry ${position}`));
  const fields = { ...value };
  delete fields["manifests"];
  return { fields, manifests };
}

/** Compact JSON of the index: `schemaVersion` and `mediaType` first, then `manifests`, then the other fields as read. */
export function serializeLayoutIndex(index: LayoutIndex): Uint8Array {
  const ordered: Record<string, unknown> = {};
  for (const key of ["schemaVersion", "mediaType"]) if (key in index.fields) ordered[key] = index.fields[key];
  ordered["manifests"] = index.manifests;
  for (const [key, value] of Object.entries(index.fields)) if (!(key in ordered)) ordered[key] = value;
  return new TextEncoder().encode(JSON.stringify(ordered));
}

/** The full reference an entry is tagged with (`org.opencontainers.image.ref.name`), if any. */
export function refNameOf(descriptor: Descriptor): string | undefined {
  return descriptor.annotations?.[Annotation.refName];
}

/** An index.json entry as an untagged one: the same descriptor without `org.opencontainers.image.ref.name`. */
export function withoutRefName(entry: Descriptor): Descriptor {
  if (refNameOf(entry) === undefined) return entry;
  const { annotations, ...rest } = entry;
  const others = Object.fromEntries(Object.entries(annotations ?? {}).filter(([key]) => key !== Annotation.refName));
  return Object.keys(others).length > 0 ? { ...rest, annotations: others } : rest;
}

/**
 * The entry a name tags: the last entry whose ref name is `reference` exactly, else the entries
 * whose ref name is another spelling of it ({@link imageNameKey}: `lab/x:1` and
 * `docker.io/lab/x:1` alike). Bare-word entry names (`v1`, as skopeo writes them) match only
 * exactly.
 *
 * @throws OcibootError AMBIGUOUS when spellings of one name tag different images.
 */
export function taggedEntry(entries: readonly Descriptor[], reference: string, where: string): Descriptor | undefined {
  const exact = entries.filter((entry) => refNameOf(entry) === reference).at(-1);
  if (exact) return exact;
  const alike = entries.filter((entry) => sameImageName(refNameOf(entry), reference));
  const digests = [...new Set(alike.map((entry) => entry.digest))];
  if (digests.length > 1) {
    const names = alike.map((entry) => `${refNameOf(entry)} (${entry.digest})`);
    throw new OcibootError("AMBIGUOUS", `Cannot resolve ${reference}: ${where} tags different images under spellings of that name: ${names.join(", ")}`);
  }
  return alike.at(-1);
}

/** True when an entry's ref name and a requested name spell the same image name. */
export function sameImageName(entryName: string | undefined, requested: string): boolean {
  if (entryName === undefined) return false;
  if (entryName === requested) return true;
  const key = imageNameKey(entryName, { bareTagsAreTags: true });
  return key !== undefined && key === imageNameKey(requested);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
