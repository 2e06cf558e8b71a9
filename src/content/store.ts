import type { RetryChain } from "../retry.ts";
import type { Descriptor } from "../oci/descriptor.ts";

/**
 * The small interface every content store implements (registry repository, OCI layout directory,
 * archive, memory). Operations such as copy, fetch and verify are written only against it.
 * Bytes returned by `fetch` are unverified: callers pass them through `verifyContent`.
 */
export interface ReadableStore {
  /** Human-readable name for messages, such as `registry 127.0.0.1:5000/boot` or `oci:./store`. */
  readonly description: string;
  /** Resolves a tag or a digest to the descriptor of a manifest or index. */
  resolve(reference: string): Promise<Descriptor>;
  /** Opens the content named by a descriptor, optionally from a byte offset. */
  fetch(descriptor: Descriptor, options?: FetchOptions): Promise<FetchedContent>;
  /** Tells whether the store holds the content named by a descriptor. */
  exists(descriptor: Descriptor): Promise<boolean>;
}

export interface FetchOptions {
  /** Ask for the content from this byte offset; the store may ignore it (see `FetchedContent.offset`). */
  offset?: number;
  signal?: AbortSignal;
  /** The request chain the fetch belongs to: a store that retries shares its attempts (src/retry.ts). */
  retryChain?: RetryChain;
}

/** What a source says about the memory of the chunks it hands out. */
export interface ChunkMemory {
  /**
   * Present when chunks come from pooled memory (large registry blobs): a consumer that is done
   * with a chunk may give it back for reuse, and must not read it afterwards.
   */
  release?(chunk: Uint8Array): void;
  /**
   * Present when every chunk but the last starts on a memory boundary of this many bytes and is
   * a multiple of it long: a consumer may write such chunks with direct I/O as they are.
   */
  alignment?: number;
}

export interface FetchedContent extends ChunkMemory {
  /** Unverified bytes, starting at `offset`. */
  stream: ReadableStream<Uint8Array>;
  /** Where `stream` starts: the requested offset when honoured exactly, else 0. */
  offset: number;
}

export interface PushOptions {
  signal?: AbortSignal;
  /** The chunks' memory, as the FetchedContent the stream came from describes it. */
  chunks?: ChunkMemory;
}

export interface WritableStore {
  readonly description: string;
  /** Stores content; the store verifies size and digest before the content becomes visible. */
  push(descriptor: Descriptor, content: ReadableStream<Uint8Array>, options?: PushOptions): Promise<void>;
  /** Points a tag (or full reference, for layout stores) at a manifest or index descriptor. */
  tag(descriptor: Descriptor, reference: string): Promise<void>;
  exists(descriptor: Descriptor): Promise<boolean>;
}

/** Optional power: listing tags. */
export interface TagLister {
  tags(): AsyncIterable<string>;
}

/** How any HTTP client (curl, a boot loader) can fetch content itself: a URL and its headers. */
export interface DirectRequest {
  url: string;
  /** Header values by name, as onmetal-image prints them (`Authorization`, `Accept`). */
  headers: Record<string, string[]>;
}

/** Optional power: handing out a {@link DirectRequest} for a manifest (by tag or digest) or a blob. */
export interface DirectRequester {
  directRequest(target: string | Descriptor, options?: { signal?: AbortSignal }): Promise<DirectRequest>;
}

/** Optional power: listing referrers of a subject (OCI 1.1). */
export interface ReferrerLister {
  referrers(subject: Descriptor, artifactType?: string): Promise<Descriptor[]>;
}

/**
 * Optional power: storing content whose digest is not known in advance, hashed while it is
 * written (one pass over the source), and named by that digest once complete.
 */
export interface Ingester {
  ingest(content: ReadableStream<Uint8Array>, mediaType: string, options?: { signal?: AbortSignal }): Promise<Descriptor>;
}

/**
 * Optional power: handing over a blob's verified file by rename instead of a copy — an archive read
 * in place spools large blobs into the destination folder (docs/archives.md). The receiver checks
 * the file again; false means the blob is to be fetched as usual.
 */
export interface FileLender {
  lendFile(descriptor: Descriptor, path: string): Promise<boolean>;
}

/** Opens a blob's content from a byte offset; the source may answer from 0 instead (`FetchedContent.offset`). */
export type OpenAt = (offset: number) => Promise<FetchedContent>;

/**
 * Optional power: storing a blob that the store opens itself, from the byte its own partial copy
 * reached, so that a copy cut by an error or a killed process continues from the bytes the store
 * kept (a layout's per-digest partial files) instead of starting over.
 */
export interface ResumingWriter {
  pushFrom(descriptor: Descriptor, open: OpenAt, options?: PushFromOptions): Promise<void>;
}

export interface PushFromOptions {
  signal?: AbortSignal;
  /** Bytes of the blob in place so far: from the kept prefix on, from 0 again when the blob starts over. */
  onBytes?: (done: number) => void;
}

/**
 * Optional power: a manifest or index whose bytes the store already checked against the digest when
 * they arrived (a registry hashes a manifest to learn its digest), handed out without a second hash.
 */
export interface VerifiedManifestReader {
  /** The exact bytes of `descriptor`; INTEGRITY when they do not match its digest or size. */
  readVerifiedManifest(descriptor: Descriptor, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
}

export type Store = ReadableStore & WritableStore;

/** A store has an optional power when it has the power's method (the interfaces above). */
function hasMethod<Power extends object>(method: keyof Power & string) {
  return (store: object): store is Power => typeof (store as Record<string, unknown>)[method] === "function";
}

export const isTagLister = hasMethod<TagLister>("tags");
export const isDirectRequester = hasMethod<DirectRequester>("directRequest");
export const isReferrerLister = hasMethod<ReferrerLister>("referrers");
export const isFileLender = hasMethod<FileLender>("lendFile");
export const isResumingWriter = hasMethod<ResumingWriter>("pushFrom");
export const isVerifiedManifestReader = hasMethod<VerifiedManifestReader>("readVerifiedManifest");
export const isIngester = hasMethod<Ingester>("ingest");

/** True for a store that can also be written (a registry repository or a layout; not an archive being read). */
export function isWritableStore(store: object): store is WritableStore {
  return typeof (store as Partial<WritableStore>).push === "function" && typeof (store as Partial<WritableStore>).tag === "function";
}
