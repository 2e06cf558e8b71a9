import { createReadStream } from "node:fs";
import { open, rm, stat, type FileHandle } from "node:fs/promises";
import { commitFile, errorCode, errorMessage } from "../content/fs-util.ts";
import type { FetchedContent, ReadableStore } from "../content/store.ts";
import { ContentVerifier } from "../content/verify.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";

export type DownloadStatus = "existing" | "downloaded" | "resumed";

export interface DownloadResult {
  status: DownloadStatus;
  /** Bytes that came from the store in this run (less than the size when resumed or existing). */
  transferred: number;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /** Attempts for a blob whose transfer breaks off; each continues from what reached the disk. */
  attempts?: number;
  /** Called with each number of bytes that became known-good or arrived: for progress display. */
  onProgress?: (event: { done: number; total: number }) => void;
}

/**
 * Writes are batched to this size: few large syscalls instead of one per network chunk, yet small
 * enough that the bytes are still in the CPU cache when written (4 MiB measured ~0.3 s per GiB slower).
 */
const WRITE_BATCH_BYTES = 2 * 1024 * 1024;
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * Downloads one blob to `finalPath`, verifying size and digest while streaming. Bytes land in
 * `<finalPath>.partial` and are renamed only once verified and synced; an existing final file is
 * re-verified and kept when it matches; a partial file left by an interrupted run is resumed with
 * a ranged request. A resumed prefix is only trusted by the final digest: on a mismatch the blob
 * is fetched once more from the start.
 */
export async function downloadBlob(
  store: ReadableStore,
  descriptor: Descriptor,
  finalPath: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  if (await fileMatches(finalPath, descriptor, options.signal)) {
    options.onProgress?.({ done: descriptor.size, total: descriptor.size });
    return { status: "existing", transferred: 0 };
  }
  const partialPath = `${finalPath}.partial`;
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  let allowResume = true;
  for (let attempt = 1; ; attempt++) {
    try {
      return await downloadToPartial(store, descriptor, partialPath, finalPath, options, allowResume);
    } catch (error) {
      if (attempt >= attempts) throw error;
      if (isOcibootError(error, "INTEGRITY") && error.details?.["resumed"] === true) {
        await rm(partialPath, { force: true });
        allowResume = false;
      } else if (!isOcibootError(error, "NETWORK") && !isOcibootError(error, "TIMEOUT")) {
        throw error;
      }
    }
  }
}

/** A connection cut mid-blob is worth a few more tries: each resumes where the disk left off. */
const DEFAULT_ATTEMPTS = 4;

