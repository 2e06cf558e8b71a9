import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { commitFile } from "../content/fs-util.ts";
import { fileSize, hashFile, ingestThroughPartial, type PartialIngestOptions } from "../content/partial-file.ts";
import { isFileLender, type ReadableStore } from "../content/store.ts";
import { ContentVerifier } from "../content/verify.ts";
import { RetryChain } from "../retry.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseDigest } from "../oci/digest.ts";

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

/**
 * Downloads one blob to `finalPath`, verifying size and digest while streaming. Bytes land in
 * `<finalPath>.partial` and are renamed only once verified and synced; an existing final file is
 * re-verified and kept when it matches; a partial file left by an interrupted run is resumed with
 * a ranged request (content/partial-file.ts).
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
  const retryChain = new RetryChain(options.attempts !== undefined ? { attempts: options.attempts } : {});
  const { signal } = options;
  const open = (offset: number) => store.fetch(descriptor, { ...(offset > 0 ? { offset } : {}), retryChain, ...(signal ? { signal } : {}) });
  const partialOptions: PartialIngestOptions = {};
  if (signal) partialOptions.signal = signal;
  if (options.onProgress) partialOptions.onProgress = options.onProgress;
  for (;;) {
    try {
      return await ingestThroughPartial(descriptor, partialPath, open, () => commitFile(partialPath, finalPath), partialOptions);
    } catch (error) {
      if (!retryChain.shouldRetry(error, signal)) throw error;
      await retryChain.wait(signal);
    }
  }
}

/** Tells whether a file on disk has exactly the descriptor's size and digest. */
export async function fileMatches(path: string, descriptor: Descriptor, signal?: AbortSignal): Promise<boolean> {
  const size = await fileSize(path);
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
  const size = await fileSize(path);
  if (size === undefined) return { state: "missing" };
  const { algorithm } = parseDigest(descriptor.digest);
  const hash = createHash(algorithm);
  await hashFile(path, hash, size, signal);
  const digest = `${algorithm}:${hash.digest("hex")}`;
  return { state: size === descriptor.size && digest === descriptor.digest ? "matches" : "changed", size, digest };
}
