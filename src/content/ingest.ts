import { OcibootError } from "../errors.ts";
import { errorMessage } from "./fs-util.ts";

/**
 * What checks content on its way in: every chunk before it is written, the whole at the end.
 * A ContentVerifier checks against a descriptor; a store that names content by the digest it
 * computes (ingesting a new file) passes a hasher that only counts.
 */
export interface IngestCheck {
  update(chunk: Uint8Array): void;
  finish(): void;
}

/** Where verified bytes go: a temporary file, a tar entry, a pipe. */
export interface IngestSink<T> {
  /** Takes the next chunk, already checked; may wait while too much is held. */
  write(chunk: Uint8Array): Promise<void> | void;
  /** Everything arrived and passed the check: make it durable and visible under its final name. */
  commit(): Promise<T>;
  /**
   * The ingest failed (`error`): remove what must not stay. A sink that can resume keeps the bytes
   * that arrived before a broken transfer (anything but INTEGRITY), so the next attempt builds on them.
   */
  abort(error: OcibootError): Promise<void>;
}

/** Options for {@link ingest}. */
export interface IngestOptions {
  signal?: AbortSignal;
  /** Called after each chunk is written, with the bytes taken so far in this call. */
  onChunk?: (received: number) => void;
  /** Names the destination in the message of a failed write (`Cannot write a blob into <where>`). */
  where: string;
}

/**
 * The one way bytes come in (docs/ingest.md): stream → check each chunk before it reaches the
 * sink (not one byte past the declared size is written) → check size and digest at the end →
 * durable commit. Any failure cancels the source and aborts the sink: a broken source is NETWORK
 * (INTERRUPTED when `signal` aborted), a failed write LOCAL_IO, a mismatch INTEGRITY — the same
 * codes, messages and cleanup for a folder, a layout, an archive and a pipe.
 */
export async function ingest<T>(content: ReadableStream<Uint8Array>, check: IngestCheck, sink: IngestSink<T>, options: IngestOptions): Promise<T> {
  const reader = content.getReader();
  let received = 0;
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        throw sourceFailure(error, options.signal);
      }
      if (next.done) break;
      check.update(next.value);
      received += next.value.byteLength;
      try {
        await sink.write(next.value);
      } catch (error) {
        throw sinkFailure(error, options.where);
      }
      options.onChunk?.(received);
    }
    check.finish();
  } catch (error) {
    const failure = error instanceof OcibootError ? error : sourceFailure(error, options.signal);
    await reader.cancel(failure).catch(() => undefined);
    reader.releaseLock();
    await sink.abort(failure);
    throw failure;
  }
  reader.releaseLock();
  try {
    return await sink.commit();
  } catch (error) {
    const failure = sinkFailure(error, options.where);
    await sink.abort(failure);
    throw failure;
  }
}

function sourceFailure(error: unknown, signal: AbortSignal | undefined): OcibootError {
  if (error instanceof OcibootError) return error;
  if (signal?.aborted) return signal.reason instanceof OcibootError ? signal.reason : new OcibootError("INTERRUPTED", "Interrupted", { cause: error });
  return new OcibootError("NETWORK", `Cannot receive content: ${errorMessage(error)}`, { cause: error });
}

function sinkFailure(error: unknown, where: string): OcibootError {
  if (error instanceof OcibootError) return error;
  return new OcibootError("LOCAL_IO", `Cannot write a blob into ${where}: ${errorMessage(error)}`, { cause: error });
}

/**
 * {@link ingest} for a destination that pulls its bytes, such as an HTTP request body: the returned
 * stream gives the checked chunks as they are taken, with backpressure, and errors with the same
 * INTEGRITY error as every other destination when the content does not match; cancelling it
 * cancels `content`. The destination commits on its own terms (the registry's final PUT).
 */
export function ingestStream(content: ReadableStream<Uint8Array>, check: IngestCheck, options: IngestOptions): ReadableStream<Uint8Array> {
  // The readable side holds nothing (high-water mark 0): each write waits until the body takes the chunk.
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const sink: IngestSink<void> = {
    write: (chunk) => writer.write(chunk),
    commit: () => writer.close(),
    abort: (error) => writer.abort(error).catch(() => undefined),
  };
  // The failure reaches the reader of `readable`; nothing else awaits this.
  ingest(content, check, sink, options).catch(() => undefined);
  return readable;
}
