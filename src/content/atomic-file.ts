import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { OcibootError } from "../errors.ts";

/**
 * Makes a rename durable: without syncing the directory, a crash may forget the new name
 * even though the file's data reached the disk.
 */
export async function syncDirectory(directory: string): Promise<void> {
  let handle;
  try {
    handle = await open(directory, "r");
    await handle.sync();
  } catch (error) {
    // Some file systems (and Windows) refuse fsync on directories; the rename itself is still atomic.
    if (!isIgnorableSyncError(error)) throw error;
  } finally {
    await handle?.close();
  }
}

function isIgnorableSyncError(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === "EINVAL" || code === "EISDIR" || code === "EPERM" || code === "ENOTSUP";
}

/** Renames a verified temporary file onto its final name and makes both durable. */
export async function commitFile(temporaryPath: string, finalPath: string): Promise<void> {
  try {
    await rename(temporaryPath, finalPath);
    await syncDirectory(dirname(finalPath));
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot move ${temporaryPath} to ${finalPath}: ${messageOf(error)}`, { cause: error });
  }
}

/**
 * Writes small content so that readers see either the old or the new file, never a torn one:
 * temporary file in the same directory, fsync, rename, fsync directory.
 */
export async function writeFileAtomic(path: string, content: Uint8Array | string, mode = 0o644): Promise<void> {
  const temporaryPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temporaryPath, "wx", mode);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await commitFile(temporaryPath, path);
  } catch (error) {
    await rm(temporaryPath, { force: true });
    if (error instanceof OcibootError) throw error;
    throw new OcibootError("LOCAL_IO", `Cannot write ${path}: ${messageOf(error)}`, { cause: error });
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
