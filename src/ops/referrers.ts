import { createHash } from "node:crypto";
import { basename } from "node:path";
import { errorCode, errorMessage, fileReadableStream } from "../content/fs-util.ts";
import { isIngester, isReferrerLister, type ReadableStore, type Store } from "../content/store.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import { EMPTY_DESCRIPTOR, EMPTY_JSON_BYTES, encodeArtifactManifest } from "../oci/artifact.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { isDigest, sha256Digest, sha256DigestOf } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Annotation, MediaType } from "../oci/mediatypes.ts";
import { readManifestBytes } from "./graph-walk.ts";

/**
 * Media type of attached files unless the caller names another: the one `oras attach` and
 * `oras push` give files, so the same files attached by either tool give the same manifest.
 */
export const DEFAULT_FILE_MEDIA_TYPE: string = MediaType.ociLayerTar;

/** Options for {@link attachFiles}. */
export interface AttachOptions {
  /** The artifact's `artifactType`, such as `build/log`. */
  artifactType: string;
  /** Media type of every file's layer (default {@link DEFAULT_FILE_MEDIA_TYPE}). */
  fileMediaType?: string;
  /** Manifest annotations; `org.opencontainers.image.created` among them is kept as given. */
  annotations?: Readonly<Record<string, string>>;
  /** `org.opencontainers.image.created` (RFC 3339) unless `annotations` has one; none when undefined. */
  created?: string;
  signal?: AbortSignal;
}

/** What {@link attachFiles} stored. */
export interface AttachResult {
  /** The manifest or index the artifact refers to. */
  subject: Descriptor;
  /** The artifact manifest, as listed among the subject's referrers. */
  artifact: Descriptor;
  /** One layer per file, in the order given, titled by the file's base name. */
  layers: Descriptor[];
}

/**
 * Attaches files to the manifest or index `reference` names, as `oras attach` does: each file
 * becomes a layer titled by its base name, an OCI 1.1 artifact manifest (empty config,
 * `artifactType`, `subject`) is pushed after its blobs, and the store lists it among the
 * subject's referrers (a registry through its referrers API or the fallback tag, a layout
 * through an untagged index.json entry).
 *
 * Files are streamed, never held in memory. A store that can ingest (a layout) hashes a file
 * while writing it, in one read; for any other store (a registry) the file is read twice: once to
 * learn its digest, once to upload it, checked again on the way.
 */
export async function attachFiles(store: Store, reference: string, files: readonly string[], options: AttachOptions): Promise<AttachResult> {
  const titles = files.map((path) => basename(path));
  const repeated = titles.find((title, position) => titles.indexOf(title) !== position);
  if (repeated !== undefined) {
    throw new OcibootError("USAGE", `Cannot attach two files named ${repeated}: each file is titled by its base name`);
  }
  const subject = await resolveSubject(store, reference, options.signal);
  const signal = options.signal ? { signal: options.signal } : {};
  const layers: Descriptor[] = [];
  for (const [position, path] of files.entries()) {
    const layer = await storeFile(store, path, options.fileMediaType ?? DEFAULT_FILE_MEDIA_TYPE, signal);
    layers.push({ ...layer, annotations: { [Annotation.title]: titles[position] as string } });
  }
  await store.push(EMPTY_DESCRIPTOR, new Blob([EMPTY_JSON_BYTES]).stream(), signal);

  const annotations: Record<string, string> = { ...options.annotations };
  if (options.created !== undefined && annotations[Annotation.created] === undefined) annotations[Annotation.created] = options.created;
  const bytes = encodeArtifactManifest({ artifactType: options.artifactType, layers, subject, annotations });
  const manifest: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256DigestOf(bytes), size: bytes.byteLength };
  await store.push(manifest, new Blob([bytes]).stream(), signal);

  const artifact: Descriptor = { ...manifest, artifactType: options.artifactType };
  if (Object.keys(annotations).length > 0) artifact.annotations = annotations;
  return { subject, artifact, layers };
}

