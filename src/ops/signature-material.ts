import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readBoundedFile, writeFileAtomically } from "../content/fs-util.ts";
import { MemoryStore } from "../content/memory.ts";
import type { ReadableStore, ReferrerLister } from "../content/store.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseBootConfig, planBootFiles, type Role } from "../oci/dialects.ts";
import { sha256DigestOf } from "../oci/digest.ts";
import { decodeJsonObject, parseManifest } from "../oci/manifest.ts";
import { parseDescriptor } from "../oci/descriptor.ts";
import { Limits } from "../oci/mediatypes.ts";
import { encodeBase64, type TrustedKey } from "../oci/signature.ts";
import { fileMatches } from "./download.ts";
import { readManifestBytes } from "./graph-walk.ts";
import { readConfigBytes, type ResolvedManifest } from "./resolve.ts";
import { type SignatureMaterial, verifyResolvedSignature, type VerifiedSigner } from "./signature.ts";

/**
 * The signature material `fetch --key` keeps beside the boot files, so the folder can be checked
 * again with no registry (docs/trust.md): one JSON file (one write, one fsync) holding the `.sig`
 * manifest and its payloads (or a bundle's referrer and bundle), the index the manifest was chosen
 * from, and the image config where it holds the command line. Every blob in it is checked against its digest when read back.
 */
export const SIGNATURES_FILE = "signatures.json";
const MATERIAL_TYPE = "application/vnd.ociboot.signature-material.v1+json";
/** The `.sig` manifest and its payloads are capped; an index and a config may be 4 MiB each. */
const MAX_MATERIAL_FILE_BYTES = 16 * 1024 * 1024;
const MANIFEST_FILE = "manifest.json";

interface MaterialFile {
  mediaType: typeof MATERIAL_TYPE;
  /** The tag a `.sig` manifest was found under, and its descriptor (or a bundle's referrer manifest). */
  tag?: string;
  signature: Descriptor;
  /** A bundle's referrer manifest (with its artifactType), found again as a referrer of its subject. */
  referrers?: Descriptor[];
  /** The index whose entry selected the manifest, when there was one. */
  index?: Descriptor;
  /** Every blob by digest, base64. */
  blobs: Record<string, string>;
}

/** Saves verified signature material (and what offline checks need besides) as `file`. */
export async function saveSignatureMaterial(
  source: ReadableStore,
  file: string,
  material: SignatureMaterial,
  resolved: ResolvedManifest,
  options: { config?: Promise<Uint8Array>; signal?: AbortSignal } = {},
): Promise<void> {
  const { signal } = options;
  const blobs: Record<string, string> = {};
  const keep = (digest: string, bytes: Uint8Array) => void (blobs[digest] = encodeBase64(bytes));
  keep(material.manifest.descriptor.digest, material.manifest.bytes);
  for (const payload of material.payloads) keep(payload.descriptor.digest, payload.bytes);
  const index = resolved.indexes.at(-1);
  const reads: Array<Promise<void>> = [];
  // The image config matters offline only where it holds the command line; fetch has usually read it already.
  const config = resolved.manifest.config;
  const configBytes = options.config ?? (planBootFiles(resolved.manifest).commandLineFrom === "config" ? readConfigBytes(source, config, signal) : undefined);
  if (configBytes !== undefined) reads.push(configBytes.then((bytes) => keep(config.digest, bytes)));
  if (index !== undefined) reads.push(readManifestBytes(source, index, signal).then((bytes) => keep(index.digest, bytes)));
  await Promise.all(reads);
  const document: MaterialFile = { mediaType: MATERIAL_TYPE, signature: material.manifest.descriptor, blobs };
  if (material.tag !== undefined) document.tag = material.tag;
  if (material.referrer !== undefined) document.referrers = [material.referrer];
  if (index !== undefined) document.index = { mediaType: index.mediaType, digest: index.digest, size: index.size };
  await writeFileAtomically(file, new TextEncoder().encode(`${JSON.stringify(document)}\n`));
}

