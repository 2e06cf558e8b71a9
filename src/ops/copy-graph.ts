import { countingStage } from "../content/counting.ts";
import type { PushOptions, ReadableStore, WritableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { runBounded } from "./pool.ts";
import { delay, isTransientFailure } from "./retry.ts";
import { readManifestBytes } from "./resolve.ts";

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
  /** First wait before a broken blob copy starts over; doubles each time (default 1 s). */
  retryDelayMs?: number;
  /** Tries per blob (default 3); 1 for a target that cannot take a blob again once it started (an archive being written). */
  attempts?: number;
}

/**
 * Copies a manifest or index and everything it reaches from one store to another: blobs first
 * (skipped where the target has them), then each manifest, then the index, so the target never
 * holds a manifest whose content is missing. Manifests are read verified and bounded; blobs are
 * verified by the target store as they land.
 */
export async function copyGraph(source: ReadableStore, target: WritableStore, root: Descriptor, options: CopyGraphOptions = {}): Promise<void> {
  await copyNode(source, target, root, options, 0);
}

async function copyNode(source: ReadableStore, target: WritableStore, node: Descriptor, options: CopyGraphOptions, depth: number): Promise<void> {
  if (depth > Limits.indexDepth) {
    throw new OcibootError("UNSAFE_CONTENT", `Cannot copy ${node.digest}: indexes nested deeper than ${Limits.indexDepth}`);
  }
  const bytes = await readManifestBytes(source, node, options.signal);
  const parsed = parseManifest(bytes, node.mediaType);
  if (parsed.kind === "index") {
    for (const child of parsed.index.manifests) await copyNode(source, target, child, options, depth + 1);
  } else {
    const missing: Descriptor[] = [];
    for (const blob of [parsed.manifest.config, ...parsed.manifest.layers]) {
      if (!missing.some((known) => known.digest === blob.digest) && !(await target.exists(blob))) missing.push(blob);
    }
    options.onPlanned?.(missing);
    await runBounded(missing, options.concurrency ?? 3, async (blob) => {
      await copyBlob(source, target, blob, options);
      options.onCopied?.(blob);
    });
  }
  const manifest: Descriptor = { mediaType: parsed.mediaType, digest: node.digest, size: node.size };
  if (await target.exists(manifest)) return;
  await target.push(manifest, new Blob([bytes]).stream(), options.signal ? { signal: options.signal } : {});
  options.onCopied?.(manifest);
}

/** What a copy reports as it goes, for progress displays and logs. */
export type TransferHooks = Pick<CopyGraphOptions, "onPlanned" | "onCopied" | "onBytes">;

/** Tries per blob: a streamed upload cannot be replayed by the HTTP layer, so copy starts it over. */
const BLOB_ATTEMPTS = 3;

async function copyBlob(source: ReadableStore, target: WritableStore, blob: Descriptor, options: CopyGraphOptions): Promise<void> {
  const { signal } = options;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      const content = await source.fetch(blob, signal ? { signal } : {});
      // The source's chunk memory goes back to it once stored; aligned chunks are stored as they are.
      const pushOptions: PushOptions = signal ? { signal, chunks: content } : { chunks: content };
      const { onBytes } = options;
      const stream = onBytes ? content.stream.pipeThrough(countingStage((done) => onBytes(blob, done))) : content.stream;
      await target.push(blob, stream, pushOptions);
      return;
    } catch (error) {
      if (attempt >= (options.attempts ?? BLOB_ATTEMPTS) || !isTransientFailure(error)) throw error;
      await delay(retryDelayMs * 2 ** (attempt - 1), signal);
    }
  }
}
