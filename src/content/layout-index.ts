import { OcibootError } from "../errors.ts";
import { type Descriptor, parseDescriptor } from "../oci/descriptor.ts";
import { Annotation } from "../oci/mediatypes.ts";

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
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
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
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot read ${source}: not valid JSON`, { cause: error });
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
