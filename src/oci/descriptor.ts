import { OcibootError } from "../errors.ts";
import { parseDigest, type Digest } from "./digest.ts";

/** Platform of an index entry (OCI image spec v1.1, image-index.md). */
export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  features?: string[];
}

/** A content descriptor: everything in a content-addressed store is named by one. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  artifactType?: string;
  platform?: Platform;
}

// RFC 6838 §4.2 restricted-name, as the OCI image spec v1.1 schema (defs-descriptor.json) checks it.
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
// RFC 4648 §4 base64 with padding, as descriptor `data` is defined in OCI image spec v1.1.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** True when `text` has the RFC 6838 `type/subtype` shape (no parameters). */
export function isMediaType(text: unknown): text is string {
  return typeof text === "string" && MEDIA_TYPE.test(text);
}

/**
 * Validates one descriptor from parsed JSON (OCI image spec v1.1, descriptor.md): `mediaType`,
 * `digest` and `size` are required; `urls`, `annotations`, `platform`, `artifactType` and `data`
 * are checked when present; unknown fields are dropped. `where` names the place in the
 * document (`config`, `layers[2]`) for the error message.
 *
 * @throws OcibootError INVALID_MANIFEST naming `where` and the offending field.
 */
export function parseDescriptor(value: unknown, where: string): Descriptor {
  const object = expectObject(value, where);
  const mediaType = object["mediaType"];
  if (!isMediaType(mediaType)) {
    throw descriptorError(where, "mediaType must be a type/subtype media type (RFC 6838)");
  }
  const digestText = object["digest"];
  if (typeof digestText !== "string") {
    throw descriptorError(where, "digest must be a string");
  }
  let digest: Digest;
  try {
    digest = parseDigest(digestText).digest;
  } catch (error) {
    // A digest of an algorithm we lack is valid content we cannot check, not a broken manifest.
    const code = error instanceof OcibootError && error.code === "UNSUPPORTED" ? "UNSUPPORTED" : "INVALID_MANIFEST";
    throw new OcibootError(code, `Cannot read descriptor ${where}: ${(error as Error).message}`, { cause: error });
  }
  const size = object["size"];
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw descriptorError(where, "size must be a non-negative integer");
  }

  const descriptor: Descriptor = { mediaType, digest, size };
  if (object["urls"] !== undefined) {
    descriptor.urls = parseStringArray(object["urls"], `${where}.urls`);
  }
  if (object["annotations"] !== undefined) {
    descriptor.annotations = parseAnnotations(object["annotations"], `${where}.annotations`);
  }
  if (object["artifactType"] !== undefined) {
    if (!isMediaType(object["artifactType"])) {
      throw descriptorError(where, "artifactType must be a type/subtype media type (RFC 6838)");
    }
    descriptor.artifactType = object["artifactType"];
  }
  if (object["platform"] !== undefined) {
    descriptor.platform = parsePlatformObject(object["platform"], `${where}.platform`);
  }
  if (object["data"] !== undefined) {
    descriptor.data = parseData(object["data"], size, where);
  }
  return descriptor;
}

/**
 * Validates an annotations map: a JSON object whose values are all strings.
 *
 * @throws OcibootError INVALID_MANIFEST naming `where`.
 */
export function parseAnnotations(value: unknown, where: string): Record<string, string> {
  const object = expectObject(value, where);
  for (const [key, text] of Object.entries(object)) {
    if (typeof text !== "string") {
      throw descriptorError(where, `value of "${shorten(key)}" must be a string`);
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays a plain key.
  return Object.fromEntries(Object.entries(object) as Array<[string, string]>);
}

function parsePlatformObject(value: unknown, where: string): Platform {
  const object = expectObject(value, where);
  const architecture = object["architecture"];
  const os = object["os"];
  if (typeof architecture !== "string" || typeof os !== "string") {
    throw descriptorError(where, "architecture and os must be strings");
  }
  const platform: Platform = { architecture, os };
  const osVersion = object["os.version"];
  if (osVersion !== undefined) {
    if (typeof osVersion !== "string") throw descriptorError(where, "os.version must be a string");
    platform["os.version"] = osVersion;
  }
  if (object["os.features"] !== undefined) {
    platform["os.features"] = parseStringArray(object["os.features"], `${where}["os.features"]`);
  }
  const variant = object["variant"];
  if (variant !== undefined) {
    if (typeof variant !== "string") throw descriptorError(where, "variant must be a string");
    platform.variant = variant;
  }
  if (object["features"] !== undefined) {
    platform.features = parseStringArray(object["features"], `${where}.features`);
  }
  return platform;
}

function parseData(value: unknown, size: number, where: string): string {
  if (typeof value !== "string" || !BASE64.test(value)) {
    throw descriptorError(where, "data must be padded base64");
  }
  const decodedLength = (value.length / 4) * 3 - (value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0);
  // OCI image spec v1.1 descriptor.md: embedded data MUST match size (and digest, which the
  // verifying reader checks when the data is used).
  if (decodedLength !== size) {
    throw descriptorError(where, `data holds ${decodedLength} bytes but size says ${size}`);
  }
  return value;
}

function parseStringArray(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw descriptorError(where, "must be an array of strings");
  }
  return [...(value as string[])];
}

function expectObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw descriptorError(where, "must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function descriptorError(where: string, reason: string): OcibootError {
  return new OcibootError("INVALID_MANIFEST", `Cannot read descriptor ${where}: ${reason}`);
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
