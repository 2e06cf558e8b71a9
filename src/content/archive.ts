import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import tarStream from "tar-stream";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseDigest } from "../oci/digest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { type DecompressOptions, openDecompressed, truncatedOrCorrupt } from "./decompress.ts";
import { checkLayoutFile, LAYOUT_NAMES, type LayoutIndex, parseLayoutIndex } from "./layout-index.ts";
import { ContentVerifier, verifiedAtSource } from "./verify.ts";

/**
 * One accepted entry of an OCI layout archive. A blob's `content` is verified against the digest
 * its path names and the size its header declares: the stream errors with INTEGRITY at its end
 * on any mismatch. Bytes a consumer leaves unread are drained and verified all the same.
 */
export type ArchiveEntry =
  | { kind: "blob"; path: string; descriptor: Descriptor; content: ReadableStream<Uint8Array> }
  | { kind: "index"; path: string; bytes: Uint8Array }
  | { kind: "layout"; path: string; bytes: Uint8Array };

/** Options for {@link readOciArchive}. */
export interface ArchiveReadOptions extends DecompressOptions {
  /** index.json larger than this is refused (default 4 MiB). */
  maxIndexBytes?: number;
  /** At most this many tar entries (default 100 000). */
  maxEntries?: number;
}

/** Directories tolerated inside the layout: empty ones onmetal-image (`ingest`) and ociboot (`.ociboot`) leave. */
const ALLOWED_DIRECTORIES = new Set(["", "blobs", "blobs/sha256", "blobs/sha512", "ingest", ".ociboot", ".ociboot/tmp"]);
const MAX_LAYOUT_FILE_BYTES = 4096;
const MAX_PATH_LENGTH = 4096;

/**
 * Reads an OCI image layout archive (`.tar`, `.tar.gz`, `.tar.xz`, as the layout itself or under one
 * top folder such as `onmetal/`) as a stream, never extracting it. Only regular files named
 * `blobs/<alg>/<hex>`, `index.json` and `oci-layout` are accepted (plus empty directories); links,
 * devices, absolute paths, `..`, oversized metadata and archives that expand beyond the limits
 * fail with UNSAFE_CONTENT before anything of theirs is used.
 *
 * Consume or cancel each blob's `content` before asking for the next entry.
 */
export async function* readOciArchive(path: string, options: ArchiveReadOptions = {}): AsyncGenerator<ArchiveEntry> {
  const { stream } = await openDecompressed(path, options);
  const source = Readable.fromWeb(stream as NodeReadableStream<Uint8Array>);
  const extract = tarStream.extract();
  source.on("error", (error) => extract.destroy(error));
  source.pipe(extract);
  const policy = new ArchivePolicy(path, options);
  try {
    for await (const tarEntry of extract) {
      const entry = tarEntry as unknown as AsyncIterable<Uint8Array> & { header: tarStream.Header };
      const accepted = policy.accept(entry.header);
      if (accepted.kind === "skip") {
        await drain(entry);
        continue;
      }
      if (accepted.kind !== "blob") {
        yield { kind: accepted.kind, path: accepted.path, bytes: await readSmall(entry, accepted.path, accepted.maxBytes, path) };
        continue;
      }
      const verifier = new ContentVerifier(accepted.descriptor);
      const iterator = entry[Symbol.asyncIterator]();
      let finished = false;
      const content = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            let next: IteratorResult<Uint8Array>;
            try {
              next = await iterator.next();
            } catch (error) {
              // The tar ends inside this blob, or the bytes below it stopped decoding.
              throw error instanceof OcibootError ? error : truncatedOrCorrupt(path, error);
            }
            if (next.done) {
              finished = true;
              verifier.finish();
              controller.close();
              return;
            }
            verifier.update(next.value);
            controller.enqueue(next.value);
          },
        },
        { highWaterMark: 0 },
      );
      // The content checks itself, so a store taking it need not hash the bytes again.
      yield { kind: "blob", path: accepted.path, descriptor: accepted.descriptor, content: verifiedAtSource(content, accepted.descriptor) };
      if (!finished) {
        // The consumer stopped early (it had the blob already): the rest must still pass the check.
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
          verifier.update(next.value);
        }
        verifier.finish();
      }
    }
  } catch (error) {
    if (error instanceof OcibootError) throw error;
    throw truncatedOrCorrupt(path, error);
  } finally {
    extract.destroy();
    source.destroy();
  }
}

type Accepted =
  | { kind: "skip" }
  | { kind: "blob"; path: string; descriptor: Descriptor }
  | { kind: "index" | "layout"; path: string; maxBytes: number };

/** What {@link ArchivePolicy} needs of a tar header, from tar-stream or from the seeking scan (archive-tar.ts). */
export interface TarHeaderFields {
  name: string;
  type?: string | null;
  size?: number;
}

/**
 * The rules every tar header must pass, with the state they need (top folder, counts, duplicates):
 * one set of rules for the streaming reader and the reader by offset.
 */
export class ArchivePolicy {
  readonly #archive: string;
  readonly #maxIndexBytes: number;
  readonly #maxEntries: number;
  #top: string | undefined;
  #entries = 0;
  readonly #seenMetadata = new Set<string>();

