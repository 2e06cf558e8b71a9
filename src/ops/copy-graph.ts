import { countingStage } from "../content/counting.ts";
import { isResumingWriter, type PushFromOptions, type PushOptions, type ReadableStore, type WritableStore } from "../content/store.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { walkGraph } from "./graph-walk.ts";
import { runBounded } from "./pool.ts";
import { RetryChain } from "../retry.ts";
import { fetchContinuing } from "./resuming-source.ts";

/** Options for {@link copyGraph}. */
export interface CopyGraphOptions {
  signal?: AbortSignal;
  /** Blobs copied at once (default 3). */
  concurrency?: number;
  /** Called with the blobs of each manifest that the target lacks, before they are copied. */
  onPlanned?: (blobs: readonly Descriptor[]) => void;
  /** Called once per blob or manifest actually copied (not for those the target had). */
  onCopied?: (descriptor: Descriptor) => void;
  /** Called as a blob's bytes go to the target: how many of them so far (from 0 again on a new try). */
  onBytes?: (blob: Descriptor, done: number) => void;
  /** First wait before a broken blob copy starts over; doubles each time (default: the retry policy's). */
  retryDelayMs?: number;
  /** Attempts per blob, HTTP retries and resumed reads included (default: the retry policy's). */
  attempts?: number;
  /** Digests this operation has copied already (see walkGraph): shared, so referrers do not copy their subject again. */
  visited?: Set<string>;
  /** False for a target that cannot take a blob again once it started (an archive being written): a broken blob is not started over. */
  restartBlobs?: boolean;
}

/**
 * Copies a manifest or index and everything it reaches (its subject too, as oras-go does) from one
 * store to another: blobs first (skipped where the target has them), then each manifest, then the
 * index, so the target never holds a manifest whose content is missing. Manifests are read
 * verified and bounded; blobs are verified by the target store as they land.
 */
export async function copyGraph(source: ReadableStore, target: WritableStore, root: Descriptor, options: CopyGraphOptions = {}): Promise<void> {
  await walkGraph(source, root, {
    action: `copy ${root.digest}`,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.visited ? { visited: options.visited } : {}),
    leave: async (node) => {
      const missing: Descriptor[] = [];
      for (const blob of node.blobs) if (!(await target.exists(blob))) missing.push(blob);
      if (node.parsed.kind === "manifest" || missing.length > 0) options.onPlanned?.(missing);
      await runBounded(missing, options.concurrency ?? 3, async (blob) => {
        await copyBlob(source, target, blob, options);
        options.onCopied?.(blob);
      });
      const manifest: Descriptor = { mediaType: node.parsed.mediaType, digest: node.descriptor.digest, size: node.descriptor.size };
      if (await target.exists(manifest)) return;
      await target.push(manifest, new Blob([node.bytes]).stream(), options.signal ? { signal: options.signal } : {});
      options.onCopied?.(manifest);
    },
  });
}

/** What a copy reports as it goes, for progress displays and logs. */
export type TransferHooks = Pick<CopyGraphOptions, "onPlanned" | "onCopied" | "onBytes">;

/** A streamed upload cannot be replayed by the HTTP layer, so copy starts a broken blob over, within the blob's one retry chain. */
async function copyBlob(source: ReadableStore, target: WritableStore, blob: Descriptor, options: CopyGraphOptions): Promise<void> {
  const { signal } = options;
  const chain = new RetryChain({
    ...(options.attempts !== undefined ? { attempts: options.attempts } : {}),
    ...(options.retryDelayMs !== undefined ? { baseDelayMs: options.retryDelayMs } : {}),
  });
  for (;;) {
    try {
      if (isResumingWriter(target)) {
        // The target keeps what it received across attempts and runs, and asks only for the rest.
        const pushOptions: PushFromOptions = signal ? { signal } : {};
        const { onBytes } = options;
        if (onBytes) pushOptions.onBytes = (done) => onBytes(blob, done);
        const open = (offset: number) => fetchContinuing(source, blob, { ...(offset > 0 ? { offset } : {}), retryChain: chain, ...(signal ? { signal } : {}) });
        await target.pushFrom(blob, open, pushOptions);
        return;
      }
      // A transfer cut midway continues from the byte reached, whatever the target (content/ingest.ts verifies the whole).
      const content = await fetchContinuing(source, blob, signal ? { signal, retryChain: chain } : { retryChain: chain });
      // The source's chunk memory goes back to it once stored; aligned chunks are stored as they are.
      const pushOptions: PushOptions = signal ? { signal, chunks: content } : { chunks: content };
      const { onBytes } = options;
      const stream = onBytes ? content.stream.pipeThrough(countingStage((done) => onBytes(blob, done))) : content.stream;
      await target.push(blob, stream, pushOptions);
      return;
    } catch (error) {
      if (options.restartBlobs === false || !chain.shouldRetry(error, signal)) throw error;
      await chain.wait(signal);
    }
  }
}
