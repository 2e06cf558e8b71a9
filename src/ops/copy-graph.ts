import type { PushOptions, ReadableStore, WritableStore } from "../content/store.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { walkGraph } from "./graph-walk.ts";
import { runBounded } from "./pool.ts";
import { fetchContinuing } from "./resuming-source.ts";
import { delay, isTransientFailure } from "./retry.ts";

/** Options for {@link copyGraph}. */
export interface CopyGraphOptions {
  signal?: AbortSignal;
  /** Blobs copied at once (default 3). */
  concurrency?: number;
  /** Called with the blobs of each manifest that the target lacks, before they are copied. */
  onPlanned?: (blobs: readonly Descriptor[]) => void;
  /** Called once per blob or manifest actually copied (not for those the target had). */
  onCopied?: (descriptor: Descriptor) => void;
  /** First wait before a broken blob copy starts over; doubles each time (default 1 s). */
  retryDelayMs?: number;
  /** Tries per blob (default 3); 1 for a target that cannot take a blob again once it started (an archive being written). */
  attempts?: number;
  /** Digests this operation has copied already (see walkGraph): shared, so referrers do not copy their subject again. */
  visited?: Set<string>;
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

/** Tries per blob: a target that fails midway (an upload refused) cannot be continued, so copy starts it over. */
const BLOB_ATTEMPTS = 3;

async function copyBlob(source: ReadableStore, target: WritableStore, blob: Descriptor, options: CopyGraphOptions): Promise<void> {
  const { signal } = options;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      // A transfer cut midway continues from the byte reached, whatever the target (content/ingest.ts verifies the whole).
      const content = await fetchContinuing(source, blob, signal ? { signal } : {}, { retryDelayMs });
      // The source's chunk memory goes back to it once stored; aligned chunks are stored as they are.
      const pushOptions: PushOptions = signal ? { signal, chunks: content } : { chunks: content };
      await target.push(blob, content.stream, pushOptions);
      return;
    } catch (error) {
      if (attempt >= (options.attempts ?? BLOB_ATTEMPTS) || !isTransientFailure(error)) throw error;
      await delay(retryDelayMs * 2 ** (attempt - 1), signal);
    }
  }
}
