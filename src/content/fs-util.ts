import { randomUUID } from "node:crypto";
import { type FileHandle, mkdir, open, rename, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { OcibootError } from "../errors.ts";
import { noteFreshBuffer } from "./young-garbage.ts";

/** The `code` of a Node system error (`ENOENT`, `EEXIST`, …), if any. */
export function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error ? String((error as { code: unknown }).code) : undefined;
}

/** The message of anything thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A fresh temporary file name in `directory`, unique across processes. */
export function temporaryPath(directory: string, prefix: string): string {
  return join(directory, `${prefix}-${randomUUID()}.tmp`);
}

/**
 * Flushes a directory entry to disk so that a rename survives a crash. Some file systems refuse
 * to open or fsync a directory; the rename is then as durable as they allow.
 */
export async function syncDirectory(directory: string): Promise<void> {
  let handle;
  try {
    handle = await open(directory, "r");
    await handle.sync();
  } catch {
    // Not supported here: nothing more can be done.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Replaces `path` with `bytes` so that readers see the old or the new content, never a torn
 * mix: write a temp file in `temporaryDirectory` (same file system; default: beside `path`),
 * fsync, rename, fsync the directory.
 */
export async function writeFileAtomically(
  path: string,
  bytes: Uint8Array | string,
  temporaryDirectory: string = dirname(path),
  mode = 0o644,
): Promise<void> {
  await mkdir(temporaryDirectory, { recursive: true });
  const temporary = temporaryPath(temporaryDirectory, "write");
  try {
    const handle = await open(temporary, "wx", mode);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new OcibootError("LOCAL_IO", `Cannot write ${path}: ${errorMessage(error)}`, { cause: error });
  }
  await syncDirectory(dirname(path));
}

/** Renames a verified temporary file onto its final name and makes the rename durable. */
export async function commitFile(temporary: string, finalPath: string): Promise<void> {
  try {
    await rename(temporary, finalPath);
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot move ${temporary} to ${finalPath}: ${errorMessage(error)}`, { cause: error });
  }
  await syncDirectory(dirname(finalPath));
}

const READ_CHUNK_BYTES = 1024 * 1024;

/** Options for {@link fileReadableStream}. */
export interface FileStreamOptions {
  /**
   * Read into two buffers of this size in turn instead of a fresh buffer per chunk. Only for a
   * consumer that takes all of a chunk before it asks for the next, since a buffer is refilled two
   * requests after it was handed out (the WebAssembly xz decoder, docs/archives.md).
   */
  reusedBufferBytes?: number;
  /** Told the bytes read so far after each chunk. */
  onRead?: (done: number) => void;
}

/**
 * A pull-driven stream of a file's bytes from `offset` to its end (ranges of an archive are read
 * by file-range.ts); the file is opened at once, so a missing file fails here.
 */
export async function fileReadableStream(path: string, offset = 0, options: FileStreamOptions = {}): Promise<ReadableStream<Uint8Array>> {
  const handle = await open(path, "r");
  let position = offset;
  const { reusedBufferBytes, onRead } = options;
  const reused = reusedBufferBytes === undefined ? undefined : [new Uint8Array(reusedBufferBytes), new Uint8Array(reusedBufferBytes)];
  let turn = 0;
  const nextBuffer = (): Uint8Array => {
    if (reused === undefined) {
      const fresh = new Uint8Array(READ_CHUNK_BYTES);
      noteFreshBuffer(fresh.byteLength);
      return fresh;
    }
    turn ^= 1;
    return reused[turn] as Uint8Array;
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const buffer = nextBuffer();
          const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
          if (bytesRead === 0) {
            await handle.close();
            controller.close();
            return;
          }
          position += bytesRead;
          controller.enqueue(bytesRead === buffer.byteLength ? buffer : buffer.subarray(0, bytesRead));
          onRead?.(position - offset);
        } catch (error) {
          await handle.close().catch(() => undefined);
          controller.error(error);
        }
      },
      async cancel() {
        await handle.close().catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Reads a small file whole, refusing one larger than `maxBytes`; undefined when it does not exist. */
export async function readBoundedFile(path: string, maxBytes: number): Promise<Uint8Array | undefined> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw new OcibootError("LOCAL_IO", `Cannot read ${path}: ${errorMessage(error)}`, { cause: error });
  }
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) {
      throw new OcibootError("UNSAFE_CONTENT", `Cannot read ${path}: ${size} bytes is more than the ${maxBytes}-byte limit`);
    }
    const buffer = new Uint8Array(size);
    return buffer.subarray(0, await readFully(handle, buffer, 0));
  } finally {
    await handle.close();
  }
}

/**
 * Fills `buffer` from the file's `position`, however many calls that takes; returns the bytes
 * read, fewer than the buffer holds only where the file ends first.
 */
export async function readFully(handle: FileHandle, buffer: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < buffer.byteLength) {
    const { bytesRead } = await handle.read(buffer, done, buffer.byteLength - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Writes all of `bytes` at `position`, however many calls that takes. */
export async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Writes all of `buffers`, in order, from `position`, however many calls that takes. */
export async function writevFully(handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  let remaining = buffers;
  let at = position;
  while (remaining.length > 0) {
    const { bytesWritten } = await handle.writev(remaining, at);
    at += bytesWritten;
    remaining = dropWritten(remaining, bytesWritten);
  }
}

/** What is left of `buffers` after the first `bytesWritten` bytes. */
export function dropWritten(buffers: Uint8Array[], bytesWritten: number): Uint8Array[] {
  let skip = bytesWritten;
  const rest: Uint8Array[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.byteLength) {
      skip -= buffer.byteLength;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}

/** A failed write to `path` as LOCAL_IO; an OcibootError stays as it is. */
export function writeError(path: string, error: unknown): OcibootError {
  if (error instanceof OcibootError) return error;
  return new OcibootError("LOCAL_IO", `Cannot write ${path}: ${errorMessage(error)}`, { cause: error });
}
