import { mkdir, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseDigest } from "../oci/digest.ts";
import { openBlobWriter } from "./blob-writer.ts";
import { countingStage } from "./counting.ts";
import { errorMessage } from "./fs-util.ts";
import { ingest } from "./ingest.ts";
import type { ReadableStore, WritableStore } from "./store.ts";
import { checkFor, withVerificationOf } from "./verify.ts";

/** Where one blob of an archive is once the archive is open (see archive-store.ts). */
export type BlobPlace =
  /** Small blobs of a compressed archive. */
  | { kind: "memory"; bytes: Uint8Array }
  /** Blobs of a plain tar: read from the archive by offset. */
  | { kind: "range"; offset: number }
  /** Spooled, verified, on the destination's file system. */
  | { kind: "file"; path: string }
  /** Already in the destination store, which can hold a blob before its manifest. */
  | { kind: "store"; store: ReadableStore }
  /** Verified in the pass and not kept: read again from the archive if ever needed. */
  | { kind: "passed" }
  /** Its content does not match its name (kept only for verify's per-item report). */
  | { kind: "corrupt"; error: OcibootError };

/**
 * What happens to each large blob during the one pass over a compressed archive. The content
 * handed to `place` is verified by the archive reader: it errors with INTEGRITY at its end on a
 * mismatch, and `place` must then leave nothing behind under a final name.
 */
export interface BlobPlacement {
  place(descriptor: Descriptor, content: ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<BlobPlace>;
  /** Removes whatever was placed and not handed on; safe to call more than once. */
  close(): Promise<void>;
}

/** No disk at all: each blob is read to its end (so verified) and dropped (verify, discover, inspect…). */
export function dropBlobs(): BlobPlacement {
  return {
    async place(_descriptor, content) {
      const reader = content.getReader();
      try {
        for (let next = await reader.read(); !next.done; next = await reader.read()) {
          // Only the reader's check matters here.
        }
      } finally {
        reader.releaseLock();
      }
      return { kind: "passed" };
    },
    close: async () => undefined,
  };
}

/** The name a spooled blob has in its folder: hidden, by digest, and a `.partial` as long as it is there. */
export function spoolFileName(descriptor: Descriptor): string {
  const { algorithm, hex } = parseDigest(descriptor.digest);
  return `.ociboot-${algorithm}-${hex}.partial`;
}

/**
 * Spools each large blob into `directory` (the destination's own folder, never `$TMPDIR`) under
 * {@link spoolFileName}, written through the one ingest path and synced; `wanted`, when given,
 * says which blobs to keep (the others are verified and dropped). `close` removes every spooled
 * file still there: those a caller moved on (ArchiveStore.lendFile) are gone already.
 */
export function spoolInto(directory: string, wanted?: (descriptor: Descriptor) => boolean): BlobPlacement {
  const spooled = new Set<string>();
  const drop = dropBlobs();
  let createdDirectory = false;
  return {
    async place(descriptor, content, signal) {
      if (wanted !== undefined && !wanted(descriptor)) return drop.place(descriptor, content, signal);
      const path = join(directory, spoolFileName(descriptor));
      let writer;
      try {
        if ((await mkdir(directory, { recursive: true })) !== undefined) createdDirectory = true;
        writer = await openBlobWriter(path, { start: 0, expectedBytes: descriptor.size });
      } catch (error) {
        await content.cancel(error).catch(() => undefined);
        if (error instanceof OcibootError) throw error;
        throw new OcibootError("LOCAL_IO", `Cannot write into ${directory}: ${errorMessage(error)}`, { cause: error });
      }
      spooled.add(path);
      const opened = writer;
      await ingest(content, checkFor(content, descriptor), {
        write: (chunk) => opened.add(chunk),
        commit: async () => {
          await opened.finish();
          await opened.close();
        },
        abort: async () => {
          await opened.close();
          await rm(path, { force: true });
        },
      }, { where: directory, ...(signal ? { signal } : {}) });
      return { kind: "file", path };
    },
    async close() {
      await Promise.all([...spooled].map((path) => rm(path, { force: true }).catch(() => undefined)));
      spooled.clear();
      // A folder made only for spooling goes too (a fetch that failed leaves none behind); one with files in it stays.
      if (createdDirectory) await rmdir(directory).catch(() => undefined);
      createdDirectory = false;
    },
  };
}

/** What {@link pushInto} tells a progress display about each blob it sends (none for blobs the store has). */
export interface PushReport {
  started?(descriptor: Descriptor): void;
  bytes?(descriptor: Descriptor, done: number): void;
  pushed?(descriptor: Descriptor): void;
}

/**
 * Pushes each large blob straight into the destination store (a layout or a registry): both can
 * hold a blob before the manifest that names it, and nothing there is visible until the manifest
 * or index.json is written. The store verifies the blob again as it lands.
 */
export function pushInto(store: WritableStore & ReadableStore, report: PushReport = {}): BlobPlacement {
  return {
    async place(descriptor, content, signal) {
      if (await store.exists(descriptor)) {
        // The reader still verifies what it skips.
        await content.cancel();
        return { kind: "store", store };
      }
      report.started?.(descriptor);
      const counted = report.bytes ? withVerificationOf(content.pipeThrough(countingStage((done) => report.bytes?.(descriptor, done))), content) : content;
      await store.push(descriptor, counted, signal ? { signal } : {});
      report.pushed?.(descriptor);
      return { kind: "store", store };
    },
    close: async () => undefined,
  };
}
