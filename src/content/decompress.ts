import { open } from "node:fs/promises";
import type { Writable } from "node:stream";
import { OcibootError } from "../errors.ts";
import { errorCode, errorMessage, fileReadableStream } from "./fs-util.ts";
import { countingStage } from "./counting.ts";
import { gunzipStream, passingThrough } from "./node-web-streams.ts";
import { startFilterProgram, startXz } from "./xz-process.ts";
import { noteFreshBuffer } from "./young-garbage.ts";

/** How `.xz` is decoded: the system `xz` when present (fast), else WebAssembly (no native addon). */
export type XzDecoder = "auto" | "system" | "wasm";

/** What compression a file has, judged by its magic bytes, never by its name. */
export type Compression = "none" | "gzip" | "xz" | "zstd";

/** Caps on what a compressed archive may expand to. */
export interface DecompressionLimits {
  /** Never produce more than this many bytes (default 64 GiB). */
  maxBytes?: number;
  /**
   * Past 256 MiB of output, stop once the output exceeds this multiple of the compressed file's
   * size (default 200): real boot images compress 1–5×, a run of zeros 1000× and more.
   */
  maxRatio?: number;
}

/** Options for {@link openDecompressed}. */
export interface DecompressOptions extends DecompressionLimits {
  xz?: XzDecoder;
  /**
   * Told how many bytes of the (compressed) file have been read, and the file's size: progress.
   * With it, a system decoder reads the file through ociboot's pipe instead of opening it itself.
   */
  onRead?: (done: number, total: number) => void;
}

/** A decompressed view of a file and what was used to get it. */
export interface DecompressedFile {
  stream: ReadableStream<Uint8Array>;
  compression: Compression;
  /** `xz` or `zstd` (system binaries), `wasm`, `zlib` or `none`. */
  decoder: string;
}

const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const RATIO_FLOOR_BYTES = 256 * 1024 * 1024;

/**
 * Opens a file as a stream of its decompressed bytes (xz, gzip, zstd or none, by magic bytes), bounded
 * by `limits`: the stream errors with UNSAFE_CONTENT as soon as a cap is passed, and nothing is
 * ever written to disk on the way.
 */
export async function openDecompressed(path: string, options: DecompressOptions = {}): Promise<DecompressedFile> {
  const { compression, size } = await sniff(path);
  const maxBytes = options.maxBytes ?? 64 * 1024 ** 3;
  const maxRatio = options.maxRatio ?? 200;
  const cap = (stream: ReadableStream<Uint8Array>) => namingTheFile(stream.pipeThrough(capOutput(path, size, maxBytes, maxRatio)), path);
  const { onRead } = options;
  const counted = onRead ? (done: number) => onRead(done, size) : undefined;
  if (compression === "none") {
    const stream = await fileReadableStream(path);
    return { stream: cap(counted ? stream.pipeThrough(countingStage(counted)) : stream), compression, decoder: "none" };
  }
  if (compression === "gzip") {
    const gunzip = gunzipStream();
    feedFile(path, gunzip.input, counted);
    return { stream: cap(gunzip.output), compression, decoder: "zlib" };
  }
  if (compression === "zstd") return { stream: cap(await systemZstd(path, counted)), compression, decoder: "zstd" };
  const choice = options.xz ?? "auto";
  if (choice !== "wasm") {
    const system = await systemXz(path, counted);
    if (system) return { stream: cap(system), compression, decoder: "xz" };
    if (choice === "system") throw new OcibootError("UNSUPPORTED", `Cannot decompress ${path}: no xz program found`);
  }
  // A CommonJS package: Deno sees only its default export, and loading it lazily keeps start-up fast.
  const { XzReadableStream } = (await import("xz-decompress")).default;
  // Two input buffers in turn: a fresh one per chunk outlived collections while its output was
  // taken, was promoted and waited for a full collection (docs/archives.md, "The WebAssembly decoder").
  const wasm = new XzReadableStream(await fileReadableStream(path, 0, { reusedBufferBytes: FEED_CHUNK_BYTES, ...(counted ? { onRead: counted } : {}) })) as ReadableStream<Uint8Array>;
  return { stream: cap(wasm.pipeThrough(notingFreshChunks())), compression, decoder: "wasm" };
}

/**
 * Counts the decoder's output chunks as fresh buffers (young-garbage.ts): each is a new copy out
 * of the decoder's memory, dead once stored.
 */
function notingFreshChunks(): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      noteFreshBuffer(chunk.byteLength);
      controller.enqueue(chunk);
    },
  });
}

/** The compression of a file by its magic bytes, and its size; NOT_FOUND when it does not exist. */
export async function sniff(path: string): Promise<{ compression: Compression; size: number }> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    const code = errorCode(error) === "ENOENT" ? "NOT_FOUND" : "LOCAL_IO";
    throw new OcibootError(code, `Cannot open ${path}: ${errorMessage(error)}`, { cause: error });
  }
  try {
    const head = new Uint8Array(6);
    const { bytesRead } = await handle.read(head, 0, head.byteLength, 0);
    const { size } = await handle.stat();
    const starts = (magic: number[]) => bytesRead >= magic.length && magic.every((byte, position) => head[position] === byte);
    return { compression: starts(XZ_MAGIC) ? "xz" : starts(GZIP_MAGIC) ? "gzip" : starts(ZSTD_MAGIC) ? "zstd" : "none", size };
  } finally {
    await handle.close();
  }
}