/** The saved material as a read-only store; every read is verified against the digest asked for. */
function materialStore(document: MaterialFile, description: string): { store: ReadableStore & ReferrerLister; index?: Descriptor } {
  const memory = new MemoryStore();
  for (const data of Object.values(document.blobs)) {
    const bytes = decodeBase64Unbounded(data);
    if (bytes !== undefined) memory.add("application/octet-stream", bytes);
  }
  const store: ReadableStore & ReferrerLister = {
    description,
    referrers: async () => document.referrers ?? [],
    resolve: async (reference) => {
      if (document.tag !== undefined && reference === document.tag) return document.signature;
      if (reference === INDEX_TAG && document.index !== undefined) return document.index;
      throw new OcibootError("NOT_FOUND", `Cannot resolve ${reference}: not in ${description}`);
    },
    fetch: (descriptor, options) => memory.fetch(descriptor, options),
    exists: (descriptor) => memory.exists(descriptor),
  };
  return document.index !== undefined ? { store, index: document.index } : { store };
}

const INDEX_TAG = "index";

function decodeBase64Unbounded(text: string): Uint8Array | undefined {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, "base64"));
}

async function readMaterial(directory: string): Promise<{ store: ReadableStore & ReferrerLister; index?: Descriptor }> {
  const path = join(directory, SIGNATURES_FILE);
  const bytes = await readBoundedFile(path, MAX_MATERIAL_FILE_BYTES);
  const empty: MaterialFile = { mediaType: MATERIAL_TYPE, signature: { mediaType: "", digest: "" as Descriptor["digest"], size: 0 }, blobs: {} };
  if (bytes === undefined) return materialStore(empty, path);
  let document: MaterialFile;
  try {
    const parsed = decodeJsonObject(bytes, SIGNATURES_FILE);
    const signature = parseDescriptor(parsed["signature"], "signature");
    const index = parsed["index"] === undefined ? undefined : parseDescriptor(parsed["index"], "index");
    const blobs = parsed["blobs"];
    const referrers = Array.isArray(parsed["referrers"]) ? parsed["referrers"].slice(0, 16).map((entry, position) => parseDescriptor(entry, `referrers[${position}]`)) : undefined;
    if (typeof blobs !== "object" || blobs === null || Array.isArray(blobs)) throw new Error("no blobs");
    document = { mediaType: MATERIAL_TYPE, signature, blobs: blobs as Record<string, string>, ...(index ? { index } : {}), ...(referrers ? { referrers } : {}) };
    if (typeof parsed["tag"] === "string") document.tag = parsed["tag"];
  } catch (error) {
    throw new OcibootError("SIGNATURE", `Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  return materialStore(document, path);
}

export interface OfflineCheckOptions {
  keys: readonly TrustedKey[];
  /** The digest the user pinned (`REF@sha256:…`): manifest.json must hash to it. */
  pinned?: string;
  roles?: readonly Role[];
  fileNames?: Partial<Record<Role, string>>;
  signal?: AbortSignal;
}

export interface OfflineCheckItem {
  name: string;
  role?: Role;
  digest?: string;
  size?: number;
  ok: boolean;
  problem?: string;
}

export interface OfflineCheckReport {
  digest: string;
  signer: VerifiedSigner;
  items: OfflineCheckItem[];
  ok: boolean;
}

/**
 * Re-checks a folder `fetch --key` wrote, with no registry: the manifest from `DIR/manifest.json`
 * (its digest must match a pin), its signature from the saved material, then every boot file.
 *
 * @throws OcibootError SIGNATURE when no trusted signature verifies; INTEGRITY when the pin differs.
 */
export async function checkFetchedFolder(directory: string, options: OfflineCheckOptions): Promise<OfflineCheckReport> {
  const manifestPath = join(directory, MANIFEST_FILE);
  const bytes = await readBoundedFile(manifestPath, Limits.manifestBytes);
  if (bytes === undefined) throw new OcibootError("NOT_FOUND", `Cannot verify ${directory}: no ${MANIFEST_FILE} (was it written by ociboot fetch?)`);
  const digest = sha256DigestOf(bytes);
  if (options.pinned !== undefined && options.pinned !== digest) {
    throw new OcibootError("INTEGRITY", `Cannot verify ${directory}: ${MANIFEST_FILE} is ${digest}, not the pinned ${options.pinned}`);
  }
  const parsed = parseManifest(bytes);
  if (parsed.kind !== "manifest") throw new OcibootError("INVALID_MANIFEST", `Cannot verify ${directory}: ${MANIFEST_FILE} is an index`);
  const material = await readMaterial(directory);
  const layout = material.store;
  const resolved: ResolvedManifest = { descriptor: { mediaType: parsed.mediaType, digest, size: bytes.byteLength }, bytes, manifest: parsed.manifest, indexes: [], indexBytes: [] };
  const index = material.index === undefined ? undefined : await savedIndex(layout, material.index, options.signal);
  const entry = index?.entries.find((candidate) => candidate.digest === digest);
  if (index !== undefined && entry !== undefined) {
    resolved.descriptor = { ...entry, mediaType: parsed.mediaType };
    resolved.indexes = [index.descriptor];
  }
  const { signer } = await verifyResolvedSignature(layout, resolved, options.keys, {}, options.signal ? { signal: options.signal } : {});
  const items = await checkFiles(directory, layout, resolved, options);
  return { digest, signer, items, ok: items.every((item) => item.ok) };
}

async function savedIndex(layout: ReadableStore, descriptor: Descriptor, signal: AbortSignal | undefined): Promise<{ descriptor: Descriptor; entries: Descriptor[] } | undefined> {
  const parsed = parseManifest(await readManifestBytes(layout, descriptor, signal), descriptor.mediaType);
  return parsed.kind === "index" ? { descriptor, entries: parsed.index.manifests } : undefined;
}

async function checkFiles(directory: string, layout: ReadableStore, resolved: ResolvedManifest, options: OfflineCheckOptions): Promise<OfflineCheckItem[]> {
  const plan = planBootFiles(resolved.manifest);
  const wanted = options.roles ? new Set(options.roles) : undefined;
  const items: OfflineCheckItem[] = [{ name: MANIFEST_FILE, digest: resolved.descriptor.digest, size: resolved.bytes.byteLength, ok: true }];
  for (const file of plan.files) {
    if (wanted && (!file.role || !wanted.has(file.role))) continue;
    const name = (file.role && options.fileNames?.[file.role]) || file.name;
    const ok = await fileMatches(join(directory, name), file.descriptor, options.signal);
    items.push({
      name,
      ...(file.role ? { role: file.role } : {}),
      digest: file.descriptor.digest,
      size: file.descriptor.size,
      ok,
      ...(ok ? {} : { problem: "missing, or its size or digest differs" }),
    });
  }
  if (plan.commandLineFrom === "config" && (!wanted || wanted.has("cmdline"))) {
    // The signed manifest names the config; the saved copy is checked against that digest before use.
    const config = await readConfigBytes(layout, resolved.manifest.config, options.signal).catch((error: unknown) => {
      if (isOcibootError(error, "NOT_FOUND")) return undefined;
      throw error;
    });
    const name = options.fileNames?.cmdline ?? "cmdline";
    const commandLine = config === undefined ? undefined : parseBootConfig(config).commandLine;
    if (config === undefined) {
      items.push({ name, role: "cmdline", ok: false, problem: `the image config is not in ${SIGNATURES_FILE}` });
    } else if (commandLine !== undefined) {
      const actual = await readFile(join(directory, name), "utf8").catch(() => undefined);
      const ok = actual !== undefined && actual.replace(/\n$/, "") === commandLine;
      items.push({ name, role: "cmdline", ok, ...(ok ? {} : { problem: "missing, or not the image's command line" }) });
    }
  }
  return items;
}
