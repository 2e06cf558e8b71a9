import { OcibootError } from "../errors.ts";
import { isMediaType, parseAnnotations, parseDescriptor, type Descriptor } from "./descriptor.ts";
import { INDEX_MEDIA_TYPES, Limits, MANIFEST_MEDIA_TYPES, MediaType } from "./mediatypes.ts";
import { parseStrictJson } from "./strict-json.ts";

/** An image manifest (OCI image spec v1.1 manifest.md; Docker schema 2 has the same shape). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An image index (OCI image spec v1.1 image-index.md) or Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/**
 * A parsed manifest document. `mediaType` is the effective media type: the document's own
 * `mediaType` field, else a known `Content-Type`, else the OCI type its shape implies.
 */
export type ParsedManifest =
  | { kind: "manifest"; mediaType: string; manifest: ImageManifest }
  | { kind: "index"; mediaType: string; index: ImageIndex };

const SCHEMA1_MEDIA_TYPES: readonly string[] = [MediaType.dockerSchema1, MediaType.dockerSchema1Signed];
const SCHEMA1_MESSAGE =
  "Docker schema 1 manifests are deprecated and not supported; push the image again with a current client (OCI or Docker schema 2)";

type Kind = ParsedManifest["kind"];

/**
 * Parses and validates a manifest or index from its raw bytes.
 *
 * `contentType` is the `Content-Type` the bytes came with, if any; when it names a known
 * manifest type it must agree with the document. Documents without a `mediaType` field
 * (the onmetal dialect writes none) take their type from `contentType` or from their shape:
 * `config` + `layers` is an OCI manifest, `manifests` an OCI index.
 *
 * @throws OcibootError UNSAFE_CONTENT above 4 MiB; UNSUPPORTED for Docker schema 1 and unknown
 *   manifest media types; INVALID_MANIFEST for everything else that is wrong.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  if (bytes.byteLength > Limits.manifestBytes) {
    // OCI distribution spec v1.1: registries need not accept manifests over 4 MiB, and reading
    // more into memory would let a hostile registry exhaust it.
    throw new OcibootError(
      "UNSAFE_CONTENT",
      `Cannot parse manifest: ${bytes.byteLength} bytes exceed the limit of ${Limits.manifestBytes}`,
    );
  }
  const document = decodeJsonObject(bytes, "manifest");
  const announcedType = contentType === undefined ? undefined : bareMediaType(contentType);
  if (announcedType !== undefined && SCHEMA1_MEDIA_TYPES.includes(announcedType)) {
    throw new OcibootError("UNSUPPORTED", `Cannot parse manifest: ${SCHEMA1_MESSAGE}`);
  }

  const ownType = document["mediaType"];
  if (ownType !== undefined && typeof ownType !== "string") {
    throw manifestError("mediaType must be a string");
  }
  if (ownType !== undefined && SCHEMA1_MEDIA_TYPES.includes(ownType)) {
    throw new OcibootError("UNSUPPORTED", `Cannot parse manifest: ${SCHEMA1_MESSAGE}`);
  }
  const schemaVersion = document["schemaVersion"];
  if (schemaVersion === 1) {
    throw new OcibootError("UNSUPPORTED", `Cannot parse manifest: ${SCHEMA1_MESSAGE}`);
  }
  if (schemaVersion !== 2) {
    throw manifestError("schemaVersion must be 2");
  }

  const kind = shapeOf(document);
  const knownAnnounced = announcedType !== undefined ? kindOfMediaType(announcedType) : undefined;
  if (ownType !== undefined) {
    const ownKind = kindOfMediaType(ownType);
    if (ownKind === undefined) {
      throw new OcibootError("UNSUPPORTED", `Cannot parse manifest: unsupported media type "${shorten(ownType)}"`);
    }
    if (ownKind !== kind) {
      throw manifestError(`mediaType "${ownType}" is ${article(ownKind)} but the document has the fields of ${article(kind)}`);
    }
    if (knownAnnounced !== undefined && announcedType !== ownType) {
      throw manifestError(`mediaType "${ownType}" disagrees with Content-Type "${announcedType}"`);
    }
  } else if (knownAnnounced !== undefined && knownAnnounced !== kind) {
    throw manifestError(`Content-Type "${announcedType}" is ${article(knownAnnounced)} but the document has the fields of ${article(kind)}`);
  }
  const impliedType = kind === "manifest" ? MediaType.ociManifest : MediaType.ociIndex;
  const mediaType = ownType ?? (knownAnnounced !== undefined ? announcedType : undefined) ?? impliedType;

  return kind === "manifest"
    ? { kind, mediaType, manifest: readImageManifest(document, ownType) }
    : { kind, mediaType, index: readImageIndex(document, ownType) };
}

/** The effective media type of a parsed manifest or index (see {@link ParsedManifest}). */
export function manifestMediaTypeOf(parsed: ParsedManifest): string {
  return parsed.mediaType;
}

