import type { Readable, Writable } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import type tarStream from "tar-stream";

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

/** A Web Stream reading a Node (or streamx) readable only as fast as it is consumed. */
export function readableFrom(output: Readable | AsyncIterable<Uint8Array>, stop: (reason?: unknown) => void): ReadableStream<Uint8Array> {
  const iterator = (output as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel: stop,
    },
    { highWaterMark: 0 },
  );
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
 * gunzip through node:zlib, each chunk awaited, for the same reason as {@link gzipStage}:
 * DecompressionStream on Node 20 let a 300 MiB `.tar.gz` import peak at 252 MB of RSS
 * (docs/archives.md); this keeps to the pace of the consumer.
 */
export function gunzipStage(): TransformStream<Uint8Array, Uint8Array> {
  const gunzip = createGunzip();
  const stop = () => gunzip.destroy();
  return { writable: writableInto(gunzip, stop), readable: readableFrom(gunzip, stop) };
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
