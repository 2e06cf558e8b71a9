import type { FileHandle } from "node:fs/promises";
import { OcibootError } from "../errors.ts";
import { type BlobWriter, type BlobWriterOptions, releaseOf } from "./blob-writer-contract.ts";
import { errorMessage, writeError, writevFully } from "./fs-util.ts";

/**
 * Writes are batched to this size: few large syscalls instead of one per network chunk, yet small
 * enough that the bytes are still in the CPU cache when written (4 MiB measured ~0.3 s per GiB slower).
 */
const WRITE_BATCH_BYTES = 2 * 1024 * 1024;
/** Received but not yet written bytes before `add` waits: bounds memory. */
const MAX_HELD_BYTES = 2 * 1024 * 1024;
/**
 * Written bytes are flushed to the disk in the background every so often, so that the final
 * fsync (which must come before the rename) waits for the last stretch, not for the whole blob
 * (~0.3 s per GiB here; measured 1.55 s → 1.35 s per GiB).
 */
const BACKGROUND_SYNC_BYTES = 128 * 1024 * 1024;

/** Chunks flushed in one write; their memory is free again once it is written. */
interface HeldBatch {
  bytes: number;
  settled: Promise<void>;
}

/**
 * Through the page cache: chunks are written in large batches, one write after the other, while
 * reading and hashing go on; written bytes are synced in the background every so often.
 */
export class BufferedBlobWriter implements BlobWriter {
  readonly kind = "buffered";
  readonly #path: string;
  readonly #handle: FileHandle;
  readonly #release: ((chunk: Uint8Array) => void) | undefined;
  #position: number;
  #batch: Uint8Array[] = [];
  #batchBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  readonly #held: HeldBatch[] = [];
  #heldBytes = 0;
  #syncing: Promise<void> | undefined;
  #syncedUpTo: number;

  constructor(path: string, handle: FileHandle, options: BlobWriterOptions) {
    this.#path = path;
    this.#handle = handle;
    this.#release = releaseOf(options.chunks);
    this.#position = options.start;
    this.#syncedUpTo = options.start;
  }

  async add(chunk: Uint8Array): Promise<void> {
    this.#batch.push(chunk);
    this.#batchBytes += chunk.byteLength;
    if (this.#batchBytes >= WRITE_BATCH_BYTES) {
      this.#writeBatch();
      await this.#drainTo(MAX_HELD_BYTES);
    }
  }

  #writeBatch(): void {
    if (this.#batchBytes === 0) return;
    const buffers = this.#batch;
    const bytes = this.#batchBytes;
    const at = this.#position;
    this.#position += bytes;
    const end = this.#position;
    this.#batch = [];
    this.#batchBytes = 0;
    this.#writing = this.#writing.then(async () => {
      await writevFully(this.#handle, buffers, at).catch((error: unknown) => {
        throw writeError(this.#path, error);
      });
      this.#syncInBackground(end);
    });
    const release = this.#release;
    const settled = this.#writing.then(() => {
      if (release) for (const buffer of buffers) release(buffer);
    });
    // Awaited in #drainTo or at the end; a failure must not also count as unhandled.
    settled.catch(() => undefined);
    this.#held.push({ bytes, settled });
    this.#heldBytes += bytes;
  }

  #syncInBackground(writtenUpTo: number): void {
    if (this.#syncing !== undefined || writtenUpTo - this.#syncedUpTo < BACKGROUND_SYNC_BYTES) return;
    // A failed sync stays in `#syncing`: no further ones start, and the failure surfaces at the end.
    this.#syncing = this.#handle.datasync().then(() => {
      this.#syncedUpTo = writtenUpTo;
      this.#syncing = undefined;
    });
    this.#syncing.catch(() => undefined);
  }

  async #drainTo(limit: number): Promise<void> {
    while (this.#heldBytes > limit) {
      const oldest = this.#held.shift();
      if (oldest === undefined) break;
      this.#heldBytes -= oldest.bytes;
      await oldest.settled;
    }
  }

  async flush(): Promise<void> {
    this.#writeBatch();
    await this.#drainTo(0);
    await this.#writing;
  }

  async finish(): Promise<number> {
    await this.flush();
    try {
      await this.#syncing;
      await this.#handle.truncate(this.#position);
      await this.#handle.sync();
    } catch (error) {
      throw new OcibootError("LOCAL_IO", `Cannot sync ${this.#path}: ${errorMessage(error)}`, { cause: error });
    }
    return this.#position;
  }

  async close(): Promise<void> {
    await this.#writing.catch(() => undefined);
    await Promise.allSettled(this.#held.map((entry) => entry.settled));
    await this.#syncing?.catch(() => undefined);
    await this.#handle.close().catch(() => undefined);
  }
}