/** One referrer of a subject and, for a manifest, its layers (their titles name the attached files). */
export interface Referrer {
  descriptor: Descriptor;
  /** Undefined for a referrer that is an index, or whose manifest the store no longer has. */
  layers?: Descriptor[];
}

/** What {@link discoverReferrers} found. */
export interface ReferrerListing {
  subject: Descriptor;
  referrers: Referrer[];
}

/**
 * Lists the referrers of the manifest or index `reference` names, as `oras discover` does, with
 * each referrer's layers. The store must be able to list referrers (registries and layouts can).
 */
export async function discoverReferrers(
  store: ReadableStore,
  reference: string,
  options: { artifactType?: string; signal?: AbortSignal } = {},
): Promise<ReferrerListing> {
  if (!isReferrerLister(store)) {
    throw new OcibootError("UNSUPPORTED", `Cannot list referrers in ${store.description}: the store cannot list them`);
  }
  const subject = await resolveSubject(store, reference, options.signal);
  const descriptors = await store.referrers(subject, options.artifactType);
  const referrers: Referrer[] = [];
  for (const descriptor of descriptors) referrers.push(await withLayers(store, descriptor, options.signal));
  return { subject, referrers };
}

/**
 * Resolves a reference to the plain descriptor of its manifest or index: read, verified and parsed,
 * so that a subject is never a blob and its media type is the document's own.
 */
export async function resolveSubject(store: ReadableStore, reference: string, signal?: AbortSignal): Promise<Descriptor> {
  const resolved = await store.resolve(reference);
  if (isDigest(reference) && resolved.digest !== reference) {
    throw new OcibootError("INTEGRITY", `Cannot resolve ${reference}: the store answered with ${resolved.digest}`);
  }
  const bytes = await readManifestBytes(store, resolved, signal);
  const parsed = parseManifest(bytes, resolved.mediaType);
  return { mediaType: parsed.mediaType, digest: resolved.digest, size: resolved.size };
}

async function withLayers(store: ReadableStore, descriptor: Descriptor, signal: AbortSignal | undefined): Promise<Referrer> {
  let bytes: Uint8Array;
  try {
    bytes = await readManifestBytes(store, descriptor, signal);
  } catch (error) {
    // The fallback tag of a registry may still list a referrer that was deleted since.
    if (isOcibootError(error, "NOT_FOUND")) return { descriptor };
    throw error;
  }
  const parsed = parseManifest(bytes, descriptor.mediaType);
  return parsed.kind === "manifest" ? { descriptor, layers: parsed.manifest.layers } : { descriptor };
}

async function storeFile(store: Store, path: string, mediaType: string, signal: { signal?: AbortSignal }): Promise<Descriptor> {
  if (isIngester(store)) return store.ingest(await openFile(path), mediaType, signal);
  const descriptor: Descriptor = { mediaType, ...(await hashFile(path, signal.signal)) };
  await store.push(descriptor, await openFile(path), signal);
  return descriptor;
}

async function hashFile(path: string, signal: AbortSignal | undefined): Promise<Pick<Descriptor, "digest" | "size">> {
  const hash = createHash("sha256");
  let size = 0;
  const reader = (await openFile(path)).getReader();
  try {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      size += value.byteLength;
    }
  } catch (error) {
    await reader.cancel().catch(() => undefined);
    throw error;
  } finally {
    reader.releaseLock();
  }
  return { digest: sha256Digest(hash.digest("hex")), size };
}

async function openFile(path: string): Promise<ReadableStream<Uint8Array>> {
  try {
    return await fileReadableStream(path);
  } catch (error) {
    const code = errorCode(error) === "ENOENT" ? "NOT_FOUND" : "LOCAL_IO";
    throw new OcibootError(code, `Cannot read ${path}: ${errorMessage(error)}`, { cause: error });
  }
}

