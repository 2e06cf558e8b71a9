import { Readable as NodeReadable, type Readable, type Writable } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import type tarStream from "tar-stream";
import { noteFreshBuffer } from "./young-garbage.ts";

/**
 * A Web Stream writing into a Node stream, one chunk at a time: each write waits until the
 * stream has taken the chunk (a pipe has room, zlib has compressed it), which holds the
 * producer to the pace of the consumer.
 */
export function writableInto(input: Writable, stop: () => void): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: (chunk) => new Promise<void>((resolve, reject) => input.write(chunk, (error) => (error ? reject(error) : resolve()))),
    close: () => new Promise<void>((resolve) => input.end(resolve)),
    abort: stop,
  });
}

/**
 * A Web Stream reading a Node (or streamx) readable only as fast as it is consumed. A Node
 * readable is read chunk by chunk as it pushed them ({@link chunkPuller}); a streamx one (tar-stream's
 * pack) through its async iterator, which also hands chunks on as they are.
 */
export function readableFrom(output: Readable | AsyncIterable<Uint8Array>, stop: (reason?: unknown) => void): ReadableStream<Uint8Array> {
  const next = output instanceof NodeReadable ? chunkPuller(output) : iteratorPuller(output);
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const chunk = await next();
        if (chunk === undefined) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: stop,
    },
    { highWaterMark: 0 },
  );
}

function iteratorPuller(output: AsyncIterable<Uint8Array>): () => Promise<Uint8Array | undefined> {
  const iterator = output[Symbol.asyncIterator]();
  return async () => {
    const next = await iterator.next();
    return next.done ? undefined : next.value;
  };
}

/**
 * The chunks of a Node readable, one per call (undefined at its end), each the very buffer the
 * stream pushed. Neither the stream's async iterator (`read()` joins whatever is buffered into a
 * new buffer) nor `Readable.toWeb` (copies every chunk) is used: each copy is garbage the size of
 * the data, which on a 300 MiB archive kept tens of MB of dead buffers waiting for the collector
 * (docs/archives.md). The stream is paused after each chunk, so at most one is held here. Every
 * chunk is a fresh buffer (zlib's output, a pipe read) and counted as such (young-garbage.ts).
 */
export function chunkPuller(source: Readable): () => Promise<Uint8Array | undefined> {
  const queue: Uint8Array[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const settle = () => {
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  source.on("data", (chunk: Uint8Array) => {
    noteFreshBuffer(chunk.byteLength);
    queue.push(chunk);
    source.pause();
    settle();
  });
  source.once("end", () => {
    ended = true;
    settle();
  });
  source.once("error", (error: unknown) => {
    failure ??= error;
    settle();
  });
  source.once("close", () => {
    if (!ended) failure ??= new Error("the stream closed before its end");
    settle();
  });
  source.pause();
  return async () => {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) return chunk;
      if (failure !== undefined) throw failure;
      if (ended) return undefined;
      const arrived = new Promise<void>((resolve) => (wake = resolve));
      source.resume();
      await arrived;
    }
  };
}

/** A gzip stage and a way to stop it. */
export interface GzipStage {
  transform: TransformStream<Uint8Array, Uint8Array>;
  stop(): void;
}

/**
 * gzip through node:zlib, each chunk awaited. Not CompressionStream: on Node 20 it takes in
 * everything it is given before compressing any of it, so a large blob would end up whole in
 * memory. zlib's header carries no file name and a zero mtime, so equal input gives equal bytes.
 */
export function gzipStage(level?: number): GzipStage {
  const gzip = createGzip(level === undefined ? {} : { level });
  const stop = () => gzip.destroy();
  return { transform: { writable: writableInto(gzip, stop), readable: readableFrom(gzip, stop) }, stop };
}

/**
 * zlib inflates on a worker thread and stops after each output chunk until the main thread has
 * taken it: with zlib's 16 KiB default, a 300 MiB `.tar.gz` took 19 000 such round trips and the
 * decoder idled whenever the main thread was hashing or writing. With 128 KiB chunks the import
 * took 1.35–1.47 s instead of 2.39–2.62 s (gzip -d | tar -x: 1.91–2.28 s), same peak RSS
 * (docs/archives.md).
 */
const GUNZIP_CHUNK_BYTES = 128 * 1024;

/**
 * gunzip through node:zlib: bytes written into `input` (each write's callback says zlib is done
 * with that chunk), the decompressed bytes pulled from `output` only as fast as they are consumed.
 * Not DecompressionStream, for the same reason as {@link gzipStage}: on Node 20 it let a 300 MiB
 * `.tar.gz` import peak at 252 MB of RSS (docs/archives.md).
 */
export function gunzipStream(): { input: Writable; output: ReadableStream<Uint8Array> } {
  const gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK_BYTES });
  return { input: gunzip, output: readableFrom(gunzip, () => gunzip.destroy()) };
}

/** The bytes a tar-stream pack produces, pulled as the consumer takes them. */
export function packStream(pack: tarStream.Pack): ReadableStream<Uint8Array> {
  return readableFrom(pack as unknown as AsyncIterable<Uint8Array>, (reason) => pack.destroy(reason instanceof Error ? reason : new Error(String(reason))));
}

/** One entry of a tar-stream pack, being written. */
export type TarEntrySink = ReturnType<tarStream.Pack["entry"]>;

/** Resolves when a tar entry that refused a write (backpressure) takes more; rejects if it closes or fails first. */
export function drained(sink: TarEntrySink): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      sink.off("drain", onDrain);
      sink.off("close", onClose);
      sink.off("error", onError);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle(new Error("tar entry closed"));
    const onError = (error: Error) => settle(error);
    sink.on("drain", onDrain);
    sink.on("close", onClose);
    sink.on("error", onError);
  });
}

/** Header fields of a tar entry as tar-stream takes them. */
export type TarEntryHeader = Parameters<tarStream.Pack["entry"]>[0];

/**
 * Starts an entry in a tar-stream pack. `written` settles when the pack has taken the whole entry
 * (or failed it); the sink's own error events are left to that promise.
 */
export function startTarEntry(pack: tarStream.Pack, header: TarEntryHeader): { sink: TarEntrySink; written: Promise<void> } {
  let sink: TarEntrySink | undefined;
  const written = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (error) => (error ? reject(error) : resolve()));
  });
  written.catch(() => undefined);
  // Failures arrive through the entry callback; the event would only be reported as unhandled.
  sink?.on("error", () => undefined);
  return { sink: sink as TarEntrySink, written };
}

/** What {@link passingThrough} does besides handing the chunks on. */
export interface PassThroughHooks {
  /** The source failed: the error to raise instead (default: the same one). */
  failed?(error: unknown): unknown;
  /** Called once when the source ended, failed or was cancelled (its own failure is ignored). */
  finally?(): Promise<unknown>;
}

/**
 * The stream's chunks, one pull at a time (no buffering ahead), with a say in how it fails and a
 * hook for when it is over: naming an archive in a decoder's error, closing what fed the stream.
 */
export function passingThrough(stream: ReadableStream<Uint8Array>, hooks: PassThroughHooks): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let over = false;
  const finish = async () => {
    if (over) return;
    over = true;
    await hooks.finally?.().catch(() => undefined);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          await finish();
          throw hooks.failed ? hooks.failed(error) : error;
        }
        if (next.done) {
          await finish();
          controller.close();
        } else {
          controller.enqueue(next.value);
        }
      },
      async cancel(reason) {
        // The consumer wants no more: how the source takes that does not matter to it.
        await reader.cancel(reason).catch(() => undefined);
        await finish();
      },
    },
    { highWaterMark: 0 },
  );
}
