import { createHash } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, unlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { type Digest, isDigest, parseDigest, sha256DigestOf, toDigest } from "../oci/digest.ts";
import { referrerDescriptorOf, subjectOf } from "../oci/artifact.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType, Limits } from "../oci/mediatypes.ts";
import {
  errorCode,
  errorMessage,
  fileReadableStream,
  readBoundedFile,
  syncDirectory,
  temporaryPath,
  writeFileAtomically,
} from "./fs-util.ts";
import {
  checkLayoutFile,
  emptyLayoutIndex,
  indexEntryOf,
  type LayoutIndex,
  OCI_LAYOUT_BYTES,
  parseLayoutIndex,
  refNameOf,
  serializeLayoutIndex,
  taggedEntry,
  withoutRefName,
  withTag,
  withUntaggedEntry,
} from "./layout-index.ts";
import { type BlobWriter, type BlobWriterOptions, openBlobWriter } from "./blob-writer.ts";
import { referrersAmong } from "./index-referrers.ts";
import { ingest, type IngestCheck } from "./ingest.ts";
import { withFileLock } from "./lock.ts";
import { ingestThroughPartial, type PartialIngestOptions } from "./partial-file.ts";
import type {
  FetchedContent,
  FetchOptions,
  Ingester,
  OpenAt,
  PushFromOptions,
  PushOptions,
  ReadableStore,
  ReferrerLister,
  ResumingWriter,
  TagLister,
  WritableStore,
} from "./store.ts";
import { checkFor, readVerified } from "./verify.ts";

/** index.json of a store with thousands of tags stays far below this. */
const MAX_INDEX_BYTES = 16 * 1024 * 1024;
/** ociboot's own bookkeeping inside a layout: lock file and temp files (same file system, so rename works). */
const PRIVATE_DIRECTORY = ".ociboot";
/**
 * Per-digest partial blob files (`partial-<alg>-<hex>`) and their locks (`….lock`), kept across runs
 * among the temporary files: a store tarred with one left behind still reads as a layout.
 */
const PARTIAL_PREFIX = "partial-";
/**
 * A second pull of a blob that another one is storing waits for it rather than fetching it twice:
 * as long as the holder lives (a dead holder's lock is broken at once, see lock.ts), or until Ctrl-C.
 */
const PARTIAL_LOCK_WAIT_MS = Number.POSITIVE_INFINITY;

/** One blob file found in the store. */
export interface StoredBlob {
  digest: Digest;
  size: number;
  modifiedMs: number;
}

/** A partial blob file a pull or copy left (see `OciLayoutStore.pushFrom`); `file` is false for a lock left alone. */
export interface StoredPartial extends StoredBlob {
  file: boolean;
}

/** Options for opening a layout. */
export interface LayoutStoreOptions {
  /** How long to wait for another process's lock on index.json (default 30 s). */
  lockTimeoutMs?: number;
  /** Name for messages (default `oci:ROOT`): an archive read into a temporary store is named by its file. */
  description?: string;
}

/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) as a content store.
 *
 * Reads any layout (onmetal-image, skopeo `oci:`, oras `--oci-layout`). Writes are crash-safe: blobs
 * land by temp file, verification, fsync and rename; index.json is replaced by rename under an
 * exclusive lock held across processes, so concurrent writers lose no update. A tag is an extra
 * index.json entry whose `org.opencontainers.image.ref.name` is the full reference, as onmetal-image writes it.
 * The directory is created on the first write; reading a missing store sees an empty one.
 * A manifest with a `subject` gets an untagged entry when pushed, as `oras attach --oci-layout`
 * writes it: that keeps it listed among the referrers of its subject and safe from `prune`.
 */
export class OciLayoutStore implements ReadableStore, WritableStore, TagLister, Ingester, ReferrerLister, ResumingWriter {
  readonly root: string;
  readonly description: string;
  readonly #lockTimeoutMs: number;

  constructor(root: string, options: LayoutStoreOptions = {}) {
    this.root = root;
    this.description = options.description ?? `oci:${root}`;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 30_000;
  }

