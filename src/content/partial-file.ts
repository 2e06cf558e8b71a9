import { open, rm, stat } from "node:fs/promises";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { type BlobWriter, type BlobWriterOptions, openBlobWriter, resumablePrefixLength } from "./blob-writer.ts";
import { errorCode, errorMessage } from "./fs-util.ts";
import { ingest, type IngestSink } from "./ingest.ts";
import type { FetchedContent, OpenAt } from "./store.ts";
import { ContentVerifier } from "./verify.ts";

/** How a blob came in through its partial file. */
export interface PartialIngestResult {
  status: "downloaded" | "resumed";
  /** Bytes that came from the source in this call (less than the size when resumed). */
  transferred: number;
}

export interface PartialIngestOptions {
  signal?: AbortSignal;
  /** Called with each number of bytes that became known-good or arrived: for progress display. */
  onProgress?: (event: { done: number; total: number }) => void;
}

const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * Brings a blob in through a partial file that outlives a cut, an error or a killed process
 * (docs/ingest.md): what an earlier attempt or run left in `partialPath` is hashed again and built
 * on, only the rest is asked for (`open(offset)`), each chunk is checked before it is written, and
 * `commit` (fsync is done, then the rename to the final name) runs only once size and digest
 * match. A cut keeps the bytes that reached the file; a mismatch removes it. A kept prefix is
 * trusted by nothing but the final digest: when that fails, the blob is fetched once more from 0.
 */
export async function ingestThroughPartial(
  descriptor: Descriptor,
  partialPath: string,
  open: OpenAt,
  commit: () => Promise<void>,
  options: PartialIngestOptions = {},
): Promise<PartialIngestResult> {
  try {
    return await ingestOnce(descriptor, partialPath, open, commit, options, true);
  } catch (error) {
    if (!(isOcibootError(error, "INTEGRITY") && error.details?.["resumed"] === true)) throw error;
    // The kept prefix was bad (the partial file was removed): start over from byte 0 at once.
    return ingestOnce(descriptor, partialPath, open, commit, options, false);
  }
}

async function ingestOnce(
  descriptor: Descriptor,
  partialPath: string,
  open: OpenAt,
  commit: () => Promise<void>,
  options: PartialIngestOptions,
  allowResume: boolean,
): Promise<PartialIngestResult> {
  let { verifier, prefix: start } = allowResume
    ? await verifierForPrefix(partialPath, descriptor, options.signal)
    : { verifier: new ContentVerifier(descriptor), prefix: 0 };
  options.onProgress?.({ done: start, total: descriptor.size });

  let content: FetchedContent | undefined;
  if (start < descriptor.size) {
    content = await open(start);
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
      await commit();
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
    // Marked so that the blob is fetched once more from the start, trusting no prefix.
    if (isOcibootError(error, "INTEGRITY") && start > 0) {
      throw new OcibootError(error.code, error.message, { cause: error, details: { ...error.details, resumed: true } });
    }
    throw error;
  }
  return { status: start > 0 ? "resumed" : "downloaded", transferred: end - start };
}

/** Hashes what an earlier attempt or run left in the partial file, so that the transfer continues after it. */
async function verifierForPrefix(
  partialPath: string,
  descriptor: Descriptor,
  signal: AbortSignal | undefined,
): Promise<{ verifier: ContentVerifier; prefix: number }> {
  const size = await fileSize(partialPath);
  if (size === undefined || size === 0 || size > descriptor.size) {
    return { verifier: new ContentVerifier(descriptor), prefix: 0 };
  }
  // The last stretch of a directly written file may hold a gap if the run that wrote it was killed.
  const trusted = resumablePrefixLength(size, descriptor.size);
  const verifier = new ContentVerifier(descriptor);
  await hashFile(partialPath, verifier, trusted, signal);
  return { verifier, prefix: trusted };
}

/** Feeds the first `length` bytes of a file to `hash`. */
export async function hashFile(path: string, hash: { update(chunk: Uint8Array): unknown }, length: number, signal: AbortSignal | undefined): Promise<void> {
  if (length === 0) return;
  try {
    // One buffer, reused: the hash copies what it is given, and a fresh buffer per chunk would
    // pile up as garbage across a large file (docs/archives.md, "Peak memory and time of import").
    const handle = await open(path, "r");
    try {
      const buffer = new Uint8Array(Math.min(READ_CHUNK_BYTES, length));
      for (let position = 0; position < length; ) {
        signal?.throwIfAborted();
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.byteLength, length - position), position);
        if (bytesRead === 0) break;
        hash.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof OcibootError) throw error;
    throw new OcibootError("LOCAL_IO", `Cannot read ${path}: ${errorMessage(error)}`, { cause: error });
  }
}

/** A regular file's size; undefined when it does not exist. */
export async function fileSize(path: string): Promise<number | undefined> {
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
