/**
 * File offsets, lengths and memory of direct (O_DIRECT) writes are multiples of this: it covers
 * devices with 512- and 4096-byte sectors.
 */
export const DIRECT_IO_ALIGNMENT = 4096;

const WASM_PAGE_BYTES = 65536;

/** The one WebAssembly constructor used here (the project's type libraries leave the global out). */
interface WasmGlobal {
  WebAssembly?: { Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };
}

/**
 * Equal blocks of memory that start on a page boundary, so that they can be written with direct
 * I/O, handed out and taken back for reuse. ArrayBuffers promise no alignment; a WebAssembly
 * memory starts on a page, so blocks are cut from such memories, a slab of several at a time.
 *
 * The slabs are kept for reuse until the pool is dropped, so there are at most `maxSlabs` of them:
 * a consumer that never gives blocks back then gets ordinary memory, which the garbage collector
 * frees, instead of holding on to everything it ever read. Where no slab can be had at all (no
 * WebAssembly, address-space limits) `aligned` is false. Direct writes of ordinary blocks are
 * refused by the kernel, and the writer falls back.
 */
export class AlignedBlockPool {
  readonly blockBytes: number;
  readonly #slabBlocks: number;
  readonly #maxSlabs: number;
  #slabs = 0;
  readonly #free: Uint8Array[] = [];
  /** Offsets of lent blocks, by the memory they were cut from: what `give` takes back. */
  readonly #lent = new Map<ArrayBufferLike, Set<number>>();
  #aligned = true;

  /** `blockBytes` must be a multiple of 64 KiB (a WebAssembly page). */
  constructor(blockBytes: number, slabBlocks: number, maxSlabs = 2) {
    if (blockBytes % WASM_PAGE_BYTES !== 0 || slabBlocks < 1) throw new RangeError("block size must be a multiple of 64 KiB");
    this.blockBytes = blockBytes;
    this.#slabBlocks = slabBlocks;
    this.#maxSlabs = maxSlabs;
  }

  /** False when no aligned memory could be had at all. */
  get aligned(): boolean {
    return this.#aligned;
  }

  take(): Uint8Array {
    const block = this.#free.pop() ?? this.#newBlock();
    this.#lent.get(block.buffer)?.add(block.byteOffset);
    return block;
  }

  /** True for a block this pool lent and has not taken back (not ordinary memory handed out when the slabs ran out). */
  lends(block: Uint8Array): boolean {
    return this.#lent.get(block.buffer)?.has(block.byteOffset - (block.byteOffset % this.blockBytes)) === true;
  }

  /** Takes back the block a chunk lies in; false when the chunk is not from a lent block of this pool. */
  give(chunk: Uint8Array): boolean {
    const offsets = this.#lent.get(chunk.buffer);
    if (offsets === undefined) return false;
    const offset = chunk.byteOffset - (chunk.byteOffset % this.blockBytes);
    if (!offsets.delete(offset)) return false;
    this.#free.push(new Uint8Array(chunk.buffer, offset, this.blockBytes));
    return true;
  }

  #newBlock(): Uint8Array {
    // Not tracked: `give` refuses it, and it is garbage once the consumer drops it.
    if (this.#slabs >= this.#maxSlabs) return new Uint8Array(this.blockBytes);
    const pages = (this.blockBytes * this.#slabBlocks) / WASM_PAGE_BYTES;
    let memory: ArrayBuffer;
    try {
      const wasm = (globalThis as unknown as WasmGlobal).WebAssembly;
      if (wasm === undefined) throw new Error("no WebAssembly");
      memory = new wasm.Memory({ initial: pages, maximum: pages }).buffer;
    } catch {
      if (this.#slabs === 0) this.#aligned = false;
      this.#slabs = this.#maxSlabs;
      return new Uint8Array(this.blockBytes);
    }
    this.#slabs++;
    this.#lent.set(memory, new Set());
    for (let index = this.#slabBlocks - 1; index > 0; index--) this.#free.push(new Uint8Array(memory, index * this.blockBytes, this.blockBytes));
    return new Uint8Array(memory, 0, this.blockBytes);
  }
}