  constructor(archive: string, options: ArchiveReadOptions) {
    this.#archive = archive;
    this.#maxIndexBytes = options.maxIndexBytes ?? Limits.manifestBytes;
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  accept(header: TarHeaderFields): Accepted {
    if (++this.#entries > this.#maxEntries) throw this.#unsafe(`more than ${this.#maxEntries} entries`);
    const name = header.name;
    if (name.length > MAX_PATH_LENGTH) throw this.#unsafe(`an entry name is longer than ${MAX_PATH_LENGTH} characters`);
    const type = header.type ?? "file";
    if (type !== "file" && type !== "directory") {
      throw this.#unsafe(`entry ${quote(name)} is a ${type}; only regular files and directories are accepted`);
    }
    const parts = splitSafePath(name, (reason) => this.#unsafe(`entry ${quote(name)} ${reason}`));
    const relative = this.#withinLayout(parts, name);
    const joined = relative.join("/");
    if (type === "directory") {
      if (!ALLOWED_DIRECTORIES.has(joined)) throw this.#unsafe(`directory ${quote(name)} does not belong in an OCI image layout`);
      return { kind: "skip" };
    }
    const size = header.size ?? 0;
    if (joined === "index.json" || joined === "oci-layout") {
      if (this.#seenMetadata.has(joined)) throw this.#unsafe(`${joined} appears twice`);
      this.#seenMetadata.add(joined);
      const maxBytes = joined === "index.json" ? this.#maxIndexBytes : MAX_LAYOUT_FILE_BYTES;
      if (size > maxBytes) throw this.#unsafe(`${joined} has ${size} bytes, more than the ${maxBytes}-byte limit`);
      return { kind: joined === "index.json" ? "index" : "layout", path: name, maxBytes };
    }
    if (relative.length === 3 && relative[0] === "blobs") {
      let digest;
      try {
        digest = parseDigest(`${relative[1]}:${relative[2]}`).digest;
      } catch (error) {
        if (error instanceof OcibootError && error.code === "UNSUPPORTED") {
          throw new OcibootError("UNSUPPORTED", `Cannot import ${this.#archive}: blob ${quote(name)} uses a digest algorithm other than sha256 or sha512`);
        }
        throw this.#unsafe(`${quote(name)} is not named by a sha256 or sha512 digest`);
      }
      return { kind: "blob", path: name, descriptor: { mediaType: "application/octet-stream", digest, size } };
    }
    throw this.#unsafe(`file ${quote(name)} does not belong in an OCI image layout`);
  }

  /** Strips the archive's single top folder (decided by the first entry) and refuses anything outside it. */
  #withinLayout(parts: string[], name: string): string[] {
    const first = parts[0];
    if (this.#top === undefined && first !== undefined) this.#top = LAYOUT_NAMES.has(first) ? "" : first;
    if (!this.#top || parts.length === 0) return parts;
    if (first !== this.#top) throw this.#unsafe(`entry ${quote(name)} lies outside the layout folder ${quote(this.#top)}`);
    return parts.slice(1);
  }

  #unsafe(reason: string): OcibootError {
    return new OcibootError("UNSAFE_CONTENT", `Cannot import ${this.#archive}: ${reason}`);
  }
}

/**
 * The index.json of an archive, once its `oci-layout` passed the one check (layout-index.ts):
 * NOT_FOUND when the archive holds neither file, INVALID_MANIFEST without index.json.
 */
export function archiveLayoutIndex(archive: string, files: { layout?: Uint8Array | undefined; index?: Uint8Array | undefined }, action: "import" | "read"): LayoutIndex {
  if (!files.layout && !files.index) {
    throw new OcibootError("NOT_FOUND", `Cannot ${action} ${archive}: it holds no OCI image layout (no oci-layout, no index.json)`);
  }
  checkLayoutFile(files.layout, `${archive}: oci-layout`);
  if (!files.index) throw new OcibootError("INVALID_MANIFEST", `Cannot ${action} ${archive}: no index.json; not an OCI image layout archive`);
  return parseLayoutIndex(files.index, `${archive}: index.json`);
}

/** Path components of a tar name, refusing absolute paths, `..`, empty and odd components. */
function splitSafePath(name: string, fail: (reason: string) => OcibootError): string[] {
  if (name.startsWith("/")) throw fail("has an absolute path");
  if (name.includes("\\") || name.includes("\0")) throw fail("has a backslash or NUL in its path");
  let rest = name;
  while (rest.startsWith("./")) rest = rest.slice(2);
  if (rest === ".") rest = "";
  if (rest.endsWith("/")) rest = rest.slice(0, -1);
  if (rest === "") return [];
  const parts = rest.split("/");
  for (const part of parts) {
    if (part === "..") throw fail("escapes with ..");
    if (part === "" || part === ".") throw fail("has an empty or . component");
  }
  return parts;
}

async function readSmall(entry: AsyncIterable<Uint8Array>, name: string, maxBytes: number, archive: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of entry) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new OcibootError("UNSAFE_CONTENT", `Cannot import ${archive}: ${name} is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entry) {
    // Directories carry no data; this only moves the parser on.
  }
}

function quote(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 117)}...` : text);
}
