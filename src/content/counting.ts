/**
 * A pass-through stage that reports how many bytes have gone by after each chunk: what progress
 * displays show. Chunks pass as they are (the same memory), so aligned or pooled chunks keep
 * what their source promised.
 */
export function countingStage(onBytes: (done: number) => void): TransformStream<Uint8Array, Uint8Array> {
  let done = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      done += chunk.byteLength;
      controller.enqueue(chunk);
      onBytes(done);
    },
  });
}
