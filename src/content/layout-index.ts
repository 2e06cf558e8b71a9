import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { toDigest } from "../oci/digest.ts";
import { Annotation, MediaType } from "../oci/mediatypes.ts";

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

/** Validates one descriptor read from untrusted JSON. */
export function parseDescriptor(value: unknown, source: string): Descriptor {
  if (!isRecord(value)) throw invalid(source, "not an object");
  const { mediaType, digest, size, annotations, platform, artifactType, urls } = value;
  if (typeof mediaType !== "string") throw invalid(source, "mediaType is not a string");
  if (typeof digest !== "string") throw invalid(source, "digest is not a string");
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw invalid(source, "size is not a non-negative integer");
  const descriptor: Descriptor = { mediaType, digest: toDigest(digest), size };
  if (urls !== undefined) {
    if (!Array.isArray(urls) || !urls.every((url) => typeof url === "string")) throw invalid(source, "urls is not a list of strings");
    descriptor.urls = urls as string[];
  }
  if (annotations !== undefined) {
    if (!isRecord(annotations) || !Object.values(annotations).every((text) => typeof text === "string")) {
      throw invalid(source, "annotations are not strings");
    }
    descriptor.annotations = { ...(annotations as Record<string, string>) };
  }
  if (typeof artifactType === "string") descriptor.artifactType = artifactType;
  if (platform !== undefined) {
    if (!isRecord(platform) || typeof platform["os"] !== "string" || typeof platform["architecture"] !== "string") {
      throw invalid(source, "platform needs os and architecture");
    }
    descriptor.platform = { ...platform } as unknown as Platform;
  }
  return descriptor;
}

/** Guesses the media type of a manifest blob that has no `mediaType` field (onmetal manifests have none). */
export function manifestMediaTypeOf(value: unknown): string | undefined {
  if (!isRecord(value)) return undefined;
  if (typeof value["mediaType"] === "string") return value["mediaType"];
  if (Array.isArray(value["manifests"])) return MediaType.ociIndex;
  if (isRecord(value["config"]) || Array.isArray(value["layers"])) return MediaType.ociManifest;
  return undefined;
}

function invalid(source: string, state: string): OcibootError {
  return new OcibootError("INVALID_MANIFEST", `Cannot read ${source}: ${state}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
