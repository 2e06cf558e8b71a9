import { open } from "node:fs/promises";
import { OcibootError } from "../errors.ts";
import { truncatedOrCorrupt } from "./decompress.ts";
import { errorMessage, readFully } from "./fs-util.ts";

/** One entry of a tar file as the scan sees it: its header, and where its data lies in the file. */
export interface TarEntry {
  name: string;
  /** `file`, `directory`, `link`, `symlink`, …; `type-<flag>` for a type flag no tar reader here knows. */
  type: string;
  size: number;
  /** Byte offset of the entry's data in the file. */
  offset: number;
}

const BLOCK = 512;
/** A pax or GNU long-name record larger than this is refused: real ones hold a path and a few numbers. */
const MAX_EXTENDED_HEADER_BYTES = 1024 * 1024;

const TYPES: Record<string, string> = {
  "0": "file",
  "\0": "file",
  "7": "contiguous-file",
  "1": "link",
  "2": "symlink",
  "3": "character-device",
  "4": "block-device",
  "5": "directory",
  "6": "fifo",
};

/**
 * Walks the headers of an uncompressed tar by seeking: each 512-byte header is read, the entry's
 * data skipped, so a file of any size is scanned in a few reads per entry and nothing is copied.
 * ustar names with their prefix, pax `x`/`g` records (path, size) and GNU `L` long names are
 * applied as tar-stream applies them. A header with a bad checksum, data that runs past the end of
 * the file, or a file that ends without the end-of-archive block is INTEGRITY ("truncated or
 * corrupt", naming the file). `onEntry` decides about each entry before the next header is read;
 * what it throws ends the scan.
 */
export async function scanTar(path: string, onEntry: (entry: TarEntry) => void): Promise<void> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot open ${path}: ${errorMessage(error)}`, { cause: error });
  }
  try {
    const fileSize = (await handle.stat()).size;
    const read = async (position: number, length: number): Promise<Uint8Array> => {
      if (position + length > fileSize) throw truncatedOrCorrupt(path, new Error("ends inside an entry"), "it ends inside an entry");
      const bytes = new Uint8Array(length);
      if ((await readFully(handle, bytes, position)) < length) throw truncatedOrCorrupt(path, new Error("short read"));
      return bytes;
    };
    let position = 0;
    let globalPax: Record<string, string> = {};
    let pax: Record<string, string> | undefined;
    let longName: string | undefined;
    for (;;) {
      if (position + BLOCK > fileSize) throw truncatedOrCorrupt(path, new Error("no end-of-archive block"), "it ends without the end-of-archive block");
      const header = await read(position, BLOCK);
      if (header.every((byte) => byte === 0)) return;
      const decoded = decodeHeader(header, path);
      const dataOffset = position + BLOCK;
      const extended = () => {
        if (decoded.size > MAX_EXTENDED_HEADER_BYTES) {
          throw new OcibootError("UNSAFE_CONTENT", `Cannot import ${path}: an extended tar header has ${decoded.size} bytes`);
        }
        return read(dataOffset, decoded.size);
      };
      if (decoded.type === "pax-header") {
        pax = { ...globalPax, ...decodePax(await extended()) };
      } else if (decoded.type === "pax-global-header") {
        globalPax = { ...globalPax, ...decodePax(await extended()) };
      } else if (decoded.type === "gnu-long-path") {
        longName = cString(await extended());
      } else if (decoded.type === "gnu-long-link-path") {
        // Only links have link names, and links are refused by name and type below.
        await extended();
      } else {
        const attributes = pax ?? globalPax;
        const name = longName ?? attributes["path"] ?? decoded.name;
        const size = attributes["size"] !== undefined ? Number.parseInt(attributes["size"], 10) : decoded.size;
        if (!Number.isSafeInteger(size) || size < 0) throw truncatedOrCorrupt(path, new Error("bad size"), `entry ${JSON.stringify(name.slice(0, 120))} has no valid size`);
        if (dataOffset + size > fileSize) throw truncatedOrCorrupt(path, new Error("ends inside an entry"), "it ends inside an entry");
        // Old tars mark a directory by a trailing slash on a regular entry.
        const type = decoded.type === "file" && name.endsWith("/") ? "directory" : decoded.type;
        onEntry({ name, type, size, offset: dataOffset });
        pax = undefined;
        longName = undefined;
        position = dataOffset + padded(size);
        continue;
      }
      position = dataOffset + padded(decoded.size);
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

function decodeHeader(block: Uint8Array, path: string): { name: string; type: string; size: number } {
  let sum = 8 * 0x20;
  for (let index = 0; index < BLOCK; index++) if (index < 148 || index >= 156) sum += block[index] as number;
  if (sum !== decodeNumber(block.subarray(148, 156))) throw truncatedOrCorrupt(path, new Error("bad header checksum"), "a tar header's checksum does not match");
  let name = cString(block.subarray(0, 100));
  const magic = new TextDecoder().decode(block.subarray(257, 263));
  // POSIX ustar splits long names into prefix and name; GNU's format keeps other fields there.
  if (magic === "ustar\0" && block[345] !== 0) name = `${cString(block.subarray(345, 500))}/${name}`;
  const flag = String.fromCharCode(block[156] as number);
  const type = TYPES[flag] ?? { x: "pax-header", g: "pax-global-header", L: "gnu-long-path", N: "gnu-long-path", K: "gnu-long-link-path" }[flag] ?? `type-${JSON.stringify(flag)}`;
  const size = decodeNumber(block.subarray(124, 136));
  if (!Number.isSafeInteger(size) || size < 0) throw truncatedOrCorrupt(path, new Error("bad size"), "a tar header has no valid size");
  return { name, type, size };
}

/** Octal, space- or NUL-terminated; or GNU base-256 when the first byte's high bit is set. */
function decodeNumber(field: Uint8Array): number {
  if (((field[0] as number) & 0x80) !== 0) {
    if (field[0] !== 0x80) return Number.NaN;
    let value = 0;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = new TextDecoder().decode(field).replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  return /^[0-7]+$/.test(text) ? Number.parseInt(text, 8) : Number.NaN;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** pax records: `<length> <key>=<value>\n`, the length counting the whole record. */
function decodePax(bytes: Uint8Array): Record<string, string> {
  const result: Record<string, string> = {};
  let rest = bytes;
  while (rest.length > 0) {
    const space = rest.indexOf(0x20);
    const length = Number.parseInt(new TextDecoder().decode(rest.subarray(0, space < 0 ? 0 : space)), 10);
    if (!(length > space + 1) || length > rest.length) break;
    const record = new TextDecoder().decode(rest.subarray(space + 1, length - 1));
    const equals = record.indexOf("=");
    if (equals < 0) break;
    result[record.slice(0, equals)] = record.slice(equals + 1);
    rest = rest.subarray(length);
  }
  return result;
}
