import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import type { Digest } from "../../src/oci/digest.ts";

/** A Web Stream over a file, read in 1 MiB pieces: how push sends blobs from disk. */
export function fileStream(path: string): ReadableStream<Uint8Array> {
  const iterator = (createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

export function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

export function describe(mediaType: string, bytes: Uint8Array): Descriptor {
  return { mediaType, digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}` as Digest, size: bytes.byteLength };
}

export async function sha256OfStream(stream: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  const iterable: AsyncIterable<Uint8Array> =
    stream instanceof ReadableStream
      ? {
          async *[Symbol.asyncIterator]() {
            const reader = stream.getReader();
            for (;;) {
              const { done, value } = await reader.read();
              if (done) return;
              yield value;
            }
          },
        }
      : stream;
  for await (const chunk of iterable) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { digest: `sha256:${hash.digest("hex")}`, size };
}
