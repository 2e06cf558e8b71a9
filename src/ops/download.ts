import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { commitFile, errorCode, errorMessage } from "../content/fs-util.ts";
import { ingest, type IngestSink } from "../content/ingest.ts";
import { type FetchedContent, type FetchOptions, isFileLender, type ReadableStore } from "../content/store.ts";
import { ContentVerifier } from "../content/verify.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import { RetryChain } from "../retry.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseDigest } from "../oci/digest.ts";
import { type BlobWriter, type BlobWriterOptions, openBlobWriter, resumablePrefixLength } from "../content/blob-writer.ts";

export type DownloadStatus = "existing" | "downloaded" | "resumed";

export interface DownloadResult {
  status: DownloadStatus;
  /** Bytes that came from the store in this run (less than the size when resumed or existing). */
  transferred: number;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /**
   * Attempts for the blob in all, HTTP retries included (default: the retry policy's); after a
   * cut each continues from what reached the disk.
   */
  attempts?: number;
  /** Called with each number of bytes that became known-good or arrived: for progress display. */
  onProgress?: (event: { done: number; total: number }) => void;
}

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
  if (isFileLender(store) && (await store.lendFile(descriptor, partialPath))) {
    // The source spooled this blob beside the destination (an archive read in place): checked again, then committed.
    if (await fileMatches(partialPath, descriptor, options.signal)) {
      await commitFile(partialPath, finalPath);
      options.onProgress?.({ done: descriptor.size, total: descriptor.size });
      return { status: "downloaded", transferred: descriptor.size };
    }
    await rm(partialPath, { force: true });
  }
  // One chain for the blob: the HTTP layer's retries and the resumes after a cut share its attempts.
  const chain = new RetryChain(options.attempts !== undefined ? { attempts: options.attempts } : {});
  let allowResume = true;
  for (;;) {
    try {
      return await downloadToPartial(store, descriptor, partialPath, finalPath, { ...options, retryChain: chain }, allowResume);
    } catch (error) {
      if (isOcibootError(error, "INTEGRITY") && error.details?.["resumed"] === true && chain.failed(error)) {
        // The kept prefix was bad: start over from byte 0 at once, nothing to wait for.
        await rm(partialPath, { force: true });
        allowResume = false;
      } else if (chain.shouldRetry(error, options.signal)) {
        await chain.wait(options.signal);
      } else {
        throw error;
      }
    }
  }
}

async function downloadToPartial(
  store: ReadableStore,
  descriptor: Descriptor,
  partialPath: string,
  finalPath: string,
  options: DownloadOptions & { retryChain: RetryChain },
  allowResume: boolean,
): Promise<DownloadResult> {
  const resumable = allowResume
    ? await verifierForPrefix(partialPath, descriptor, options.signal)
    : { verifier: new ContentVerifier(descriptor), prefix: 0 };
  let { verifier, prefix: start } = resumable;
  options.onProgress?.({ done: start, total: descriptor.size });

  let content: FetchedContent | undefined;
  if (start < descriptor.size) {
    const fetchOptions: FetchOptions = start > 0 ? { offset: start, retryChain: options.retryChain } : { retryChain: options.retryChain };
    content = await store.fetch(descriptor, options.signal ? { ...fetchOptions, signal: options.signal } : fetchOptions);
    if (content.offset !== start) {
      // The source could not honour the range: start this blob over rather than splice.
      verifier = new ContentVerifier(descriptor);
      start = 0;
      options.onProgress?.({ done: 0, total: descriptor.size });
    }
  }
  let writer: BlobWriter;
  try {
    const writerOptions: BlobWriterOptions = { start, expectedBytes: descriptor.size - start };
    if (content) writerOptions.chunks = content;
    writer = await openBlobWriter(partialPath, writerOptions);
  } catch (error) {
    await content?.stream.cancel().catch(() => undefined);
    throw error;
  }
  const sink: IngestSink<number> = {
    write: (chunk) => writer.add(chunk),
    commit: async () => {
      const end = await writer.finish();
      await writer.close();
      await commitFile(partialPath, finalPath);
      return end;
    },
    abort: async (error) => {
      const corrupt = isOcibootError(error, "INTEGRITY");
      // What arrived before a cut is kept on disk, so the next attempt resumes after it.
      if (!corrupt) await writer.flush().catch(() => undefined);
      await writer.close();
      if (corrupt) await rm(partialPath, { force: true });
    },
  };
  let end: number;
  try {
    end = await ingest(content?.stream ?? new ReadableStream<Uint8Array>({ start: (controller) => controller.close() }), verifier, sink, {
      where: partialPath,
      onChunk: (received) => options.onProgress?.({ done: start + received, total: descriptor.size }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    // Marked so that the caller fetches the blob once more from the start, trusting no prefix.
    if (isOcibootError(error, "INTEGRITY") && start > 0) {
      throw new OcibootError(error.code, error.message, { cause: error, details: { ...error.details, resumed: true } });
    }
    throw error;
  }
  return { status: start > 0 ? "resumed" : "downloaded", transferred: end - start };
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
  // The last stretch of a directly written file may hold a gap if the run that wrote it was killed.
  const trusted = resumablePrefixLength(size, descriptor.size);
  const verifier = new ContentVerifier(descriptor);
  await hashFile(partialPath, verifier, trusted, signal);
  return { verifier, prefix: trusted };
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

/** How a file on disk compares with a descriptor; `digest` and `size` are the file's own, when it exists. */
export type FileComparison = { state: "matches" | "changed"; size: number; digest: string } | { state: "missing" };

/** Compares a file with a descriptor, hashing it whole so that a changed file's actual digest can be shown. */
export async function compareFile(path: string, descriptor: Descriptor, signal?: AbortSignal): Promise<FileComparison> {
  const size = await sizeOf(path);
  if (size === undefined) return { state: "missing" };
  const { algorithm } = parseDigest(descriptor.digest);
  const hash = createHash(algorithm);
  await hashFile(path, hash, size, signal);
  const digest = `${algorithm}:${hash.digest("hex")}`;
  return { state: size === descriptor.size && digest === descriptor.digest ? "matches" : "changed", size, digest };
}

async function hashFile(path: string, verifier: { update(chunk: Uint8Array): unknown }, length: number, signal: AbortSignal | undefined): Promise<void> {
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
