import { open, rename } from "node:fs/promises";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { isDigest } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { type ArchiveEntry, archiveLayoutIndex, ArchivePolicy, type ArchiveReadOptions, readOciArchive } from "./archive.ts";
import { type BlobPlace, type BlobPlacement, dropBlobs } from "./archive-placement.ts";
import { scanTar } from "./archive-tar.ts";
import { sniff } from "./decompress.ts";
import { readFileRange } from "./file-range.ts";
import { errorCode, errorMessage, readFully } from "./fs-util.ts";
import { referrersAmong } from "./index-referrers.ts";
import { passingThrough } from "./node-web-streams.ts";
import { type LayoutIndex, refNameOf, taggedEntry, withoutRefName } from "./layout-index.ts";
import type { FetchedContent, FetchOptions, ReadableStore, ReferrerLister, TagLister } from "./store.ts";
import { readVerified } from "./verify.ts";

/**
 * Small blobs of a compressed archive (manifests, configs, signatures) are kept in memory while
 * reading it, up to this much in all; past it they are placed like large blobs.
 */
const MAX_HELD_BYTES = 32 * 1024 * 1024;

/** Options for {@link openArchiveInPlace}. */
export interface ArchiveOpenOptions extends ArchiveReadOptions {
  /** Where the large blobs of a compressed archive go during its one pass (default: verified and dropped). */
  placement?: BlobPlacement;
  /**
   * Record a blob whose content does not match its name (and go on) instead of failing: for
   * verify, which reports each item. Reading that blob later fails with the recorded error.
   */
  keepCorrupt?: boolean;
  signal?: AbortSignal;
  /** The verb of messages about the archive as a whole (default `read`). */
  action?: "import" | "read";
  /** Name for messages (default `oci-archive:PATH`). */
  description?: string;
}

interface ArchiveBlob {
  descriptor: Descriptor;
  place: BlobPlace;
}

/**
 * Opens an OCI layout archive without extracting it (docs/archives.md, "Reading archives in
 * place"). A plain `.tar` is scanned by seeking and its blobs are later read by offset; a
 * compressed one is read in one streaming pass in which every blob is verified, small ones are
 * kept in memory and large ones go where `placement` puts them. Either way the archive passes
 * the same safety rules as import (links, traversal, duplicates, counts, truncation).
 */
export async function openArchiveInPlace(path: string, options: ArchiveOpenOptions = {}): Promise<ArchiveStore> {
  const { compression } = await sniff(path);
  const blobs = new Map<string, ArchiveBlob>();
  const metadata: { index?: Uint8Array; layout?: Uint8Array } = {};
  if (compression === "none") {
    await scanPlainTar(path, options, blobs, metadata);
  } else {
    await readCompressed(path, options, blobs, metadata);
  }
  const index = archiveLayoutIndex(path, metadata, options.action ?? "read");
  return new ArchiveStore(path, index, blobs, { description: options.description ?? `oci-archive:${path}`, readOptions: rereadOptionsOf(options) });
}

async function scanPlainTar(path: string, options: ArchiveOpenOptions, blobs: Map<string, ArchiveBlob>, metadata: { index?: Uint8Array; layout?: Uint8Array }): Promise<void> {
  const policy = new ArchivePolicy(path, options);
  const small: Array<{ kind: "index" | "layout"; offset: number; size: number }> = [];
  await scanTar(path, (entry) => {
    const accepted = policy.accept(entry);
    if (accepted.kind === "blob") {
      // As extracting the tar would, a later entry of the same name wins.
      blobs.set(accepted.descriptor.digest, { descriptor: accepted.descriptor, place: { kind: "range", offset: entry.offset } });
    } else if (accepted.kind !== "skip") {
      small.push({ kind: accepted.kind, offset: entry.offset, size: entry.size });
    }
  });
  for (const file of small) metadata[file.kind] = await readRange(path, file.offset, file.size);
}

async function readCompressed(path: string, options: ArchiveOpenOptions, blobs: Map<string, ArchiveBlob>, metadata: { index?: Uint8Array; layout?: Uint8Array }): Promise<void> {
  const placement = options.placement ?? dropBlobs();
  let held = 0;
  for await (const entry of readOciArchive(path, options)) {
    // Leaving the loop closes the archive (and its decoder).
    options.signal?.throwIfAborted();
    if (entry.kind !== "blob") {
      metadata[entry.kind] = entry.bytes;
      continue;
    }
    const { descriptor } = entry;
    if (blobs.has(descriptor.digest)) {
      // The same content twice: the reader still verifies this copy as it skips it.
      await entry.content.cancel();
      continue;
    }
    const small = descriptor.size <= Limits.manifestBytes && held + descriptor.size <= MAX_HELD_BYTES;
    if (small) held += descriptor.size;
    blobs.set(descriptor.digest, { descriptor, place: await placed(entry, small, placement, options) });
  }
}