/**
 * `xz -dc FILE` as a stream, or undefined when there is no `xz` to run. Only a counted read
 * (progress) feeds the file through ociboot; otherwise xz opens it itself.
 */
async function systemXz(path: string, counted: ((done: number) => void) | undefined): Promise<ReadableStream<Uint8Array> | undefined> {
  const xz = await startXz(["--decompress", "--stdout", ...(counted ? [] : ["--", path])], {
    pipeInput: counted !== undefined,
    failure: (detail) => truncatedOrCorrupt(path, new Error(detail), detail),
  });
  if (xz?.input) feedDecoder(path, xz.input, counted);
  return xz?.output;
}

/**
 * Passes the stream through, turning a decoder's own failure (zlib's "unexpected end of file",
 * the WebAssembly xz decoder's "get_next_output failed with error code 8") into an INTEGRITY error
 * that names the file: the user needs to hear that this archive is cut or damaged, not a decoder's
 * internals.
 */
function namingTheFile(stream: ReadableStream<Uint8Array>, path: string): ReadableStream<Uint8Array> {
  return passingThrough(stream, { failed: (error) => (error instanceof OcibootError ? error : truncatedOrCorrupt(path, error)) });
}

/** The error for an archive whose bytes end early or do not decode. */
export function truncatedOrCorrupt(path: string, cause: unknown, detail?: string): OcibootError {
  return new OcibootError("INTEGRITY", `Cannot read archive ${path}: it is truncated or corrupt${detail ? ` (${detail})` : ""}`, { cause });
}

/** Feeds the file into a decoder's stdin; a decoder that stops early ends the feeding (its own exit status tells why). */
function feedDecoder(path: string, stdin: Writable, counted: ((done: number) => void) | undefined): void {
  stdin.on("error", () => undefined);
  feedFile(path, stdin, counted);
}

/**
 * `zstd -dc FILE` as a stream. There is no fallback in process (no zstd decoder without a native
 * addon is well kept enough), so a missing program is refused with the way out named.
 */
async function systemZstd(path: string, counted: ((done: number) => void) | undefined): Promise<ReadableStream<Uint8Array>> {
  const zstd = await startFilterProgram("zstd", ["--decompress", "--stdout", "--quiet", ...(counted ? [] : ["--", path])], {
    pipeInput: counted !== undefined,
    failure: (detail) => truncatedOrCorrupt(path, new Error(detail), detail),
  });
  if (zstd === undefined) {
    throw new OcibootError("UNSUPPORTED", `Cannot read ${path}: it is zstd-compressed and needs the zstd program, which is not installed`);
  }
  if (zstd.input) feedDecoder(path, zstd.input, counted);
  return zstd.output;
}

/** Bytes read per call by {@link feedFile}; two such buffers are all it holds. */
const FEED_CHUNK_BYTES = 256 * 1024;

/**
 * Writes a file into a Node writable (zlib, a decoder's stdin) through two buffers used in turn:
 * one is read into while the other is being written, and a buffer is filled again only once the
 * write of its bytes has called back (zlib has consumed them, the pipe has taken them). Reading
 * into a fresh buffer each time left every one as garbage for V8 to find later, tens of MB at the
 * peak of a `.tar.gz` import (docs/archives.md). A failed read destroys `into` with the error, so
 * its reader fails; a failed write (the decoder stopped or was stopped) ends the feeding.
 */
function feedFile(path: string, into: Writable, counted: ((done: number) => void) | undefined): void {
  const write = (chunk: Uint8Array) => new Promise<void>((resolve, reject) => into.write(chunk, (error) => (error ? reject(error) : resolve())));
  const run = async () => {
    const handle = await open(path, "r");
    try {
      const buffers = [new Uint8Array(FEED_CHUNK_BYTES), new Uint8Array(FEED_CHUNK_BYTES)];
      let writing: Promise<void> = Promise.resolve();
      let position = 0;
      for (let turn = 0; ; turn ^= 1) {
        const buffer = buffers[turn] as Uint8Array;
        const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
        await writing;
        if (bytesRead === 0) break;
        position += bytesRead;
        writing = write(buffer.subarray(0, bytesRead));
        // Awaited before this buffer's next turn; a failure meanwhile must not count as unhandled.
        writing.catch(() => undefined);
        counted?.(position);
      }
      into.end();
    } finally {
      await handle.close().catch(() => undefined);
    }
  };
  run().catch((error: unknown) => {
    if (!into.destroyed) into.destroy(error instanceof Error ? error : new Error(String(error)));
  });
}

function capOutput(path: string, compressedSize: number, maxBytes: number, maxRatio: number): TransformStream<Uint8Array, Uint8Array> {
  let total = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      total += chunk.byteLength;
      if (total > maxBytes) {
        throw new OcibootError("UNSAFE_CONTENT", `Cannot read ${path}: it expands to more than ${maxBytes} bytes (decompression bomb?)`);
      }
      if (total > RATIO_FLOOR_BYTES && total > maxRatio * compressedSize) {
        throw new OcibootError(
          "UNSAFE_CONTENT",
          `Cannot read ${path}: it expands more than ${maxRatio} times its ${compressedSize} bytes (decompression bomb?)`,
        );
      }
      controller.enqueue(chunk);
    },
  });
}
