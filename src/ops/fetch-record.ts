import { readBoundedFile } from "../content/fs-util.ts";
import { readVerified } from "../content/verify.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { ROLES, safeFileName, type Role } from "../oci/dialects.ts";
import { parseDigest } from "../oci/digest.ts";
import { decodeJsonObject } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";

/** Next to `manifest.json`: what `verify --dir DIR` needs to check the folder with no registry (docs/verify-offline.md). */
export const FETCH_RECORD_FILE_NAME = "ociboot-fetch.json";
const RECORD_VERSION = 1;
/** The record holds a config of at most 4 MiB, base64-encoded, and a few names. */
const MAX_RECORD_BYTES = 8 * 1024 * 1024;

/**
 * How a folder was fetched: the names each role was written under, the roles asked for, the
 * platform and index the manifest was chosen from, and the config blob when the command line came
 * from it (the manifest alone cannot prove a command line). Written by fetch, read by an offline verify.
 */
export interface FetchRecord {
  reference: string;
  source: string;
  digest: string;
  indexDigest?: string;
  platform?: Platform;
  /** The roles fetch was limited to (`--role`); absent when it wrote every file of the image. */
  roles?: Role[];
  /** The file name of every role written. */
  fileNames: Partial<Record<Role, string>>;
  /** The config blob's bytes, when the `cmdline` file was made from it. */
  config?: Uint8Array;
  /**
   * The bytes of the index (or chain of indexes) the manifest was chosen from, outermost first, so
   * that a reference pinned to the index can be checked offline. Not trusted: only used after
   * hashing to the pin (see `savedFetchMatches`).
   */
  indexes?: Uint8Array[];
}

/** The record as JSON: the config travels as base64 `data`, as in an OCI descriptor. */
export function serializeFetchRecord(record: FetchRecord): Uint8Array {
  const { config, indexes, ...rest } = record;
  const encoded = (bytes: Uint8Array) => ({ data: Buffer.from(bytes).toString("base64") });
  const document = {
    recordVersion: RECORD_VERSION,
    ...rest,
    ...(config ? { config: encoded(config) } : {}),
    ...(indexes && indexes.length > 0 ? { indexes: indexes.map(encoded) } : {}),
  };
  return new TextEncoder().encode(`${JSON.stringify(document, null, 2)}\n`);
}

/**
 * Reads the record of a folder; undefined when there is none (a folder fetched by an older
 * ociboot). The config is only returned after it matched `configDescriptor`, the manifest's own.
 *
 * @throws OcibootError INVALID_MANIFEST when the record is not one ociboot wrote; INTEGRITY when its config differs from the manifest's.
 */
export async function readFetchRecord(path: string, configDescriptor: Descriptor): Promise<FetchRecord | undefined> {
  const bytes = await readBoundedFile(path, MAX_RECORD_BYTES);
  if (!bytes) return undefined;
  const document = decodeJsonObject(bytes, path);
  const fail = (reason: string) => new OcibootError("INVALID_MANIFEST", `Cannot read ${path}: ${reason}`);
  if (document["recordVersion"] !== RECORD_VERSION) throw fail(`recordVersion is not ${RECORD_VERSION}`);
  const text = (key: string): string | undefined => {
    const value = document[key];
    if (value !== undefined && typeof value !== "string") throw fail(`${key} must be a string`);
    return value;
  };
  const digest = text("digest");
  if (digest === undefined) throw fail("digest is missing");
  parseDigest(digest);
  const record: FetchRecord = { reference: text("reference") ?? "", source: text("source") ?? "", digest, fileNames: parseFileNames(document["fileNames"], fail) };
  const indexDigest = text("indexDigest");
  if (indexDigest !== undefined) record.indexDigest = indexDigest;
  if (isRecord(document["platform"])) record.platform = document["platform"] as unknown as Platform;
  if (document["roles"] !== undefined) record.roles = parseRoleList(document["roles"], fail);
  const config = document["config"];
  if (config !== undefined) {
    const raw = decodeData(config, "config", fail);
    record.config = await readVerified(new Blob([raw]).stream(), configDescriptor, Limits.configBytes);
  }
  const indexes = document["indexes"];
  if (indexes !== undefined) {
    if (!Array.isArray(indexes) || indexes.length > Limits.graphDepth + 1) throw fail("indexes must be a short list");
    record.indexes = indexes.map((index: unknown, position) => decodeData(index, `indexes[${position}]`, fail));
  }
  return record;
}

function decodeData(value: unknown, where: string, fail: (reason: string) => OcibootError): Uint8Array {
  const data = isRecord(value) ? value["data"] : undefined;
  if (typeof data !== "string" || data.length > (Limits.manifestBytes * 4) / 3 + 4) throw fail(`${where}.data must be a base64 string`);
  return new Uint8Array(Buffer.from(data, "base64"));
}

function parseFileNames(value: unknown, fail: (reason: string) => OcibootError): Partial<Record<Role, string>> {
  if (!isRecord(value)) throw fail("fileNames must be an object");
  const names: Partial<Record<Role, string>> = {};
  for (const [role, name] of Object.entries(value)) {
    if (!(ROLES as readonly string[]).includes(role) || typeof name !== "string") throw fail(`fileNames.${role} is not a role and a file name`);
    // The name becomes a path inside the folder: the same rule as for layer titles.
    names[role as Role] = safeFileName(name);
  }
  return names;
}

function parseRoleList(value: unknown, fail: (reason: string) => OcibootError): Role[] {
  if (!Array.isArray(value) || !value.every((role) => (ROLES as readonly unknown[]).includes(role))) throw fail("roles must list roles");
  return value as Role[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
