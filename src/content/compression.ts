import { OcibootError } from "../errors.ts";
import { gzipStage, writableInto } from "./node-web-streams.ts";
import { startFilterProgram } from "./xz-process.ts";

/** How an archive's bytes are compressed on disk. */
export type ArchiveCompression = "none" | "gzip" | "xz" | "zstd";

/** The compression a file name asks for. */
export function compressionForPath(path: string): ArchiveCompression {
  const name = path.toLowerCase();
  if (name.endsWith(".gz") || name.endsWith(".tgz")) return "gzip";
  if (name.endsWith(".xz") || name.endsWith(".txz")) return "xz";
  if (name.endsWith(".zst") || name.endsWith(".tzst")) return "zstd";
  return "none";
}

/**
 * Levels each compressor takes and the one used when none is asked for: each tool's own default
 * (docs/archives.md). zstd stops at 19: 20–22 need `--ultra` and a window too large for small
 * rescue systems to decompress.
 */
export const COMPRESSION_LEVELS = {
  gzip: { min: 1, max: 9, default: 6 },
  xz: { min: 0, max: 9, default: 6 },
  zstd: { min: 1, max: 19, default: 3 },
} as const satisfies Record<Exclude<ArchiveCompression, "none">, { min: number; max: number; default: number }>;

/** The level to compress with: `level` checked against what `compression` takes, else its default. */
export function compressionLevel(path: string, compression: ArchiveCompression, level: number | undefined): number | undefined {
  if (compression === "none") {
    if (level === undefined) return undefined;
    throw new OcibootError("USAGE", `Cannot use --compression-level ${level} for ${path}: a plain .tar is not compressed (name it .tar.xz, .tar.gz or .tar.zst)`);
  }
  const { min, max, default: fallback } = COMPRESSION_LEVELS[compression];
  if (level === undefined) return fallback;
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new OcibootError("USAGE", `Cannot use --compression-level ${level} for ${path}: ${compression} takes ${min} to ${max}`);
  }
  return level;
}

/**
 * xz's arguments for `level`: all cores, but output that does not depend on how many there are.
 * Any thread count but 1 selects xz's multi-threaded encoder, which cuts the input into blocks
 * compressed independently, so its bytes depend only on the block size; that is fixed here to
 * what `xz -T0 -N` picks by itself (three dictionaries, at least 1 MiB), so the archive equals
 * `tar -c | xz -T0 -N` on any machine. `--no-adjust` keeps a memory limit from switching to the
 * single-threaded encoder (different bytes): xz then uses fewer threads, or fails.
 */
export function xzCompressArguments(level: number): string[] {
  const dictionaryMiB = [0.25, 1, 2, 4, 4, 8, 8, 16, 32, 64][level] ?? 8;
  const blockSize = Math.max(3 * dictionaryMiB, 1) * 1024 * 1024;
  return ["--compress", "--stdout", "--threads=0", `--block-size=${blockSize}`, "--no-adjust", `-${level}`];
}

/**
 * zstd's arguments for `level`: all cores. zstd's multi-threaded mode (any `-T`) gives the same
 * bytes whatever the number of workers; only `--single-thread` differs, and it is never used.
 */
export function zstdCompressArguments(level: number): string[] {
  return ["--compress", "--stdout", "--quiet", "--threads=0", `-${level}`];
}

/** A compression stage between the tar and the file, and a way to stop it. */
export interface Compressor {
  transform: TransformStream<Uint8Array, Uint8Array> | undefined;
  stop(): void;
}

/**
 * Starts the compressor an archive at `path` needs: none, gzip through zlib (in process), or the
 * system `xz` or `zstd` on all cores. A missing program is refused here, before anything is
 * written, with the way out named.
 */
export async function startCompressor(path: string, compression: ArchiveCompression, level: number | undefined): Promise<Compressor> {
  const checked = compressionLevel(path, compression, level);
  if (compression === "none" || checked === undefined) return { transform: undefined, stop: () => undefined };
  if (compression === "gzip") return gzipStage(checked);
  const program = compression;
  const filter = await startFilterProgram(program, program === "xz" ? xzCompressArguments(checked) : zstdCompressArguments(checked), {
    pipeInput: true,
    failure: (detail) => new OcibootError("LOCAL_IO", `Cannot write ${path}: ${program} failed (${detail})`),
  });
  if (filter?.input === undefined) {
    const suffix = program === "xz" ? ".tar.xz" : ".tar.zst";
    throw new OcibootError("UNSUPPORTED", `Cannot write ${path}: ${suffix} needs the ${program} program, which is not installed; name the archive .tar.gz instead`);
  }
  // A write error (the program died) is reported by the output stream's exit check; this only keeps it from being unhandled.
  filter.input.on("error", () => undefined);
  return { transform: { writable: writableInto(filter.input, filter.kill), readable: filter.output }, stop: filter.kill };
}
