import { open } from "node:fs/promises";
import { OcibootError } from "../errors.ts";
import { errorCode, errorMessage, fileReadableStream } from "./fs-util.ts";
import { startXz } from "./xz-process.ts";

/** How `.xz` is decoded: the system `xz` when present (fast), else WebAssembly (no native addon). */
export type XzDecoder = "auto" | "system" | "wasm";

/** What compression a file has, judged by its magic bytes, never by its name. */
export type Compression = "none" | "gzip" | "xz";

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
}

/** A decompressed view of a file and what was used to get it. */
export interface DecompressedFile {
  stream: ReadableStream<Uint8Array>;
  compression: Compression;
  /** `xz` (system binary), `wasm`, `zlib` or `none`. */
  decoder: string;
}

const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const GZIP_MAGIC = [0x1f, 0x8b];
const RATIO_FLOOR_BYTES = 256 * 1024 * 1024;

/**
 * Opens a file as a stream of its decompressed bytes (xz, gzip or none, by magic bytes), bounded
 * by `limits`: the stream errors with UNSAFE_CONTENT as soon as a cap is passed, and nothing is
 * ever written to disk on the way.
 */
export async function openDecompressed(path: string, options: DecompressOptions = {}): Promise<DecompressedFile> {
  const { compression, size } = await sniff(path);
  const maxBytes = options.maxBytes ?? 64 * 1024 ** 3;
  const maxRatio = options.maxRatio ?? 200;
  const cap = (stream: ReadableStream<Uint8Array>) => namingTheFile(stream.pipeThrough(capOutput(path, size, maxBytes, maxRatio)), path);
  if (compression === "none") return { stream: cap(await fileReadableStream(path)), compression, decoder: "none" };
  if (compression === "gzip") {
    const gunzip = new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
    return { stream: cap((await fileReadableStream(path)).pipeThrough(gunzip)), compression, decoder: "zlib" };
  }
  const choice = options.xz ?? "auto";
  if (choice !== "wasm") {
    const system = await systemXz(path);
    if (system) return { stream: cap(system), compression, decoder: "xz" };
    if (choice === "system") throw new OcibootError("UNSUPPORTED", `Cannot decompress ${path}: no xz program found`);
  }
  // A CommonJS package: Deno sees only its default export, and loading it lazily keeps start-up fast.
  const { XzReadableStream } = (await import("xz-decompress")).default;
  const wasm = new XzReadableStream(await fileReadableStream(path)) as ReadableStream<Uint8Array>;
  return { stream: cap(wasm), compression, decoder: "wasm" };
}

async function sniff(path: string): Promise<{ compression: Compression; size: number }> {
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
    return { compression: starts(XZ_MAGIC) ? "xz" : starts(GZIP_MAGIC) ? "gzip" : "none", size };
  } finally {
    await handle.close();
  }
}

/** `xz -dc FILE` as a stream, or undefined when there is no `xz` to run. */
async function systemXz(path: string): Promise<ReadableStream<Uint8Array> | undefined> {
  const xz = await startXz(["--decompress", "--stdout", "--", path], {
    pipeInput: false,
    failure: (detail) => truncatedOrCorrupt(path, new Error(detail), detail),
  });
  return xz?.output;
}

/**
 * Passes the stream through, turning a decoder's own failure (zlib's "unexpected end of file",
 * the WebAssembly xz decoder's "get_next_output failed with error code 8") into an INTEGRITY error
 * that names the file: the user needs to hear that this archive is cut or damaged, not a decoder's
 * internals, nor the temporary store it was being read into.
 */
function namingTheFile(stream: ReadableStream<Uint8Array>, path: string): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          throw error instanceof OcibootError ? error : truncatedOrCorrupt(path, error);
        }
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** The error for an archive whose bytes end early or do not decode. */
export function truncatedOrCorrupt(path: string, cause: unknown, detail?: string): OcibootError {
  return new OcibootError("INTEGRITY", `Cannot read archive ${path}: it is truncated or corrupt${detail ? ` (${detail})` : ""}`, { cause });
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
