import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { OciLayoutStore } from "../content/layout.ts";
import type { ReadableStore } from "../content/store.ts";
import { ContentVerifier } from "../content/verify.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { hasBootFiles, noBootFilesError, parseBootConfig, planBootFiles, type Role } from "../oci/dialects.ts";
import { toDigest } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { fileMatches } from "./download.ts";
import { readConfigBytes, readManifestBytes, resolveManifest, type ManifestSelection } from "./resolve.ts";

export interface VerifiedItem {
  /** A file name (directory check) or a digest (store check). */
  name: string;
  role?: Role;
  digest?: string;
  size?: number;
  ok: boolean;
  problem?: string;
}

export interface VerifyReport {
  digest: string;
  items: VerifiedItem[];
  ok: boolean;
}

/**
 * Checks that the boot files in a directory (as fetch wrote them) are exactly what the image
 * in `store` holds: each file by role with the layer's size and digest, and the command line.
 */
export async function verifyDirectory(
  store: ReadableStore,
  reference: string,
  directory: string,
  options: ManifestSelection & { roles?: readonly Role[]; fileNames?: Partial<Record<Role, string>>; signal?: AbortSignal } = {},
): Promise<VerifyReport> {
  const resolved = await resolveManifest(store, reference, options, options.signal);
  const plan = planBootFiles(resolved.manifest);
  if (!hasBootFiles(plan)) throw noBootFilesError("verify", reference, resolved.manifest);
  const wanted = options.roles ? new Set(options.roles) : undefined;
  const items: VerifiedItem[] = [];
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
    const { commandLine } = parseBootConfig(await readConfigBytes(store, resolved.manifest.config, options.signal));
    if (commandLine !== undefined) {
      const name = options.fileNames?.cmdline ?? "cmdline";
      const actual = await readFile(join(directory, name), "utf8").catch(() => undefined);
      const ok = actual !== undefined && actual.replace(/\n$/, "") === commandLine;
      items.push({ name, role: "cmdline", ok, ...(ok ? {} : { problem: "missing, or not the image's command line" }) });
    }
  }
  return { digest: resolved.descriptor.digest, items, ok: items.every((item) => item.ok) };
}

/**
 * Checks a whole image graph in a store: every manifest and index below `reference` parses and
 * hashes to its digest, and every config and layer is present with its exact size and digest.
 */
export async function verifyImage(store: ReadableStore, reference: string, signal?: AbortSignal): Promise<VerifyReport> {
  const root = await store.resolve(reference);
  const items: VerifiedItem[] = [];
  await verifyNode(store, root, 0, items, new Set<string>(), signal);
  return { digest: root.digest, items, ok: items.every((item) => item.ok) };
}

/**
 * Checks a whole layout store: every image its index.json names (content shared between images
 * is checked once), then every other blob file against its own name.
 */
export async function verifyLayoutStore(store: OciLayoutStore, signal?: AbortSignal): Promise<VerifyReport> {
  await store.requireLayout();
  const entries = await store.entries();
  // A store that names no image proves nothing: "all 0 items verified" would be a false green.
  if (entries.length === 0) throw new OcibootError("NOT_FOUND", `Cannot verify ${store.description}: its index.json lists no image`);
  const items: VerifiedItem[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    await verifyNode(store, await store.resolve(entry.digest), 0, items, seen, signal);
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
  depth: number,
  items: VerifiedItem[],
  seen: Set<string>,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (seen.has(descriptor.digest)) return;
  seen.add(descriptor.digest);
  if (depth > Limits.indexDepth) {
    throw new OcibootError("UNSAFE_CONTENT", `Cannot verify ${descriptor.digest}: indexes nested deeper than ${Limits.indexDepth}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readManifestBytes(store, descriptor, signal);
  } catch (error) {
    items.push(failure(descriptor, error));
    return;
  }
  items.push({ name: descriptor.digest, digest: descriptor.digest, size: descriptor.size, ok: true });
  const parsed = parseManifest(bytes, descriptor.mediaType);
  if (parsed.kind === "index") {
    for (const entry of parsed.index.manifests) await verifyNode(store, entry, depth + 1, items, seen, signal);
    return;
  }
  for (const blob of [parsed.manifest.config, ...parsed.manifest.layers]) {
    if (seen.has(blob.digest)) continue;
    seen.add(blob.digest);
    items.push(await verifyBlob(store, blob, signal));
  }
}

/** Streams one blob through the verifier without keeping it. */
export async function verifyBlob(store: ReadableStore, descriptor: Descriptor, signal?: AbortSignal): Promise<VerifiedItem> {
  try {
    const content = await store.fetch(descriptor, signal ? { signal } : {});
    const verifier = new ContentVerifier(descriptor);
    for await (const chunk of content.stream as unknown as AsyncIterable<Uint8Array>) verifier.update(chunk);
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
