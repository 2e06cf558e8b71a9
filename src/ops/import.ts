import { archiveLayoutIndex, type ArchiveReadOptions, readOciArchive } from "../content/archive.ts";
import { stat } from "node:fs/promises";
import { openArchiveInPlace } from "../content/archive-store.ts";
import { countingStage } from "../content/counting.ts";
import { sniff } from "../content/decompress.ts";
import { mergeIndexEntries } from "../content/layout-index.ts";
import type { OciLayoutStore } from "../content/layout.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { toDigest } from "../oci/digest.ts";
import { walkGraph } from "./graph-walk.ts";
import { runBounded } from "./pool.ts";

/** What {@link importArchive} brought into the store. */
export interface ImportResult {
  /** The archive's index.json entries, now in the store's index.json (tags replace tags of the same name). */
  images: Descriptor[];
  /** Blobs read from the archive (each verified), and their bytes. */
  blobs: number;
  bytes: number;
}

/** Options for {@link importArchive}. */
export interface ImportOptions extends ArchiveReadOptions {
  signal?: AbortSignal;
}

/**
 * Imports an OCI layout archive (the Garden Linux `<name>.oci.tar.xz` with its `onmetal/` folder,
 * or any `.tar`, `.tar.gz`, `.tar.xz` layout) into the store in one streaming pass: each blob is
 * verified on its way into the store, then every manifest the archive's index.json names is
 * checked to be complete before its entries are added. A failure leaves index.json untouched.
 */
export async function importArchive(store: OciLayoutStore, archivePath: string, options: ImportOptions = {}): Promise<ImportResult> {
  const { signal } = options;
  const { compression } = await sniff(archivePath);
  // A plain tar is read by offset (docs/archives.md, "Reading archives in place"); a compressed one in one pass.
  const read = compression === "none" ? await storeByOffset(store, archivePath, options) : await storeInOnePass(store, archivePath, options);
  if (read.manifests.length === 0) throw new OcibootError("NOT_FOUND", `Cannot import ${archivePath}: its index.json lists no image`);
  await checkComplete(store, read.manifests, archivePath);
  await store.updateIndex((entries) => mergeIndexEntries(entries, read.manifests), signal === undefined ? {} : { signal });
  return { images: read.manifests, blobs: read.blobs, bytes: read.bytes };
}

interface ArchiveRead {
  /** The archive's index.json entries. */
  manifests: Descriptor[];
  blobs: number;
  bytes: number;
}

async function storeInOnePass(store: OciLayoutStore, archivePath: string, options: ImportOptions): Promise<ArchiveRead> {
  const { signal } = options;
  let indexBytes: Uint8Array | undefined;
  let layoutBytes: Uint8Array | undefined;
  let blobs = 0;
  let bytes = 0;
  for await (const entry of readOciArchive(archivePath, options)) {
    // Leaving the loop closes the archive (and its xz); blobs already stored stay for the next try.
    signal?.throwIfAborted();
    if (entry.kind === "blob") {
      await store.push(entry.descriptor, entry.content, signal === undefined ? {} : { signal });
      blobs++;
      bytes += entry.descriptor.size;
    } else if (entry.kind === "index") {
      indexBytes = entry.bytes;
    } else {
      layoutBytes = entry.bytes;
    }
  }
  return { manifests: archiveLayoutIndex(archivePath, { layout: layoutBytes, index: indexBytes }, "import").manifests, blobs, bytes };
}

/**
 * Blobs of a plain tar stored at once. Each is read from its own offset, so a second keeps the
 * main thread hashing while the first waits for its final sync and rename (docs/archives.md).
 */
const BLOBS_AT_ONCE = 2;

/**
 * The tar's headers are scanned (under the same rules as the one pass), then each blob is read
 * from its offset in pooled blocks, verified by the store as it is written, the blocks reused.
 * The largest go first, so that the small ones' syncs overlap its hashing.
 */
async function storeByOffset(store: OciLayoutStore, archivePath: string, options: ImportOptions): Promise<ArchiveRead> {
  const { signal, onRead } = options;
  const archive = await openArchiveInPlace(archivePath, { ...options, action: "import" });
  const total = onRead === undefined ? 0 : (await stat(archivePath)).size;
  const listed: Descriptor[] = [];
  for await (const { digest, size } of archive.blobs()) listed.push({ mediaType: "application/octet-stream", digest: toDigest(digest), size });
  listed.sort((a, b) => b.size - a.size);
  let read = 0;
  const counting = (stream: ReadableStream<Uint8Array>) => {
    if (onRead === undefined) return stream;
    let seen = 0;
    return stream.pipeThrough(
      countingStage((done) => {
        read += done - seen;
        seen = done;
        onRead(read, total);
      }),
    );
  };
  await runBounded(listed, BLOBS_AT_ONCE, async (descriptor) => {
    signal?.throwIfAborted();
    const content = await archive.fetch(descriptor);
    await store.push(descriptor, counting(content.stream), signal === undefined ? { chunks: content } : { signal, chunks: content });
  });
  onRead?.(total, total);
  return { manifests: await archive.entries(), blobs: listed.length, bytes: listed.reduce((sum, blob) => sum + blob.size, 0) };
}

/** Every blob a manifest or index reaches (its subject too) must now be in the store. */
async function checkComplete(store: OciLayoutStore, roots: readonly Descriptor[], archivePath: string): Promise<void> {
  const lacks = (descriptor: Descriptor) =>
    new OcibootError("INTEGRITY", `Cannot import ${archivePath}: it lacks ${descriptor.digest} (${descriptor.size} bytes) that its index names`);
  await walkGraph(store, roots, {
    action: `import ${archivePath}`,
    enter: async (node) => {
      for (const blob of node.blobs) if (!(await store.exists(blob))) throw lacks(blob);
    },
    unreadable: (descriptor, error) => {
      if (isOcibootError(error, "NOT_FOUND")) throw lacks(descriptor);
      return false;
    },
  });
}
