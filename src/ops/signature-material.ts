import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readBoundedFile } from "../content/fs-util.ts";
import { OciLayoutStore } from "../content/layout.ts";
import type { ReadableStore } from "../content/store.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseBootConfig, planBootFiles, type Role } from "../oci/dialects.ts";
import { sha256DigestOf } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import type { TrustedKey } from "../oci/signature.ts";
import { fileMatches } from "./download.ts";
import { readConfigBytes, readManifestBytes, type ResolvedManifest } from "./resolve.ts";
import { type SignatureMaterial, verifyResolvedSignature, type VerifiedSigner } from "./signature.ts";

/**
 * The signature material `fetch --key` keeps beside the boot files, so the folder can be checked
 * again with no registry (docs/trust.md): a small OCI layout holding the `.sig` manifest (tagged
 * `sha256-<hex>.sig`), its payloads, the index entry's index (tagged `index`) and the image config.
 */
export const SIGNATURES_DIRECTORY = "signatures";
const INDEX_TAG = "index";
const MANIFEST_FILE = "manifest.json";

/** Saves verified signature material (and what offline checks need besides) into `directory`. */
export async function saveSignatureMaterial(
  source: ReadableStore,
  directory: string,
  material: SignatureMaterial,
  resolved: ResolvedManifest,
  signal?: AbortSignal,
): Promise<void> {
  const layout = new OciLayoutStore(directory);
  for (const blob of [material.config, ...material.payloads]) {
    if (blob !== undefined) await layout.push(blob.descriptor, bytesStream(blob.bytes));
  }
  await layout.push(material.manifest.descriptor, bytesStream(material.manifest.bytes));
  await layout.tag(material.manifest.descriptor, material.tag);
  const config = resolved.manifest.config;
  if (config.size <= Limits.configBytes) await layout.push(config, bytesStream(await readConfigBytes(source, config, signal)));
  const index = resolved.indexes.at(-1);
  if (index !== undefined) {
    const descriptor: Descriptor = { mediaType: index.mediaType, digest: index.digest, size: index.size };
    await layout.push(descriptor, bytesStream(await readManifestBytes(source, descriptor, signal)));
    await layout.tag(descriptor, INDEX_TAG);
  }
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
  const layout = new OciLayoutStore(join(directory, SIGNATURES_DIRECTORY));
  const resolved: ResolvedManifest = { descriptor: { mediaType: parsed.mediaType, digest, size: bytes.byteLength }, bytes, manifest: parsed.manifest, indexes: [] };
  const index = await savedIndex(layout, options.signal);
  const entry = index?.entries.find((candidate) => candidate.digest === digest);
  if (index !== undefined && entry !== undefined) {
    resolved.descriptor = { ...entry, mediaType: parsed.mediaType };
    resolved.indexes = [index.descriptor];
  }
  const { signer } = await verifyResolvedSignature(layout, resolved, options.keys, {}, options.signal ? { signal: options.signal } : {});
  const items = await checkFiles(directory, layout, resolved, options);
  return { digest, signer, items, ok: items.every((item) => item.ok) };
}

async function savedIndex(layout: OciLayoutStore, signal: AbortSignal | undefined): Promise<{ descriptor: Descriptor; entries: Descriptor[] } | undefined> {
  let descriptor: Descriptor;
  try {
    descriptor = await layout.resolve(INDEX_TAG);
  } catch (error) {
    if (isOcibootError(error, "NOT_FOUND")) return undefined;
    throw error;
  }
  const parsed = parseManifest(await readManifestBytes(layout, descriptor, signal), descriptor.mediaType);
  return parsed.kind === "index" ? { descriptor, entries: parsed.index.manifests } : undefined;
}

async function checkFiles(directory: string, layout: OciLayoutStore, resolved: ResolvedManifest, options: OfflineCheckOptions): Promise<OfflineCheckItem[]> {
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
      items.push({ name, role: "cmdline", ok: false, problem: `the image config is not in ${SIGNATURES_DIRECTORY}/` });
    } else if (commandLine !== undefined) {
      const actual = await readFile(join(directory, name), "utf8").catch(() => undefined);
      const ok = actual !== undefined && actual.replace(/\n$/, "") === commandLine;
      items.push({ name, role: "cmdline", ok, ...(ok ? {} : { problem: "missing, or not the image's command line" }) });
    }
  }
  return items;
}

function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new Blob([bytes]).stream();
}
