import { isReferrerLister, type FetchedContent, type FetchOptions, type ReadableStore, type ReferrerLister } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { RetryChain } from "../retry.ts";

/** Options for {@link resumingReads}. */
export interface ResumingOptions {
  /** Breaks survived per blob (default: the retry policy's attempts less one); unused when the caller passes its retry chain. */
  breaks?: number;
  /** First wait before asking again; doubles each time (default: the retry policy's). */
  retryDelayMs?: number;
}

/**
 * A view of `source` whose blob streams survive broken transfers: when one fails with a network
 * error, the rest is asked for from the byte reached (a ranged request; from the start with the
 * bytes already delivered skipped, where the store cannot do ranges) and continues the same
 * stream. For targets that cannot take a blob twice once it started, such as an archive being
 * written; the target still verifies the whole. Everything else passes through unchanged.
 */
export function resumingReads(source: ReadableStore, options: ResumingOptions = {}): ReadableStore & Partial<ReferrerLister> {
  const view: ReadableStore = {
    description: source.description,
    resolve: (reference) => source.resolve(reference),
    exists: (descriptor) => source.exists(descriptor),
    fetch: (descriptor, fetchOptions = {}) => fetchContinuing(source, descriptor, fetchOptions, options),
  };
  if (!isReferrerLister(source)) return view;
  return { ...view, referrers: (subject, artifactType) => source.referrers(subject, artifactType) };
}

/**
 * Opens a blob whose stream survives broken transfers (see {@link resumingReads}), so that every
 * destination — a folder, a layout, an archive, a registry upload, a pipe — gets the bytes after a
 * cut without the source sending the first part again. The chunks' memory (pooled blocks, their
 * alignment) is passed on as the source describes it; a reopened transfer whose chunks would break
 * that promise is not spliced in: the break is reported instead, and the caller starts over.
 */
export async function fetchContinuing(
  source: ReadableStore,
  descriptor: Descriptor,
  fetchOptions: FetchOptions = {},
  options: ResumingOptions = {},
): Promise<FetchedContent> {
  // The caller's chain if it has one, so its retries and ours share one count (src/retry.ts).
  const retryChain = fetchOptions.retryChain ?? chainFor(options);
  const first = await source.fetch(descriptor, { ...fetchOptions, retryChain });
  const owners = new WeakMap<Uint8Array, (chunk: Uint8Array) => void>();
  const request = { retryChain, ...(fetchOptions.signal ? { signal: fetchOptions.signal } : {}) };
  const content: FetchedContent = { stream: continuing(source, descriptor, first, request, owners), offset: first.offset };
  if (first.alignment !== undefined) content.alignment = first.alignment;
  // Each chunk goes back to the transfer that lent it, the first or a reopened one.
  if (first.release !== undefined) content.release = (chunk) => owners.get(chunk)?.(chunk);
  return content;
}

function chainFor(options: ResumingOptions): RetryChain {
  return new RetryChain({
    ...(options.breaks !== undefined ? { attempts: options.breaks + 1 } : {}),
    ...(options.retryDelayMs !== undefined ? { baseDelayMs: options.retryDelayMs } : {}),
  });
}

function continuing(
  source: ReadableStore,
  descriptor: Descriptor,
  first: FetchedContent,
  request: { retryChain: RetryChain; signal?: AbortSignal },
  owners: WeakMap<Uint8Array, (chunk: Uint8Array) => void>,
): ReadableStream<Uint8Array> {
  const { retryChain, signal } = request;
  let reader = first.stream.getReader();
  let release = first.release?.bind(first);
  let position = first.offset;
  const reopen = async (cause: unknown): Promise<ReadableStreamDefaultReader<Uint8Array>> => {
    const fetchOptions: FetchOptions = signal ? { offset: position, signal, retryChain } : { offset: position, retryChain };
    const again = await source.fetch(descriptor, fetchOptions);
    if (again.offset > position) {
      await again.stream.cancel().catch(() => undefined);
      throw new OcibootError("REGISTRY", `Cannot resume ${descriptor.digest} at byte ${position}: ${source.description} answered from byte ${again.offset}`);
    }
    if (first.alignment !== undefined && (again.alignment !== first.alignment || again.offset !== position)) {
      await again.stream.cancel().catch(() => undefined);
      throw cause;
    }
    release = again.release?.bind(again);
    return skipping(again.stream, position - again.offset).getReader();
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          try {
            const { done, value } = await reader.read();
            if (done) controller.close();
            else {
              position += value.byteLength;
              if (release !== undefined) owners.set(value, release);
              controller.enqueue(value);
            }
            return;
          } catch (error) {
            if (!retryChain.shouldRetry(error, signal)) throw error;
            await reader.cancel().catch(() => undefined);
            await retryChain.wait(signal);
            reader = await reopen(error);
          }
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/** Drops the first `count` bytes of a stream. */
function skipping(stream: ReadableStream<Uint8Array>, count: number): ReadableStream<Uint8Array> {
  if (count === 0) return stream;
  let left = count;
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (left >= chunk.byteLength) {
          left -= chunk.byteLength;
          return;
        }
        controller.enqueue(left > 0 ? chunk.subarray(left) : chunk);
        left = 0;
      },
    }),
  );
}
