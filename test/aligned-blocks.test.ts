import { describe, expect, it } from "vitest";
import { AlignedBlockPool } from "../src/aligned-blocks.ts";

const BLOCK = 64 * 1024;

describe("AlignedBlockPool", () => {
  it("lends distinct blocks of the asked size, cut from page-aligned memory", () => {
    const pool = new AlignedBlockPool(BLOCK, 3);
    const blocks = [pool.take(), pool.take(), pool.take(), pool.take()];
    expect(pool.aligned).toBe(true);
    for (const block of blocks) {
      expect(block.byteLength).toBe(BLOCK);
      expect(block.byteOffset % BLOCK).toBe(0);
    }
    // Writing one block must not show in another.
    blocks.forEach((block, index) => block.fill(index + 1));
    expect(blocks.map((block) => block[BLOCK - 1])).toEqual([1, 2, 3, 4]);
  });

  it("takes back a block by any chunk of it, once, and lends it again", () => {
    const pool = new AlignedBlockPool(BLOCK, 2);
    const block = pool.take();
    const chunk = block.subarray(100, 5000);
    expect(pool.give(chunk)).toBe(true);
    expect(pool.give(chunk)).toBe(false);
    const again = pool.take();
    expect(again.buffer).toBe(block.buffer);
    expect(again.byteOffset).toBe(block.byteOffset);
  });

  it("refuses memory it did not lend", () => {
    const pool = new AlignedBlockPool(BLOCK, 2);
    pool.take();
    expect(pool.give(new Uint8Array(BLOCK))).toBe(false);
  });

  it("only takes whole WebAssembly pages as the block size", () => {
    expect(() => new AlignedBlockPool(4096, 2)).toThrow(RangeError);
  });
});

describe("AlignedBlockPool with a consumer that never gives blocks back", () => {
  it("keeps at most its slabs and then lends ordinary memory, which it does not hold on to", () => {
    const pool = new AlignedBlockPool(BLOCK, 2, 2);
    const blocks = Array.from({ length: 6 }, () => pool.take());
    const slabs = new Set(blocks.slice(0, 4).map((block) => block.buffer));
    expect(slabs.size).toBe(2);
    // Blocks 5 and 6 stand alone: nothing of the pool keeps them alive.
    expect(blocks[4]!.buffer).not.toBe(blocks[5]!.buffer);
    expect(blocks[4]!.buffer.byteLength).toBe(BLOCK);
    expect(pool.give(blocks[4]!)).toBe(false);
    expect(pool.aligned).toBe(true);
  });
});

describe("AlignedBlockPool.lends", () => {
  it("knows its lent blocks until they come back, and not the ordinary memory handed out past its slabs", () => {
    const pool = new AlignedBlockPool(BLOCK, 1, 1);
    const block = pool.take();
    expect(pool.lends(block.subarray(10))).toBe(true);
    const ordinary = pool.take();
    expect(pool.lends(ordinary)).toBe(false);
    pool.give(block);
    expect(pool.lends(block)).toBe(false);
  });
});
