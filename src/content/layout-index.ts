import { OcibootError } from "../errors.ts";
import { type Descriptor, parseDescriptor } from "../oci/descriptor.ts";
import { Annotation } from "../oci/mediatypes.ts";
import { imageNameKey } from "../oci/reference.ts";
import { parseStrictJson, StrictJsonError } from "../oci/strict-json.ts";

/**
 * The rules of an OCI image layout's files, as pure functions, shared by the layout store, the
 * archive writer, import and pull (docs/layout-index.md).
 */

/** The names at the top of an image layout (with the empty `ingest/` an onmetal-image store has). */
export const LAYOUT_NAMES: ReadonlySet<string> = new Set(["blobs", "index.json", "oci-layout", "ingest"]);

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

/** The only `imageLayoutVersion` of the OCI image spec (v1.1 image-layout.md) that ociboot reads and writes. */
export const IMAGE_LAYOUT_VERSION = "1.0.0";

/** `oci-layout` as the image spec and onmetal-image write it. */
export const OCI_LAYOUT_BYTES = new TextEncoder().encode(`{"imageLayoutVersion":"${IMAGE_LAYOUT_VERSION}"}`);

/**
 * The one check of an `oci-layout` file, for every reader of a layout (directory, archive, import):
 * it must exist, be a JSON object, and declare version 1.0.0. `source` names the file in messages.
 *
 * @throws OcibootError INVALID_MANIFEST when missing or not JSON; UNSUPPORTED for another version.
 */
export function checkLayoutFile(bytes: Uint8Array | undefined, source: string): void {
  if (bytes === undefined) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot read ${source}: missing, so this is not an OCI image layout`);
  }
  let value: unknown;
  try {
    value = parseStrictJson(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot read ${source}: not valid JSON`, { cause: error });
  }
  const version = isRecord(value) ? value["imageLayoutVersion"] : undefined;
  if (version !== IMAGE_LAYOUT_VERSION) {
    throw new OcibootError(
      "UNSUPPORTED",
      `Cannot use ${source}: imageLayoutVersion ${JSON.stringify(version) ?? "(none)"} is not ${IMAGE_LAYOUT_VERSION}`,
    );
  }
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
 * The index.json entry for a manifest or index: its media type, digest and size, with the platform
 * and artifact type it was listed with; no annotations (a name is added by {@link withTag}).
 */
export function indexEntryOf(descriptor: Descriptor): Descriptor {
  const entry: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
  if (descriptor.platform) entry.platform = descriptor.platform;
  if (descriptor.artifactType) entry.artifactType = descriptor.artifactType;
  return entry;
}

/**
 * A tag replaces the entry of the same name, and of another spelling of it (`lab/x:1` beside
 * `docker.io/lab/x:1`: one name, one image): `entries` with `entry` last, named `reference`.
 */
export function withTag(entries: readonly Descriptor[], entry: Descriptor, reference: string): Descriptor[] {
  const named: Descriptor = { ...entry, annotations: { ...entry.annotations, [Annotation.refName]: reference } };
  return [...entries.filter((existing) => !sameImageName(refNameOf(existing), reference)), named];
}

/** An untagged entry is added once: `entries` unchanged when one for the same digest is listed already. */
export function withUntaggedEntry(entries: readonly Descriptor[], entry: Descriptor): Descriptor[] {
  const listed = entries.some((existing) => existing.digest === entry.digest && refNameOf(existing) === undefined);
  return listed ? [...entries] : [...entries, entry];
}

/** Adds the entries of another index (an imported archive's) by the same two rules, in their order. */
export function mergeIndexEntries(entries: readonly Descriptor[], added: readonly Descriptor[]): Descriptor[] {
  let merged = [...entries];
  for (const entry of added) {
    const name = refNameOf(entry);
    merged = name === undefined ? withUntaggedEntry(merged, entry) : withTag(merged, entry, name);
  }
  return merged;
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