  /** The path of a blob; the digest is validated first, so it can never name anything outside `blobs/`. */
  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, "blobs", algorithm, hex);
  }

  async resolve(reference: string): Promise<Descriptor> {
    const at = reference.lastIndexOf("@");
    const digestPart = at >= 0 ? reference.slice(at + 1) : reference;
    const entries = await this.entries();
    if (isDigest(digestPart)) {
      const listed = entries.find((entry) => entry.digest === digestPart);
      if (listed) return withoutRefName(listed);
      return this.#describeManifestBlob(digestPart);
    }
    const named = taggedEntry(entries, reference, this.description);
    if (!named) throw new OcibootError("NOT_FOUND", `Cannot resolve ${reference}: no such tag in ${this.description}`);
    return named;
  }

  /** The entry tagged `reference` in any spelling of the name (see {@link taggedEntry}), if any. */
  async findTagged(reference: string): Promise<Descriptor | undefined> {
    return taggedEntry(await this.entries(), reference, this.description);
  }

  async fetch(descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchedContent> {
    const path = this.blobPath(descriptor.digest);
    const offset = options.offset !== undefined && options.offset > 0 && options.offset <= descriptor.size ? options.offset : 0;
    try {
      return { stream: await fileReadableStream(path, offset), offset };
    } catch (error) {
      if (errorCode(error) === "ENOENT") {
        throw new OcibootError("NOT_FOUND", `Cannot fetch ${descriptor.digest}: not in ${this.description}`);
      }
      throw new OcibootError("LOCAL_IO", `Cannot fetch ${descriptor.digest} from ${this.description}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }

  /** True when the blob file exists with the declared size (a cheap guard against truncated files). */
  async exists(descriptor: Descriptor): Promise<boolean> {
    try {
      const info = await stat(this.blobPath(descriptor.digest));
      return info.isFile() && info.size === descriptor.size;
    } catch (error) {
      if (errorCode(error) === "ENOENT") return false;
      throw new OcibootError("LOCAL_IO", `Cannot check ${descriptor.digest} in ${this.description}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }

  /**
   * Stores a blob: written to a temp file while verified, then fsynced and renamed into place. A
   * manifest or index with a `subject` also gets an untagged index.json entry (see the class).
   */
  async push(descriptor: Descriptor, content: ReadableStream<Uint8Array>, options: PushOptions = {}): Promise<void> {
    const finalPath = this.blobPath(descriptor.digest);
    if (await this.#holds(descriptor)) {
      await content.cancel().catch(() => undefined);
    } else {
      const writing: WriteSettings = { expectedBytes: descriptor.size };
      if (options.chunks) writing.chunks = options.chunks;
      await this.#store(content, checkFor(content, descriptor), writing, options.signal, () => finalPath);
    }
    if (isManifestMediaType(descriptor.mediaType) || isIndexMediaType(descriptor.mediaType)) await this.#listIfReferrer(descriptor);
  }

  /**
   * Stores a blob through its own partial file, `.ociboot/tmp/partial-<alg>-<hex>`, which outlives a cut
   * and a killed process: the next call (this run's retry or the next run) hashes the bytes kept
   * there again and opens the source only from where they end (docs/ingest.md). A lock per digest,
   * held across processes, keeps two pulls of one blob from writing the same file: the second
   * waits, then finds the blob stored. Nothing reaches `blobs/` before size and digest match.
   */
  async pushFrom(descriptor: Descriptor, open: OpenAt, options: PushFromOptions = {}): Promise<void> {
    if (await this.#holds(descriptor)) {
      // A run killed between storing a blob and unlocking it left its lock (and no use for a partial file).
      if (await exists(`${this.#partialPath(descriptor.digest)}.lock`)) await this.removePartial(descriptor.digest, Number.POSITIVE_INFINITY);
    } else {
      await this.#ensureLayout();
      const partialPath = this.#partialPath(descriptor.digest);
      await withFileLock(
        `${partialPath}.lock`,
        async () => {
          // Another process may have stored it while this one waited for the lock.
          if (await this.#holds(descriptor)) return;
          const partialOptions: PartialIngestOptions = {};
          if (options.signal) partialOptions.signal = options.signal;
          const { onBytes } = options;
          if (onBytes) partialOptions.onProgress = ({ done }) => onBytes(done);
          await ingestThroughPartial(descriptor, partialPath, open, () => this.#commitTemporary(partialPath, this.blobPath(descriptor.digest)), partialOptions);
        },
        { timeoutMs: PARTIAL_LOCK_WAIT_MS, ...(options.signal ? { signal: options.signal } : {}) },
      );
    }
    if (isManifestMediaType(descriptor.mediaType) || isIndexMediaType(descriptor.mediaType)) await this.#listIfReferrer(descriptor);
  }

  /**
   * The partial files that runs left (see {@link pushFrom}), with their age; a lock left without
   * its partial file is listed too (size 0, the lock's age), so that `removePartial` can clear it.
   */
  async *partials(): AsyncIterable<StoredPartial> {
    const directory = this.#temporaryDirectory();
    const names = await readdir(directory).catch((error: unknown) => {
      if (errorCode(error) === "ENOENT") return [] as string[];
      throw new OcibootError("LOCAL_IO", `Cannot list ${directory}: ${errorMessage(error)}`, { cause: error });
    });
    const digests = new Set<Digest>();
    for (const name of names) {
      if (!name.startsWith(PARTIAL_PREFIX)) continue;
      const digest = name.slice(PARTIAL_PREFIX.length).replace(/\.lock$/, "").replace("-", ":");
      if (isDigest(digest) && (name === this.#partialName(digest) || name === `${this.#partialName(digest)}.lock`)) digests.add(digest);
    }
    for (const digest of digests) {
      const path = this.#partialPath(digest);
      const partial = await stat(path).catch(() => undefined);
      const info = partial ?? (await stat(`${path}.lock`).catch(() => undefined));
      if (info?.isFile()) yield { digest, size: partial?.size ?? 0, modifiedMs: info.mtimeMs, file: partial !== undefined };
    }
  }

  /**
   * Removes the partial file of `digest` unless a live process is writing it (its lock is held) or
   * it was written to after `modifiedBeforeMs`. True when it is gone. A lock whose holder died is
   * cleared on the way, partial file or not.
   */
  async removePartial(digest: string, modifiedBeforeMs: number): Promise<boolean> {
    const partialPath = this.#partialPath(digest);
    try {
      return await withFileLock(
        `${partialPath}.lock`,
        async () => {
          const info = await stat(partialPath).catch(() => undefined);
          if (info === undefined || info.mtimeMs >= modifiedBeforeMs) return false;
          await rm(partialPath, { force: true });
          return true;
        },
        { timeoutMs: 0 },
      );
    } catch (error) {
      if (error instanceof OcibootError && error.code === "LOCKED") return false;
      throw error;
    }
  }

  /**
   * Removes what killed runs left among the temporary files besides partial files and their locks
   * (see {@link partials}): blob and index.json temporaries, and a lock's scratch copy from a
   * process killed while taking the lock. Each name is unique to the process that made it, and a
   * live one keeps writing its file, so only those untouched since `modifiedBeforeMs` go. Returns
   * their number.
   */
  async removeStaleTemporaries(modifiedBeforeMs: number): Promise<number> {
    const directory = this.#temporaryDirectory();
    const names = await readdir(directory).catch(() => [] as string[]);
    let removed = 0;
    for (const name of names) {
      const isPartialOrLock = name.startsWith(PARTIAL_PREFIX) && (!name.includes(".lock.") || !name.endsWith(".new"));
      if (isPartialOrLock) continue;
      const path = join(directory, name);
      const info = await stat(path).catch(() => undefined);
      if (!info?.isFile() || info.mtimeMs >= modifiedBeforeMs) continue;
      await rm(path, { force: true });
      removed++;
    }
    return removed;
  }

  /** True when the blob is stored; its fresh mtime then tells a concurrent `prune` that it is about to be referenced. */
  async #holds(descriptor: Descriptor): Promise<boolean> {
    if (!(await this.exists(descriptor))) return false;
    const now = new Date();
    await utimes(this.blobPath(descriptor.digest), now, now).catch(() => undefined);
    return true;
  }

  #partialName(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return `${PARTIAL_PREFIX}${algorithm}-${hex}`;
  }

  #partialPath(digest: string): string {
    return join(this.#temporaryDirectory(), this.#partialName(digest));
  }

  /**
   * Stores content whose digest is not known in advance (a file being built into an image): hashed
   * while written, in one pass, then renamed to the name its digest gives.
   */
  async ingest(content: ReadableStream<Uint8Array>, mediaType: string, options: { signal?: AbortSignal } = {}): Promise<Descriptor> {
    const hash = createHash("sha256");
    let size = 0;
    let digest: Digest | undefined;
    const counting: IngestCheck = {
      update: (chunk) => {
        hash.update(chunk);
        size += chunk.byteLength;
      },
      finish: () => {
        digest = toDigest(`sha256:${hash.digest("hex")}`);
      },
    };
    await this.#store(content, counting, {}, options.signal, () => this.blobPath(digest as Digest));
    return { mediaType, digest: digest as Digest, size };
  }

  /** Stores small bytes (a manifest or config) and returns their descriptor. */
  async ingestBytes(bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
    const digest = sha256DigestOf(bytes);
    const descriptor: Descriptor = { mediaType, digest, size: bytes.byteLength };
    await this.push(descriptor, new Blob([bytes]).stream());
    return descriptor;
  }

  /** Points the full reference at a manifest or index, replacing whatever it named before. */
  async tag(descriptor: Descriptor, reference: string): Promise<void> {
    checkRefName(reference);
    if (!(await this.exists(descriptor))) {
      throw new OcibootError("NOT_FOUND", `Cannot tag ${descriptor.digest} as ${reference}: the manifest is not in ${this.description}`);
    }
    await this.updateIndex((entries) => withTag(entries, indexEntryOf(descriptor), reference));
  }

  /**
   * Manifests and indexes listed in index.json whose `subject` is `subject`, as referrer
   * descriptors (`artifactType`, annotations); filtered by `artifactType` when given. Each entry's
   * manifest is read, bounded and verified; entries whose blob is missing are skipped.
   */
  async referrers(subject: Descriptor, artifactType?: string): Promise<Descriptor[]> {
    return referrersAmong(await this.entries(), subject, artifactType, {
      description: this.description,
      read: async (entry) => ((await this.exists(entry)) ? this.readBlob(entry) : undefined),
    });
  }

  /**
   * Adds an untagged index.json entry for a manifest unless one exists already, so that pushing or
   * building the same content again never duplicates entries (onmetal-image appended one each time).
   */
  async addUntaggedEntry(entry: Descriptor): Promise<void> {
    await this.updateIndex((entries) => withUntaggedEntry(entries, entry));
  }

  async *tags(): AsyncIterable<string> {
    for (const entry of await this.entries()) {
      const name = refNameOf(entry);
      if (name !== undefined) yield name;
    }
  }

  /** The entries of index.json (tagged and untagged), validated; none when the store does not exist yet. */
  async entries(): Promise<Descriptor[]> {
    return (await this.#readIndex()).manifests;
  }

  /**
   * Read-modify-write of index.json under the store's exclusive lock: `change` gets the current
   * entries and returns the new ones. Returns what was written. `signal` ends the wait for the lock.
   */
  async updateIndex(change: (entries: Descriptor[]) => Descriptor[] | Promise<Descriptor[]>, options: { signal?: AbortSignal } = {}): Promise<Descriptor[]> {
    await this.#ensureLayout();
    return withFileLock(
      join(this.root, PRIVATE_DIRECTORY, "index.lock"),
      async () => {
        const index = await this.#readIndex();
        const manifests = await change([...index.manifests]);
        await writeFileAtomically(
          join(this.root, "index.json"),
          serializeLayoutIndex({ fields: index.fields, manifests }),
          this.#temporaryDirectory(),
        );
        return manifests;
      },
      { timeoutMs: this.#lockTimeoutMs, ...(options.signal === undefined ? {} : { signal: options.signal }) },
    );
  }

  /** Runs `action` under the index lock without changing index.json (for garbage collection). */
  async withIndexLock<T>(action: (entries: Descriptor[]) => Promise<T>): Promise<T> {
    await this.#ensureLayout();
    return withFileLock(join(this.root, PRIVATE_DIRECTORY, "index.lock"), async () => action(await this.entries()), {
      timeoutMs: this.#lockTimeoutMs,
    });
  }

  /** Every blob file with a valid digest name; anything else under `blobs/` is ignored. */
  async *blobs(): AsyncIterable<StoredBlob> {
    for (const algorithm of ["sha256", "sha512"]) {
      const directory = join(this.root, "blobs", algorithm);
      let names: string[];
      try {
        names = await readdir(directory);
      } catch (error) {
        if (errorCode(error) === "ENOENT") continue;
        throw new OcibootError("LOCAL_IO", `Cannot list ${directory}: ${errorMessage(error)}`, { cause: error });
      }
      for (const name of names) {
        const digest = `${algorithm}:${name}`;
        if (!isDigest(digest)) continue;
        const info = await stat(join(directory, name)).catch(() => undefined);
        if (info?.isFile()) yield { digest, size: info.size, modifiedMs: info.mtimeMs };
      }
    }
  }

  /** Removes a blob file; a missing one is fine. */
  async deleteBlob(digest: string): Promise<void> {
    await unlink(this.blobPath(digest)).catch((error: unknown) => {
      if (errorCode(error) !== "ENOENT") {
        throw new OcibootError("LOCAL_IO", `Cannot delete ${digest} from ${this.description}: ${errorMessage(error)}`, { cause: error });
      }
    });
  }

  /** Reads a manifest, index or config blob whole, bounded and verified. */
  async readBlob(descriptor: Descriptor, maxBytes: number = Limits.manifestBytes): Promise<Uint8Array> {
    const { stream } = await this.fetch(descriptor);
    return readVerified(stream, descriptor, maxBytes);
  }

  async #listIfReferrer(descriptor: Descriptor): Promise<void> {
    const parsed = parseManifest(await this.readBlob(descriptor), descriptor.mediaType);
    if (subjectOf(parsed) === undefined) return;
    // The entry carries the manifest's annotations, as oras writes it; a ref name among them would make it a tag.
    await this.addUntaggedEntry(withoutRefName(referrerDescriptorOf(descriptor, parsed)));
  }

  async #describeManifestBlob(digest: Digest): Promise<Descriptor> {
    const path = this.blobPath(digest);
    const bytes = await readBoundedFile(path, Limits.manifestBytes);
    if (!bytes) throw new OcibootError("NOT_FOUND", `Cannot resolve ${digest}: not in ${this.description}`);
    // The bytes are named by their digest; check them before trusting what they say they are.
    const verified = await readVerified(new Blob([bytes]).stream(), { mediaType: "application/octet-stream", digest, size: bytes.byteLength }, Limits.manifestBytes);
    return { mediaType: parseManifest(verified).mediaType, digest, size: bytes.byteLength };
  }

  /**
   * Checks that the store exists and is a layout ociboot can read, for readers that name it
   * explicitly (`oci:DIR`): a missing directory or one without `oci-layout` and `index.json` is
   * NOT_FOUND; a bad `oci-layout` fails as {@link checkLayoutFile} says.
   */
  async requireLayout(): Promise<void> {
    const info = await stat(this.root).catch((error: unknown) => {
      if (errorCode(error) === "ENOENT") return undefined;
      throw new OcibootError("LOCAL_IO", `Cannot open ${this.description}: ${errorMessage(error)}`, { cause: error });
    });
    if (!info) throw new OcibootError("NOT_FOUND", `Cannot open ${this.description}: no such directory`);
    if (!info.isDirectory()) throw new OcibootError("NOT_FOUND", `Cannot open ${this.description}: not a directory`);
    const present = await this.#readLayoutFiles();
    if (!present) {
      throw new OcibootError("NOT_FOUND", `Cannot open ${this.description}: not an OCI image layout (no oci-layout, no index.json)`);
    }
  }

  async #readIndex(): Promise<LayoutIndex> {
    return (await this.#readLayoutFiles()) ?? emptyLayoutIndex();
  }

  /**
   * index.json, after the layout's `oci-layout` passed its check; undefined when neither file exists
   * (a store not yet created reads as empty, and is created on the first write).
   */
  async #readLayoutFiles(): Promise<LayoutIndex | undefined> {
    const indexPath = join(this.root, "index.json");
    const layoutPath = join(this.root, "oci-layout");
    const [indexBytes, layoutBytes] = await Promise.all([readBoundedFile(indexPath, MAX_INDEX_BYTES), readBoundedFile(layoutPath, 4096)]);
    if (!indexBytes && !layoutBytes) return undefined;
    checkLayoutFile(layoutBytes, layoutPath);
    return indexBytes ? parseLayoutIndex(indexBytes, indexPath) : emptyLayoutIndex();
  }

  /** Creates the layout on first write; refuses a directory that holds something else. */
  async #ensureLayout(): Promise<void> {
    const layoutPath = join(this.root, "oci-layout");
    const existing = await readBoundedFile(layoutPath, 4096);
    if (existing) {
      checkLayoutFile(existing, layoutPath);
    } else {
      const names = await readdir(this.root).catch((error: unknown) => {
        if (errorCode(error) === "ENOENT") return [] as string[];
        throw new OcibootError("LOCAL_IO", `Cannot open store ${this.root}: ${errorMessage(error)}`, { cause: error });
      });
      // oci-layout may appear meanwhile: another writer in this or another process is creating the store too.
      const foreign = names.filter((name) => !["oci-layout", "index.json", "blobs", "ingest", PRIVATE_DIRECTORY].includes(name));
      if (foreign.length > 0) {
        throw new OcibootError("LOCAL_IO", `Cannot use ${this.root} as a store: it is not an OCI image layout and not empty`);
      }
      await mkdir(join(this.root, PRIVATE_DIRECTORY), { recursive: true });
      await writeFileAtomically(layoutPath, OCI_LAYOUT_BYTES, this.#temporaryDirectory());
    }
    await mkdir(join(this.root, "blobs", "sha256"), { recursive: true });
    await mkdir(this.#temporaryDirectory(), { recursive: true });
  }

  #temporaryDirectory(): string {
    return join(this.root, PRIVATE_DIRECTORY, "tmp");
  }

  /**
   * Streams content into a new temp file through the one ingest path (content/ingest.ts; large
   * blobs by direct I/O, see blob-writer.ts), then fsyncs it and renames it to `finalPath()`.
   */
  async #store(
    content: ReadableStream<Uint8Array>,
    check: IngestCheck,
    writing: WriteSettings,
    signal: AbortSignal | undefined,
    finalPath: () => string,
  ): Promise<void> {
    await this.#ensureLayout();
    const temporary = temporaryPath(this.#temporaryDirectory(), "blob");
    let writer: BlobWriter;
    try {
      writer = await openBlobWriter(temporary, { ...writing, start: 0, exclusive: true });
    } catch (error) {
      await content.cancel(error).catch(() => undefined);
      if (error instanceof OcibootError) throw error;
      throw new OcibootError("LOCAL_IO", `Cannot write a blob into ${this.description}: ${errorMessage(error)}`, { cause: error });
    }
    await ingest(
      content,
      check,
      {
        write: (chunk) => writer.add(chunk),
        commit: async () => {
          await writer.finish();
          await writer.close();
          await this.#commitTemporary(temporary, finalPath());
        },
        abort: async () => {
          await writer.close();
          await unlink(temporary).catch(() => undefined);
        },
      },
      { where: this.description, ...(signal ? { signal } : {}) },
    );
  }

  async #commitTemporary(temporary: string, finalPath: string): Promise<void> {
    try {
      await mkdir(join(finalPath, ".."), { recursive: true });
      await rename(temporary, finalPath);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw new OcibootError("LOCAL_IO", `Cannot store ${finalPath}: ${errorMessage(error)}`, { cause: error });
    }
    await syncDirectory(join(finalPath, ".."));
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

function checkRefName(reference: string): void {
  // The name ends up in JSON only, never in a path; still refuse what no tool could match later.
  if (reference.length === 0 || reference.length > 1024 || /[\s\u0000-\u001f\u007f]/.test(reference)) {
    throw new OcibootError("INVALID_REFERENCE", `Cannot tag as "${reference.slice(0, 80)}": not a usable reference name`);
  }
}

/** What a blob writer is told about content to store: its size when known, and its chunks' memory. */
type WriteSettings = Pick<BlobWriterOptions, "expectedBytes" | "chunks">;
