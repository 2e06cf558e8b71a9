import type { OciLayoutStore, StoredBlob } from "../content/layout.ts";
import { isOcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { walkGraph } from "./graph-walk.ts";

/** Options for {@link pruneStore}. */
export interface PruneOptions {
  /**
   * Unreferenced blobs younger than this are kept (default 10 min): a pull or build in another
   * process writes its blobs before the tag that makes them reachable.
   */
  graceMs?: number;
  /** Report what would go, remove nothing. */
  dryRun?: boolean;
  /** Clock, for tests. */
  now?: number;
}

/** What {@link pruneStore} removed (or would remove) and kept. */
export interface PruneResult {
  removed: StoredBlob[];
  removedBytes: number;
  /** Partial blob files a cut or killed pull or copy left, not written to for the grace period, that no live process holds. */
  removedPartials: StoredBlob[];
  /** Temporary files killed runs left in the store (not counted by a dry run). */
  removedTemporaryFiles: number;
  /** Unreferenced blobs left alone because they are younger than the grace period. */
  keptRecent: number;
}

/**
 * Removes every blob that no index.json entry reaches (through indexes, manifests, configs,
 * layers and subjects), holding the index lock so no tag appears meanwhile, and the abandoned
 * partial files of cut transfers: those not written to for the grace period whose lock no live
 * process holds (a pull in progress keeps its own), and other temporary files that killed runs
 * left. An entry whose manifest
 * is missing reaches nothing; a manifest that is corrupt or nested too deep aborts the prune before
 * anything is removed, so a blob is never lost to a walk that could not finish.
 */
export async function pruneStore(store: OciLayoutStore, options: PruneOptions = {}): Promise<PruneResult> {
  const graceMs = options.graceMs ?? 10 * 60_000;
  return store.withIndexLock(async (entries) => {
    const reachable = await reachableDigests(store, entries);
    const now = options.now ?? Date.now();
    const result: PruneResult = { removed: [], removedBytes: 0, removedPartials: [], removedTemporaryFiles: 0, keptRecent: 0 };
    for await (const blob of store.blobs()) {
      if (reachable.has(blob.digest)) continue;
      if (now - blob.modifiedMs < graceMs) {
        result.keptRecent++;
        continue;
      }
      if (!options.dryRun) await store.deleteBlob(blob.digest);
      result.removed.push(blob);
      result.removedBytes += blob.size;
    }
    for await (const partial of store.partials()) {
      if (now - partial.modifiedMs < graceMs) continue;
      const removed = options.dryRun ? partial.file : await store.removePartial(partial.digest, now - graceMs);
      if (removed) result.removedPartials.push({ digest: partial.digest, size: partial.size, modifiedMs: partial.modifiedMs });
    }
    if (!options.dryRun) result.removedTemporaryFiles = await store.removeStaleTemporaries(now - graceMs);
    return result;
  });
}

/** Digests of every blob reachable from the given entries; an entry or subject whose manifest is missing reaches nothing more. */
export async function reachableDigests(store: OciLayoutStore, roots: readonly Descriptor[]): Promise<Set<string>> {
  const reachable = new Set<string>();
  await walkGraph(store, roots, {
    action: `prune ${store.description}`,
    visited: reachable,
    unreadable: (_descriptor, error) => isOcibootError(error, "NOT_FOUND"),
  });
  return reachable;
}
