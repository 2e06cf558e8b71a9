import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * Keeping dead read buffers from piling up while a large file streams through (docs/archives.md,
 * "Peak memory").
 *
 * Every chunk read from a file or a decoder (zlib, a pipe from xz) is a fresh ArrayBuffer that is
 * dead a moment later, but V8 frees such buffers only when it collects its young generation, and
 * a stream that allocates little else gives it no reason to: it waits until 32 MiB of them have
 * accumulated (a limit built into V8, the same whatever `--max-semi-space-size` says). Reading a
 * 300 MiB `.tar` thus held about 31 MB of dead buffers at its peak. Asking for a young-generation collection every
 * {@link COLLECT_EVERY_BYTES} of fresh buffers caps that at a few MB; each collection takes well
 * under a millisecond, because almost nothing in the young generation is alive.
 *
 * The request needs V8's `gc` function, which a context created after `--expose-gc` is set
 * carries (Node and Deno alike); where it cannot be had, nothing is done and V8's own limit
 * applies, as before.
 */
const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;

type Collector = (options: { type: "minor" }) => void;

let collector: Collector | null | undefined;
let freshBytes = 0;

/** Notes `bytes` of freshly allocated buffer that will be garbage soon (a chunk read from a file or a decoder). */
export function noteFreshBuffer(bytes: number): void {
  freshBytes += bytes;
  if (freshBytes < COLLECT_EVERY_BYTES) return;
  freshBytes = 0;
  collector ??= loadCollector();
  collector?.({ type: "minor" });
}

function loadCollector(): Collector | null {
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? (gc as Collector) : null;
  } catch {
    return null;
  }
}