async function placed(entry: Extract<ArchiveEntry, { kind: "blob" }>, small: boolean, placement: BlobPlacement, options: ArchiveOpenOptions): Promise<BlobPlace> {
  try {
    if (small) return { kind: "memory", bytes: await readVerified(entry.content, entry.descriptor, Limits.manifestBytes) };
    return await placement.place(entry.descriptor, entry.content, options.signal);
  } catch (error) {
    if (options.keepCorrupt !== true || !isOcibootError(error, "INTEGRITY")) throw error;
    return { kind: "corrupt", error };
  }
}

function rereadOptionsOf(options: ArchiveReadOptions): ArchiveReadOptions {
  const { maxBytes, maxRatio, xz, maxIndexBytes, maxEntries } = options;
  return {
    ...(maxBytes !== undefined ? { maxBytes } : {}),
    ...(maxRatio !== undefined ? { maxRatio } : {}),
    ...(xz !== undefined ? { xz } : {}),
    ...(maxIndexBytes !== undefined ? { maxIndexBytes } : {}),
    ...(maxEntries !== undefined ? { maxEntries } : {}),
  };
}

/** What the one pass over a compressed archive found out about a blob it did not keep. */
export type PassResult = { ok: true } | { ok: false; error: OcibootError };

/**
 * An OCI layout archive opened in place, as a read-only store: index.json and the blob list from
 * the scan or pass, each blob's bytes where {@link openArchiveInPlace} left them. Bytes handed out
 * by `fetch` are checked by the caller as from any store.
 */
export class ArchiveStore implements ReadableStore, TagLister, ReferrerLister {
  readonly path: string;
  readonly description: string;
  readonly #index: LayoutIndex;
  readonly #blobs: Map<string, ArchiveBlob>;
  readonly #readOptions: ArchiveReadOptions;

  constructor(path: string, index: LayoutIndex, blobs: Map<string, ArchiveBlob>, options: { description: string; readOptions: ArchiveReadOptions }) {
    this.path = path;
    this.description = options.description;
    this.#index = index;
    this.#blobs = blobs;
    this.#readOptions = options.readOptions;
  }