async function downloadToPartial(
  store: ReadableStore,
  descriptor: Descriptor,
  partialPath: string,
  finalPath: string,
  options: DownloadOptions,
  allowResume: boolean,
): Promise<DownloadResult> {
  const { verifier, prefix } = allowResume
    ? await verifierForPrefix(partialPath, descriptor, options.signal)
    : { verifier: new ContentVerifier(descriptor), prefix: 0 };
  options.onProgress?.({ done: prefix, total: descriptor.size });

  let handle: FileHandle;
  try {
    handle = await open(partialPath, prefix > 0 ? "r+" : "w", 0o644);
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot create ${partialPath}: ${errorMessage(error)}`, { cause: error });
  }
  let transferred = 0;
  let resumedFrom = 0;
  try {
    let active = verifier;
    let position = prefix;
    if (prefix < descriptor.size) {
      const fetchOptions = prefix > 0 ? { offset: prefix } : {};
      const content = await store.fetch(descriptor, options.signal ? { ...fetchOptions, signal: options.signal } : fetchOptions);
      if (content.offset !== prefix) {
        // The source could not honour the range: start this blob over rather than splice.
        active = new ContentVerifier(descriptor);
        position = 0;
        await handle.truncate(0);
        options.onProgress?.({ done: 0, total: descriptor.size });
      }
      resumedFrom = position;
      const start = position;
      position = await streamToFile(content, handle, position, active, (written) => {
        options.onProgress?.({ done: written, total: descriptor.size });
      }, options.signal);
      transferred = position - start;
    }
    await handle.truncate(position);
    try {
      active.finish();
    } catch (error) {
      // Marked so that the caller fetches the blob once more from the start, trusting no prefix.
      if (isOcibootError(error) && resumedFrom > 0) {
        throw new OcibootError(error.code, error.message, { cause: error, details: { ...error.details, resumed: true } });
      }
      throw error;
    }
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    if (isOcibootError(error, "INTEGRITY")) await rm(partialPath, { force: true });
    throw error;
  }
  await handle.close();
  await commitFile(partialPath, finalPath);
  return { status: resumedFrom > 0 ? "resumed" : "downloaded", transferred };
}

/** Received but not yet written (or hashed) bytes before reading waits: bounds memory. */
const MAX_HELD_BYTES = 2 * 1024 * 1024;
/**
 * Written bytes are flushed to the disk in the background every so often, so that the final
 * fsync (which must come before the rename) waits for the last stretch, not for the whole blob
 * (~0.3 s per GiB here; measured 1.55 s → 1.35 s per GiB).
 */
const BACKGROUND_SYNC_BYTES = 128 * 1024 * 1024;

/** Chunks flushed in one write; their memory is free again once it is written. */
interface HeldBatch {
  bytes: number;
  settled: Promise<void>;
}

/**
 * Streams chunks into the file: each chunk is counted and hashed as it arrives, writes go out in
 * large batches, one after the other, while reading and hashing go on; a bounded amount of data
 * is in flight. Chunks of pooled memory are released once written.
 *
 * Hashing stays on this thread: a worker thread for it was measured (1 GiB: 1.48 s vs 1.46 s;
 * 4 GiB: 8.6 s vs 6.7 s) and only added CPU time and ~10 MB of memory, once chunks come in
 * large blocks (bulk registry reads).
 */
async function streamToFile(
  content: FetchedContent,
  handle: FileHandle,
  startPosition: number,
  verifier: ContentVerifier,
  onWritten: (position: number) => void,
  signal: AbortSignal | undefined,
): Promise<number> {
  const { stream } = content;
  const release = content.release;
  let position = startPosition;
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let writing: Promise<void> = Promise.resolve();
  const held: HeldBatch[] = [];
  let heldBytes = 0;
  let syncing: Promise<void> | undefined;
  let syncedUpTo = startPosition;

  const syncInBackground = (writtenUpTo: number) => {
    if (syncing !== undefined || writtenUpTo - syncedUpTo < BACKGROUND_SYNC_BYTES) return;
    // A failed sync stays in `syncing`: no further ones start, and the failure surfaces at the end.
    syncing = handle.datasync().then(() => {
      syncedUpTo = writtenUpTo;
      syncing = undefined;
    });
    syncing.catch(() => undefined);
  };

  const flush = () => {
    if (batchBytes === 0) return;
    const buffers = batch;
    const bytes = batchBytes;
    const at = position;
    position += bytes;
    const end = position;
    batch = [];
    batchBytes = 0;
    writing = writing.then(async () => {
      await writeAll(handle, buffers, at);
      onWritten(end);
      syncInBackground(end);
    });
    const settled = writing.then(() => {
      if (release) for (const buffer of buffers) release(buffer);
    });
    // Awaited below or at the end; a failure must not also count as unhandled.
    settled.catch(() => undefined);
    held.push({ bytes, settled });
    heldBytes += bytes;
  };

  const drainTo = async (limit: number) => {
    while (heldBytes > limit) {
      const oldest = held.shift();
      if (oldest === undefined) break;
      heldBytes -= oldest.bytes;
      await oldest.settled;
    }
  };

  try {
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      signal?.throwIfAborted();
      verifier.update(chunk);
      batch.push(chunk);
      batchBytes += chunk.byteLength;
      if (batchBytes >= WRITE_BATCH_BYTES) {
        flush();
        await drainTo(MAX_HELD_BYTES);
      }
    }
    flush();
    await drainTo(0);
    await writing;
    await syncing?.catch((error: unknown) => {
      throw new OcibootError("LOCAL_IO", `Cannot sync downloaded content: ${errorMessage(error)}`, { cause: error });
    });
  } catch (error) {
    if (!(error instanceof OcibootError && error.code === "INTEGRITY")) {
      // What arrived before a cut is kept on disk, so the next attempt resumes after it.
      flush();
    }
    await writing.catch(() => undefined);
    await Promise.allSettled(held.map((entry) => entry.settled));
    await syncing?.catch(() => undefined);
    await stream.cancel?.().catch?.(() => undefined);
    if (error instanceof OcibootError) throw error;
    if (signal?.aborted) throw signal.reason instanceof OcibootError ? signal.reason : new OcibootError("INTERRUPTED", "Interrupted");
    throw new OcibootError("NETWORK", `Cannot receive content: ${errorMessage(error)}`, { cause: error });
  }
  return position;
}
async function writeAll(handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  try {
    let remaining = buffers;
    let at = position;
    while (remaining.length > 0) {
      const { bytesWritten } = await handle.writev(remaining, at);
      at += bytesWritten;
      remaining = dropWritten(remaining, bytesWritten);
    }
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot write downloaded content: ${errorMessage(error)}`, { cause: error });
  }
}

function dropWritten(buffers: Uint8Array[], bytesWritten: number): Uint8Array[] {
  let skip = bytesWritten;
  const rest: Uint8Array[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.byteLength) {
      skip -= buffer.byteLength;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}

/** Hashes what an earlier run left in the partial file, so that the download continues after it. */
async function verifierForPrefix(
  partialPath: string,
  descriptor: Descriptor,
  signal: AbortSignal | undefined,
): Promise<{ verifier: ContentVerifier; prefix: number }> {
  const size = await sizeOf(partialPath);
  if (size === undefined || size === 0 || size > descriptor.size) {
    return { verifier: new ContentVerifier(descriptor), prefix: 0 };
  }
  const verifier = new ContentVerifier(descriptor);
  await hashFile(partialPath, verifier, size, signal);
  return { verifier, prefix: size };
}

/** Tells whether a file on disk has exactly the descriptor's size and digest. */
export async function fileMatches(path: string, descriptor: Descriptor, signal?: AbortSignal): Promise<boolean> {
  const size = await sizeOf(path);
  if (size !== descriptor.size) return false;
  const verifier = new ContentVerifier(descriptor);
  await hashFile(path, verifier, size, signal);
  try {
    verifier.finish();
    return true;
  } catch {
    return false;
  }
}

async function hashFile(path: string, verifier: ContentVerifier, length: number, signal: AbortSignal | undefined): Promise<void> {
  if (length === 0) return;
  try {
    const stream = createReadStream(path, { start: 0, end: length - 1, highWaterMark: READ_CHUNK_BYTES, ...(signal ? { signal } : {}) });
    for await (const chunk of stream) verifier.update(chunk as Uint8Array);
  } catch (error) {
    if (error instanceof OcibootError) throw error;
    throw new OcibootError("LOCAL_IO", `Cannot read ${path}: ${errorMessage(error)}`, { cause: error });
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new OcibootError("LOCAL_IO", `Cannot use ${path}: not a regular file`);
    return info.size;
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    if (error instanceof OcibootError) throw error;
    throw new OcibootError("LOCAL_IO", `Cannot inspect ${path}: ${errorMessage(error)}`, { cause: error });
  }
}
