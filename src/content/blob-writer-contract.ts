import type { ChunkMemory } from "./store.ts";

/**
 * Writes a blob's bytes, in order, into a file from a given position, and makes them durable.
 * Chunks handed to `add` have been hashed already; `release` gives their memory back to the
 * source once the writer no longer needs them.
 */
export interface BlobWriter {
  /** "direct": O_DIRECT, past the page cache; "buffered": through it. */
  readonly kind: "direct" | "buffered";
  /** Takes the next chunk; waits while too much is held, so memory stays bounded. */
  add(chunk: Uint8Array): Promise<void>;
  /** Writes what is still held, without syncing: after a cut, the next attempt resumes after it. */
  flush(): Promise<void>;
  /** Writes what is held, sets the file's length and syncs it; returns the end position. */
  finish(): Promise<number>;
  /** Closes the file (after finish, or to give up). Never throws. */
  close(): Promise<void>;
}

export interface BlobWriterOptions {
  /** Where the content starts in the file (bytes before it are kept: a resumed prefix). */
  start: number;
  /** Bytes still to come, when known: small blobs go through the page cache, others past it. */
  expectedBytes?: number;
  /** The source's chunks: given back once written; written as they are when aligned. */
  chunks?: ChunkMemory;
  /** Create the file, failing if it exists (a temporary name that nothing else may hold). */
  exclusive?: boolean;
  /** Test hook: skip direct I/O. */
  buffered?: boolean;
}

/** The source's way of taking a chunk back, if it has one. */
export function releaseOf(chunks: ChunkMemory | undefined): ((chunk: Uint8Array) => void) | undefined {
  return chunks?.release ? (chunk) => chunks.release?.(chunk) : undefined;
}
