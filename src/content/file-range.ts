import { open, type FileHandle } from "node:fs/promises";
import { AlignedBlockPool, DIRECT_IO_ALIGNMENT } from "../aligned-blocks.ts";
import type { FetchedContent } from "./store.ts";
import { readFully } from "./fs-util.ts";
import { noteFreshBuffer } from "./young-garbage.ts";

/** One read; a multiple of a WebAssembly page, so that blocks are page-aligned. */
const BLOCK_BYTES = 1024 * 1024;
/**
 * The pool's blocks: one slab of ten, 10 MiB whatever the blob's size. A store writing with direct
 * I/O holds at most six (two 2 MiB writes in flight, 2 MiB being gathered) and three more are being
 * read, so a consumer that gives blocks back never meets ordinary memory, which direct I/O refuses.
 */
const SLAB_BLOCKS = 10;
const MAX_SLABS = 1;
/**
 * Smaller ranges (manifests, configs, signatures) are read into ordinary memory of their own
 * size: a slab costs about 0.2 ms to make, which an archive of many small blobs would pay for
 * each, and below direct I/O's threshold there is nothing for aligned blocks to save.
 */
const POOLED_MIN_BYTES = 4 * 1024 * 1024;
/**
 * Reads ahead of the one the consumer waits for. The reads run on libuv's threads while the
 * consumer hashes and writes the block before: a 300 MiB `.tar` import took 0.41 s with none
 * ahead, 0.34 s with one, 0.33 s with two and 0.35 s with four (medians of nine, docs/archives.md).
 */
const READS_AHEAD = 2;

/**
 * A byte range of a file (a blob inside a plain `.tar`, or a spooled blob) as a stream of blocks
 * read ahead of the consumer: pooled and page-aligned from POOLED_MIN_BYTES on. A consumer that
 * gives each chunk back through `release` once written (a store's push, given the chunks) reuses
 * a few blocks for the whole range, and can write them with direct I/O as they are; one that does
 * not gets ordinary memory after the pool's blocks are out. The file is opened at once, so a
 * missing file fails here.
 */
export async function readFileRange(path: string, offset: number, length: number): Promise<FetchedContent> {
  const handle = await open(path, "r");
  const pool = length >= POOLED_MIN_BYTES ? new AlignedBlockPool(BLOCK_BYTES, SLAB_BLOCKS, MAX_SLABS) : undefined;
  const end = offset + length;
  let nextRead = offset;
  const pending: Array<Promise<BlockRead>> = [];
  const readAhead = () => {
    while (pending.length <= READS_AHEAD && nextRead < end) {
      const at = nextRead;
      const size = Math.min(BLOCK_BYTES, end - at);
      nextRead += size;
      const read = readBlock(handle, pool, at, size);
      // Awaited in order by pull; one that fails before its turn must not count as unhandled.
      read.catch(() => undefined);
      pending.push(read);
    }
  };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    // Reads still in flight use the handle: they end (or fail) before it closes.
    await Promise.allSettled(pending.splice(0));
    await handle.close().catch(() => undefined);
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        readAhead();
        const next = pending.shift();
        if (next === undefined) {
          await close();
          controller.close();
          return;
        }
        let read: BlockRead;
        try {
          read = await next;
        } catch (error) {
          await close();
          controller.error(error);
          return;
        }
        if (read.bytes.byteLength > 0) controller.enqueue(read.bytes);
        if (!read.whole) {
          // The file is shorter than the range (changed under us): the consumer's size check names it.
          await close();
          controller.close();
        }
      },
      cancel: close,
    },
    { highWaterMark: 0 },
  );
  if (pool === undefined) return { stream, offset: 0 };
  const content: FetchedContent = { stream, offset: 0, release: (chunk) => void pool.give(chunk) };
  if (pool.aligned) content.alignment = DIRECT_IO_ALIGNMENT;
  return content;
}

/** A block's bytes; `whole` is false when the file ended before the block did. */
interface BlockRead {
  bytes: Uint8Array;
  whole: boolean;
}

async function readBlock(handle: FileHandle, pool: AlignedBlockPool | undefined, position: number, size: number): Promise<BlockRead> {
  const block = pool?.take() ?? new Uint8Array(size);
  if (pool?.lends(block) !== true) noteFreshBuffer(block.byteLength);
  const done = await readFully(handle, block.subarray(0, size), position);
  return { bytes: block.subarray(0, done), whole: done === size };
}
