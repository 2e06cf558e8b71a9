import { createHash } from "node:crypto";
import { join } from "node:path";
import { readBoundedFile } from "../content/fs-util.ts";
import { isArchiveStore } from "../content/archive-store.ts";
import type { ReadableStore } from "../content/store.ts";
import { ContentVerifier } from "../content/verify.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { hasBootFiles, noBootFilesError, parseBootConfig, planBootFiles, type Role } from "../oci/dialects.ts";
import { type Digest, parseDigest, sha256DigestOf, toDigest } from "../oci/digest.ts";
import { type ImageManifest, parseManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { compareFile, type FileComparison } from "./download.ts";
import { commandLineFileBytes, MANIFEST_FILE_NAME } from "./fetch.ts";
import { FETCH_RECORD_FILE_NAME, type FetchRecord, readFetchRecord } from "./fetch-record.ts";
import { walkGraph } from "./graph-walk.ts";
import { readConfigBytes, resolveManifest, type ManifestSelection } from "./resolve.ts";

export interface VerifiedItem {
  /** A file name (directory check) or a digest (store check). */
  name: string;
  role?: Role;
  digest?: string;
  size?: number;
  ok: boolean;
  /** For a file: `missing`, or `changed` with what the file now holds. */
  state?: "ok" | "missing" | "changed";
  actualDigest?: string;
  actualSize?: number;
  problem?: string;
}

export interface VerifyReport {
  digest: string;
  /** Where the manifest came from when it was not the store: the folder's saved `manifest.json`. */
  manifestFrom?: string;
  items: VerifiedItem[];
  ok: boolean;
}

/** Which files of a fetched folder to check, and under which names. */
export interface DirectoryCheckOptions {
  roles?: readonly Role[];
  fileNames?: Partial<Record<Role, string>>;
  signal?: AbortSignal;
}

/**
 * Checks that the boot files in a directory (as fetch wrote them) are exactly what the image
 * in `store` holds: each file by role with the layer's size and digest, and the command line.
 */
export async function verifyDirectory(
  store: ReadableStore,
  reference: string,
  directory: string,
  options: ManifestSelection & DirectoryCheckOptions = {},
): Promise<VerifyReport> {
  const resolved = await resolveManifest(store, reference, options, options.signal);
  const items = await checkBootFiles(resolved.manifest, reference, directory, options, () => readConfigBytes(store, resolved.manifest.config, options.signal));
  return { digest: resolved.descriptor.digest, items, ok: items.every((item) => item.ok) };
}

/** A folder fetch wrote, as read back from disk: its exact `manifest.json` and the record of how it was fetched. */
export interface SavedFetch {
  directory: string;
  manifestPath: string;
  manifestBytes: Uint8Array;
  manifest: ImageManifest;
  /** The sha256 digest of `manifest.json`: what a signature or a pinned reference is checked against. */
  digest: Digest;
  record?: FetchRecord;
}

/**
 * Reads what fetch saved in a folder, for checks with no registry: `manifest.json` (an image
 * manifest) and `ociboot-fetch.json` when present.
 *
 * @throws OcibootError NOT_FOUND when the folder has no manifest.json; INVALID_MANIFEST when it is not an image manifest.
 */
export async function readSavedFetch(directory: string): Promise<SavedFetch> {
  const manifestPath = join(directory, MANIFEST_FILE_NAME);
  const manifestBytes = await readBoundedFile(manifestPath, Limits.manifestBytes + 1);
  if (!manifestBytes) {
    throw new OcibootError("NOT_FOUND", `Cannot verify ${directory}: it has no ${MANIFEST_FILE_NAME}, so it is not a folder ociboot fetch wrote (name the image: verify REF --dir DIR)`);
  }
  const parsed = parseManifest(manifestBytes);
  if (parsed.kind !== "manifest") throw new OcibootError("INVALID_MANIFEST", `Cannot verify ${directory}: ${manifestPath} is an index, not an image manifest`);
  const saved: SavedFetch = { directory, manifestPath, manifestBytes, manifest: parsed.manifest, digest: sha256DigestOf(manifestBytes) };
  const record = await readFetchRecord(join(directory, FETCH_RECORD_FILE_NAME), parsed.manifest.config);
  if (record) saved.record = record;
  return saved;
}

/**
 * True when `pin` names the saved manifest, or the saved index it was chosen from: the index bytes
 * must hash to the pin and each index must list the next one, down to the manifest, by digest.
 */
export function savedFetchMatches(saved: SavedFetch, pin: Digest): boolean {
  const chain = [...(saved.record?.indexes ?? []), saved.manifestBytes];
  const first = chain.findIndex((bytes) => hashesTo(bytes, pin));
  if (first < 0) return false;
  for (let position = first; position < chain.length - 1; position++) {
    const parsed = parseManifest(chain[position] as Uint8Array);
    const next = chain[position + 1] as Uint8Array;
    if (parsed.kind !== "index" || !parsed.index.manifests.some((entry) => entry.size === next.byteLength && hashesTo(next, entry.digest))) return false;
  }
  return true;
}

function hashesTo(bytes: Uint8Array, digest: Digest): boolean {
  const { algorithm, hex } = parseDigest(digest);
  return createHash(algorithm).update(bytes).digest("hex") === hex;
}

/** True when the folder can be checked from what it holds: the command line needs the saved config. */
export function canVerifyOffline(saved: SavedFetch, options: DirectoryCheckOptions = {}): boolean {
  const roles = options.roles ?? saved.record?.roles;
  const wantsCommandLine = !roles || roles.includes("cmdline");
  return !(wantsCommandLine && planBootFiles(saved.manifest).commandLineFrom === "config" && saved.record?.config === undefined);
}

/**
 * Checks a fetched folder against its own saved `manifest.json`, with no registry: the files by
 * role under the names and roles fetch recorded (options override them), and the command line
 * against the saved config. The trust in the manifest itself comes from outside: a pinned digest
 * ({@link savedFetchMatches}), or the digest in the report compared by the user.
 */
export async function verifySavedDirectory(saved: SavedFetch, options: DirectoryCheckOptions = {}): Promise<VerifyReport> {
  const roles = options.roles ?? saved.record?.roles;
  const check: DirectoryCheckOptions = { fileNames: { ...saved.record?.fileNames, ...options.fileNames } };
  if (roles) check.roles = roles;
  if (options.signal) check.signal = options.signal;
  const items = await checkBootFiles(saved.manifest, saved.manifestPath, saved.directory, check, async () => saved.record?.config);
  return { digest: saved.digest, manifestFrom: saved.manifestPath, items, ok: items.every((item) => item.ok) };
}

async function checkBootFiles(
  manifest: ImageManifest,
  reference: string,
  directory: string,
  options: DirectoryCheckOptions,
  readConfig: () => Promise<Uint8Array | undefined>,
): Promise<VerifiedItem[]> {
  const plan = planBootFiles(manifest);
  if (!hasBootFiles(plan)) throw noBootFilesError("verify", reference, manifest);
  const wanted = options.roles ? new Set(options.roles) : undefined;
  const items: VerifiedItem[] = [];
  for (const file of plan.files) {
    if (wanted && (!file.role || !wanted.has(file.role))) continue;
    const name = (file.role && options.fileNames?.[file.role]) || file.name;
    const comparison = await compareFile(join(directory, name), file.descriptor, options.signal);
    items.push({ name, ...(file.role ? { role: file.role } : {}), ...fileItem(file.descriptor, comparison) });
  }
  if (plan.commandLineFrom === "config" && (!wanted || wanted.has("cmdline"))) {
    const name = options.fileNames?.cmdline ?? "cmdline";
    const config = await readConfig();
    if (config === undefined) {
      items.push({ name, role: "cmdline", ok: false, problem: "cannot be checked here: the image's config was not saved with the folder (verify REF --dir DIR checks it against the image)" });
    } else {
      const { commandLine } = parseBootConfig(config);
      if (commandLine !== undefined) items.push({ name, role: "cmdline", ...(await commandLineItem(join(directory, name), commandLine)) });
    }
  }
  if (items.length === 0) {
    throw new OcibootError("NOT_FOUND", `Cannot verify ${directory}: the image has no ${[...(wanted ?? [])].join(", ")} to check`);
  }
  return items;
}

function fileItem(descriptor: Descriptor, comparison: FileComparison): Omit<VerifiedItem, "name"> {
  const expected = { digest: descriptor.digest, size: descriptor.size };
  if (comparison.state === "matches") return { ...expected, ok: true, state: "ok" };
  if (comparison.state === "missing") return { ...expected, ok: false, state: "missing", problem: "missing" };
  return {
    ...expected,
    ok: false,
    state: "changed",
    actualDigest: comparison.digest,
    actualSize: comparison.size,
    problem: `changed: it is ${comparison.digest} (${comparison.size} bytes), the image has ${descriptor.digest} (${descriptor.size} bytes)`,
  };
}

async function commandLineItem(path: string, commandLine: string): Promise<Omit<VerifiedItem, "name" | "role">> {
  const expected = commandLineFileBytes(commandLine);
  const descriptor: Descriptor = { mediaType: "text/plain", digest: sha256DigestOf(expected), size: expected.byteLength };
  const actual = await readBoundedFile(path, Limits.configBytes).catch(() => undefined);
  if (actual === undefined) return fileItem(descriptor, { state: "missing" });
  // A cmdline edited to lose its final newline still says the same thing.
  if (new TextDecoder().decode(actual).replace(/\n$/, "") === commandLine) return { digest: descriptor.digest, size: descriptor.size, ok: true, state: "ok" };
  return fileItem(descriptor, { state: "changed", digest: sha256DigestOf(actual), size: actual.byteLength });
}

/**
 * Checks a whole image graph in a store: every manifest and index below `reference` parses and
 * hashes to its digest, and every config and layer is present with its exact size and digest.
 */
export async function verifyImage(store: ReadableStore, reference: string, signal?: AbortSignal): Promise<VerifyReport> {
  const root = await store.resolve(reference);
  const items: VerifiedItem[] = [];
  await verifyNode(store, root, items, new Set<string>(), signal);
  return { digest: root.digest, items, ok: items.every((item) => item.ok) };
}

/** A store that names its images in an index.json and can list every blob it holds: a layout, or an archive read in place. */
export interface WholeStore extends ReadableStore {
  readonly description: string;
  requireLayout(): Promise<void>;
  entries(): Promise<Descriptor[]>;
  blobs(): AsyncIterable<{ digest: string; size: number }>;
}

/**
 * Checks a whole layout store or archive: every image its index.json names (content shared
 * between images is checked once), then every other blob against its own name. In an archive
 * read in one pass, a blob the pass verified and did not keep is reported from that check, and a
 * corrupt one is one failed item among the others.
 */
export async function verifyLayoutStore(store: WholeStore, signal?: AbortSignal): Promise<VerifyReport> {
  await store.requireLayout();
  const entries = await store.entries();
  // A store that names no image proves nothing: "all 0 items verified" would be a false green.
  if (entries.length === 0) throw new OcibootError("NOT_FOUND", `Cannot verify ${store.description}: its index.json lists no image`);
  const items: VerifiedItem[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    await verifyNode(store, await store.resolve(entry.digest), items, seen, signal);
  }
  for await (const blob of store.blobs()) {
    if (seen.has(blob.digest)) continue;
    items.push(await verifyBlob(store, { mediaType: "application/octet-stream", digest: toDigest(blob.digest), size: blob.size }, signal));
  }
  return { digest: "", items, ok: items.every((item) => item.ok) };
}

async function verifyNode(
  store: ReadableStore,
  descriptor: Descriptor,
  items: VerifiedItem[],
  seen: Set<string>,
  signal: AbortSignal | undefined,
): Promise<void> {
  await walkGraph(store, descriptor, {
    action: `verify ${descriptor.digest}`,
    visited: seen,
    ...(signal ? { signal } : {}),
    enter: async (node) => {
      items.push({ name: node.descriptor.digest, digest: node.descriptor.digest, size: node.descriptor.size, ok: true });
      for (const blob of node.blobs) items.push(await verifyBlob(store, blob, signal));
    },
    unreadable: (unread, error) => {
      items.push(failure(unread, error));
      return true;
    },
  });
}

/** Streams one blob through the verifier without keeping it. */
export async function verifyBlob(store: ReadableStore, descriptor: Descriptor, signal?: AbortSignal): Promise<VerifiedItem> {
  const passed = isArchiveStore(store) ? store.checkedInPass(descriptor) : undefined;
  if (passed !== undefined) {
    // Verified as the archive's one pass went by (docs/archives.md): not read a second time.
    return passed.ok ? { name: descriptor.digest, digest: descriptor.digest, size: descriptor.size, ok: true } : failure(descriptor, passed.error);
  }
  try {
    const content = await store.fetch(descriptor, signal ? { signal } : {});
    const verifier = new ContentVerifier(descriptor);
    for await (const chunk of content.stream as unknown as AsyncIterable<Uint8Array>) {
      verifier.update(chunk);
      // Hashed and not kept: pooled memory goes back to the source for its next reads.
      content.release?.(chunk);
    }
    verifier.finish();
    return { name: descriptor.digest, digest: descriptor.digest, size: descriptor.size, ok: true };
  } catch (error) {
    return failure(descriptor, error);
  }
}

function failure(descriptor: Descriptor, error: unknown): VerifiedItem {
  if (!isOcibootError(error) || !["INTEGRITY", "NOT_FOUND", "UNSAFE_CONTENT", "INVALID_MANIFEST"].includes(error.code)) throw error;
  return { name: descriptor.digest, digest: descriptor.digest, size: descriptor.size, ok: false, problem: error.message };
}