/**
 * Decodes bytes as a strict UTF-8 JSON object. Shared by manifest and config parsing.
 *
 * @throws OcibootError INVALID_MANIFEST naming `what`.
 */
export function decodeJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let text: string;
  try {
    // A byte-order mark is kept (ignoreBOM) so that JSON.parse refuses it: RFC 8259 §8.1
    // forbids one, and Go's encoding/json (which registries and onmetal-image use) rejects it.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (error) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot parse ${what}: not valid UTF-8`, { cause: error });
  }
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (error) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot parse ${what}: ${(error as Error).message}`, { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new OcibootError("INVALID_MANIFEST", `Cannot parse ${what}: the JSON document is not an object`);
  }
  return value as Record<string, unknown>;
}

function shapeOf(document: Record<string, unknown>): Kind {
  const hasManifests = document["manifests"] !== undefined;
  const hasImageFields = document["config"] !== undefined || document["layers"] !== undefined;
  if (hasManifests && hasImageFields) {
    // OCI image spec v1.1 security note: a document readable as both index and manifest
    // could be interpreted differently by different clients.
    throw manifestError("ambiguous document with both manifests and config/layers");
  }
  if (hasManifests) return "index";
  if (hasImageFields) return "manifest";
  throw manifestError("neither an image manifest (config, layers) nor an index (manifests)");
}

function readImageManifest(document: Record<string, unknown>, mediaType: string | undefined): ImageManifest {
  const config = parseDescriptor(document["config"], "config");
  const layersValue = document["layers"];
  if (!Array.isArray(layersValue)) {
    throw manifestError("layers must be an array");
  }
  // An empty layer list is allowed: OCI image spec v1.1 permits artifacts without layers.
  const layers = layersValue.map((layer: unknown, position) => parseDescriptor(layer, `layers[${position}]`));
  const manifest: ImageManifest = { schemaVersion: 2, config, layers };
  if (mediaType !== undefined) manifest.mediaType = mediaType;
  addCommonFields(manifest, document);
  return manifest;
}

function readImageIndex(document: Record<string, unknown>, mediaType: string | undefined): ImageIndex {
  const manifestsValue = document["manifests"];
  if (!Array.isArray(manifestsValue)) {
    throw manifestError("manifests must be an array");
  }
  const manifests = manifestsValue.map((entry: unknown, position) => parseDescriptor(entry, `manifests[${position}]`));
  const index: ImageIndex = { schemaVersion: 2, manifests };
  if (mediaType !== undefined) index.mediaType = mediaType;
  addCommonFields(index, document);
  return index;
}

function addCommonFields(target: ImageManifest | ImageIndex, document: Record<string, unknown>): void {
  const artifactType = document["artifactType"];
  if (artifactType !== undefined) {
    if (!isMediaType(artifactType)) {
      throw manifestError("artifactType must be a type/subtype media type (RFC 6838)");
    }
    target.artifactType = artifactType;
  }
  if (document["subject"] !== undefined) {
    target.subject = parseDescriptor(document["subject"], "subject");
  }
  if (document["annotations"] !== undefined) {
    target.annotations = parseAnnotations(document["annotations"], "annotations");
  }
}

function kindOfMediaType(mediaType: string): Kind | undefined {
  if (MANIFEST_MEDIA_TYPES.includes(mediaType)) return "manifest";
  if (INDEX_MEDIA_TYPES.includes(mediaType)) return "index";
  return undefined;
}

function bareMediaType(contentType: string): string {
  // Content-Type may carry parameters ("; charset=utf-8"); media types compare case-insensitively
  // (RFC 6838 §4.2) and all known manifest types are lowercase.
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

function article(kind: Kind): string {
  return kind === "manifest" ? "an image manifest" : "an index";
}

function manifestError(reason: string): OcibootError {
  return new OcibootError("INVALID_MANIFEST", `Cannot parse manifest: ${reason}`);
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