  /** The entries of the archive's index.json. */
  async entries(): Promise<Descriptor[]> {
    return [...this.#index.manifests];
  }

  /** The archive was checked to be a layout when it was opened. */
  async requireLayout(): Promise<void> {}

  /** Every blob in the archive, in the order of the tar. */
  async *blobs(): AsyncIterable<{ digest: string; size: number }> {
    for (const { descriptor } of this.#blobs.values()) yield { digest: descriptor.digest, size: descriptor.size };
  }

  async resolve(reference: string): Promise<Descriptor> {
    const at = reference.lastIndexOf("@");
    const digestPart = at >= 0 ? reference.slice(at + 1) : reference;
    const entries = this.#index.manifests;
    if (isDigest(digestPart)) {
      const listed = entries.find((entry) => entry.digest === digestPart);
      if (listed) return withoutRefName(listed);
      const blob = this.#blobs.get(digestPart);
      if (!blob) throw new OcibootError("NOT_FOUND", `Cannot resolve ${digestPart}: not in ${this.description}`);
      const bytes = await this.readBlob(blob.descriptor);
      return { mediaType: parseManifest(bytes).mediaType, digest: blob.descriptor.digest, size: blob.descriptor.size };
    }
    const named = taggedEntry(entries, reference, this.description);
    if (!named) throw new OcibootError("NOT_FOUND", `Cannot resolve ${reference}: no such tag in ${this.description}`);
    return named;
  }

  async fetch(descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchedContent> {
    const blob = this.#blobs.get(descriptor.digest);
    if (!blob || blob.descriptor.size !== descriptor.size) throw new OcibootError("NOT_FOUND", `Cannot fetch ${descriptor.digest}: not in ${this.description}`);
    const { place } = blob;
    const offset = options.offset !== undefined && options.offset > 0 && options.offset <= descriptor.size ? options.offset : 0;
    switch (place.kind) {
      case "memory":
        return { stream: new Blob([place.bytes.subarray(offset)]).stream(), offset };
      case "range":
        return { ...(await this.#file(this.path, place.offset + offset, descriptor.size - offset)), offset };
      case "file":
        return { ...(await this.#file(place.path, offset, descriptor.size - offset)), offset };
      case "store":
        return place.store.fetch(descriptor, options);
      case "corrupt":
        throw place.error;
      case "passed":
        return { stream: await this.#reread(descriptor), offset: 0 };
    }
  }

  async exists(descriptor: Descriptor): Promise<boolean> {
    const blob = this.#blobs.get(descriptor.digest);
    return blob !== undefined && blob.descriptor.size === descriptor.size && blob.place.kind !== "corrupt";
  }

  /** Reads a manifest, index or config whole, bounded and verified. */
  async readBlob(descriptor: Descriptor, maxBytes: number = Limits.manifestBytes): Promise<Uint8Array> {
    const { stream } = await this.fetch(descriptor);
    return readVerified(stream, descriptor, maxBytes);
  }

  async *tags(): AsyncIterable<string> {
    for (const entry of this.#index.manifests) {
      const name = refNameOf(entry);
      if (name !== undefined) yield name;
    }
  }

  async referrers(subject: Descriptor, artifactType?: string): Promise<Descriptor[]> {
    return referrersAmong(this.#index.manifests, subject, artifactType, {
      description: this.description,
      read: async (entry) => ((await this.exists(entry)) ? this.readBlob(entry) : undefined),
    });
  }

  /**
   * What the pass over a compressed archive found for a blob it verified and did not keep (or
   * found corrupt); undefined for a blob that is still to be read, or not in the archive.
   */
  checkedInPass(descriptor: Descriptor): PassResult | undefined {
    const blob = this.#blobs.get(descriptor.digest);
    if (!blob || blob.descriptor.size !== descriptor.size) return undefined;
    if (blob.place.kind === "corrupt") return { ok: false, error: blob.place.error };
    return blob.place.kind === "passed" ? { ok: true } : undefined;
  }

  /**
   * Moves the spooled file of a blob to `path` (on the same file system) instead of copying it:
   * fetch renames it to the role's `.partial` once the manifest is known. False when the blob is
   * not spooled, or the rename is not possible; the blob is then read as usual.
   */
  async lendFile(descriptor: Descriptor, path: string): Promise<boolean> {
    const blob = this.#blobs.get(descriptor.digest);
    if (!blob || blob.place.kind !== "file" || blob.descriptor.size !== descriptor.size) return false;
    try {
      await rename(blob.place.path, path);
    } catch {
      return false;
    }
    // Gone from the spool: asked for again (a second role with the same bytes), it is read from the archive.
    blob.place = { kind: "passed" };
    return true;
  }

  async #file(path: string, offset: number, length: number): Promise<FetchedContent> {
    try {
      return await readFileRange(path, offset, length);
    } catch (error) {
      const code = errorCode(error) === "ENOENT" ? "NOT_FOUND" : "LOCAL_IO";
      throw new OcibootError(code, `Cannot read ${this.description}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /**
   * A blob the pass verified and did not keep, read again: the archive is decompressed once more up
   * to that blob, whose content then streams (verified by the reader as it ends). Slow, but needs
   * no disk; only reads the pass could not foresee take this way (docs/archives.md).
   */
  async #reread(descriptor: Descriptor): Promise<ReadableStream<Uint8Array>> {
    const entries = readOciArchive(this.path, this.#readOptions);
    try {
      for (;;) {
        const next = await entries.next();
        if (next.done) throw new OcibootError("NOT_FOUND", `Cannot fetch ${descriptor.digest}: not in ${this.description}`);
        const entry = next.value;
        if (entry.kind !== "blob") continue;
        if (entry.descriptor.digest !== descriptor.digest) {
          await entry.content.cancel();
          continue;
        }
        return passingThrough(entry.content, { finally: () => entries.return(undefined) });
      }
    } catch (error) {
      await entries.return(undefined);
      throw error;
    }
  }
}

async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  const handle = await open(path, "r");
  try {
    const bytes = new Uint8Array(length);
    return bytes.subarray(0, await readFully(handle, bytes, offset));
  } finally {
    await handle.close();
  }
}

/** True for a store opened from an archive in place. */
export function isArchiveStore(store: object): store is ArchiveStore {
  return store instanceof ArchiveStore;
}
