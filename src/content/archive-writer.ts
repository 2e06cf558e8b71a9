import { unlink } from "node:fs/promises";
import tarStream from "tar-stream";
import { OcibootError } from "../errors.ts";
import { referrerDescriptorOf, subjectOf } from "../oci/artifact.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseDigest } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType, Limits } from "../oci/mediatypes.ts";
import { type BlobWriter, openBlobWriter } from "./blob-writer.ts";
import { commitFile, errorCode, errorMessage } from "./fs-util.ts";
import { ingest } from "./ingest.ts";
import {
  emptyLayoutIndex,
  indexEntryOf,
  LAYOUT_NAMES,
  OCI_LAYOUT_BYTES,
  serializeLayoutIndex,
  withoutRefName,
  withTag,
  withUntaggedEntry,
} from "./layout-index.ts";
import type { WritableStore } from "./store.ts";
import { ContentVerifier, readVerified } from "./verify.ts";
import { type ArchiveCompression, type Compressor, compressionForPath, startCompressor } from "./compression.ts";
import { drained, packStream, startTarEntry, type TarEntrySink } from "./node-web-streams.ts";

export { type ArchiveCompression, compressionForPath } from "./compression.ts";

/** Options for {@link OciArchiveWriter.create}. */
export interface ArchiveWriterOptions {
  /** Default: by the file name (`.tar.gz`/`.tgz` gzip, `.tar.xz`/`.txz` xz, `.tar.zst`/`.tzst` zstd, else none). */
  compression?: ArchiveCompression;
  /** The compressor's level; default: the tool's own (xz 6, gzip 6, zstd 3). A plain tar takes none. */
  level?: number;
  /**
   * Put the layout under this one folder of the archive, with the empty `ingest/` an onmetal-image
   * store has: `onmetal` gives the shape of the Garden Linux `<name>.oci.tar.xz`. Default: the root,
   * which is what `skopeo copy oci-archive:` expects.
   */
  folder?: string;
}

/** Every entry is dated 1970 and owned by root, so the same content always gives the same archive. */
const ENTRY_TIME = new Date(0);
const FOLDER_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

type TarSink = TarEntrySink;

/**
 * An OCI image layout archive being written (`oci-layout`, `blobs/<alg>/<hex>`, `index.json` last),
 * as a write-only store, so the generic graph copy can fill it. Blobs are streamed into the tar
 * one at a time (pushes wait for each other), each checked against its descriptor on the way; the
 * compressed bytes go to `FILE.partial`, which {@link commit} fsyncs and renames to `FILE`, and
 * {@link abort} removes. A failed blob leaves the tar unusable: every later write then fails too.
 */
export class OciArchiveWriter implements WritableStore {
  readonly path: string;
  readonly description: string;
  readonly #partialPath: string;
  readonly #file: BlobWriter;
  readonly #pack: tarStream.Pack;
  readonly #prefix: string;
  /** Moves the tar bytes through the compressor into the file; settles when the tar ends. */
  readonly #output: Promise<void>;
  /** Rejects as soon as the output fails: a write waiting on a full pipe must not wait forever. */
  readonly #outputFailure: Promise<never>;
  readonly #stopCompressor: () => void;
  readonly #written = new Set<string>();
  readonly #directories = new Set<string>();
  #entries: Descriptor[] = [];
  #queue: Promise<void> = Promise.resolve();
  #failure: unknown;
  #finished = false;

  private constructor(path: string, file: BlobWriter, compressor: Compressor, prefix: string) {
    this.path = path;
    this.description = `oci-archive:${path}`;
    this.#partialPath = partialPathOf(path);
    this.#file = file;
    this.#pack = tarStream.pack();
    // A destroyed pack ends its byte stream with the error, which the output reports.
    this.#pack.on("error", () => undefined);
    this.#prefix = prefix;
    this.#stopCompressor = compressor.stop;
    const tar = packStream(this.#pack);
    this.#output = writeAll(compressor.transform ? tar.pipeThrough(compressor.transform) : tar, file);
    this.#outputFailure = this.#output.then(() => {
      throw new OcibootError("LOCAL_IO", `Cannot write ${path}: the archive ended before it was complete`);
    });
    this.#output.catch(() => undefined);
    this.#outputFailure.catch(() => undefined);
  }

  /**
   * Starts an archive at `FILE.partial`. Fails before anything is written when `xz` or `zstd` is
   * needed and missing (UNSUPPORTED), when the level does not suit the compression (USAGE), or
   * when `FILE.partial` exists: another copy is writing it, or an interrupted one left it behind
   * (LOCAL_IO).
   */
  static async create(path: string, options: ArchiveWriterOptions = {}): Promise<OciArchiveWriter> {
    const prefix = options.folder === undefined ? "" : `${checkFolder(options.folder)}/`;
    const compressor = await startCompressor(path, options.compression ?? compressionForPath(path), options.level);
    let file: BlobWriter;
    try {
      // An archive can be as large as its images: written past the page cache where possible.
      file = await openBlobWriter(partialPathOf(path), { start: 0, exclusive: true });
    } catch (error) {
      compressor.stop();
      const cause = error instanceof OcibootError && error.cause !== undefined ? error.cause : error;
      const reason = errorCode(cause) === "EEXIST"
        ? `${partialPathOf(path)} exists (another copy is writing it, or an interrupted one left it; remove it)`
        : errorMessage(cause);
      throw new OcibootError("LOCAL_IO", `Cannot write ${path}: ${reason}`, { cause });
    }
    const writer = new OciArchiveWriter(path, file, compressor, prefix);
    try {
      await writer.#exclusive(async () => {
        if (prefix !== "") await writer.#addDirectory("");
        await writer.#addSmallFile("oci-layout", OCI_LAYOUT_BYTES);
        if (prefix !== "") await writer.#addDirectory("ingest");
      });
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer;
  }

  async exists(descriptor: Descriptor): Promise<boolean> {
    return this.#written.has(descriptor.digest);
  }

  /**
   * Adds a blob, manifest or index, verified against `descriptor` as it streams into the tar. A
   * manifest with a `subject` is also listed untagged in index.json, as `oras --oci-layout`
   * keeps referrers. Content already in the archive is skipped.
   */
  async push(descriptor: Descriptor, content: ReadableStream<Uint8Array>, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.#exclusive(async () => {
      if (this.#written.has(descriptor.digest)) {
        await content.cancel().catch(() => undefined);
        return;
      }
      if (isManifestMediaType(descriptor.mediaType) || isIndexMediaType(descriptor.mediaType)) {
        const bytes = await readVerified(content, descriptor, Limits.manifestBytes);
        await this.#addBlob(descriptor, new Blob([bytes]).stream(), options.signal);
        const parsed = parseManifest(bytes, descriptor.mediaType);
        if (subjectOf(parsed) !== undefined) this.#entries = withUntaggedEntry(this.#entries, withoutRefName(referrerDescriptorOf(descriptor, parsed)));
      } else {
        await this.#addBlob(descriptor, content, options.signal);
      }
      this.#written.add(descriptor.digest);
    });
  }

  /** Lists a manifest in index.json under a reference name, replacing an entry of the same name. */
  async tag(descriptor: Descriptor, reference: string): Promise<void> {
    this.#checkWritten(descriptor, `tag it as ${reference}`);
    this.#entries = withTag(this.#entries, indexEntryOf(descriptor), reference);
  }

  /** Lists a manifest in index.json without a name (once). */
  async addUntaggedEntry(descriptor: Descriptor): Promise<void> {
    this.#checkWritten(descriptor, "list it");
    this.#entries = withUntaggedEntry(this.#entries, indexEntryOf(descriptor));
  }

  /** Writes index.json, ends the tar, waits for the compressor, fsyncs and renames `FILE.partial` to `FILE`. */
  async commit(): Promise<void> {
    await this.#exclusive(async () => {
      const index = serializeLayoutIndex({ fields: emptyLayoutIndex().fields, manifests: this.#entries });
      await this.#addSmallFile("index.json", index);
      this.#finished = true;
      this.#pack.finalize();
      await this.#output;
    });
    try {
      await this.#file.finish();
    } catch (error) {
      throw new OcibootError("LOCAL_IO", `Cannot write ${this.path}: ${errorMessage(error)}`, { cause: error });
    } finally {
      await this.#file.close();
    }
    await commitFile(this.#partialPath, this.path);
  }

  /** Stops writing and removes `FILE.partial`; `FILE` is never touched. */
  async abort(): Promise<void> {
    this.#finished = true;
    this.#failure ??= new OcibootError("INTERNAL", `Cannot write ${this.path}: aborted`);
    this.#pack.destroy(new Error("archive aborted"));
    this.#stopCompressor();
    await this.#output.catch(() => undefined);
    await this.#file.close();
    await unlink(this.#partialPath).catch(() => undefined);
  }

  /** Runs tar writes one after another; after a failure nothing more is written. */
  #exclusive(action: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(async () => {
      if (this.#failure !== undefined) {
        throw new OcibootError("LOCAL_IO", `Cannot add to ${this.path}: an earlier write failed (${errorMessage(this.#failure)})`);
      }
      if (this.#finished) throw new OcibootError("INTERNAL", `Cannot add to ${this.path}: the archive is closed`);
      try {
        await action();
      } catch (error) {
        this.#failure = error;
        throw error;
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #checkWritten(descriptor: Descriptor, what: string): void {
    if (!this.#written.has(descriptor.digest)) {
      throw new OcibootError("NOT_FOUND", `Cannot ${what} in ${this.path}: ${descriptor.digest} is not in the archive`);
    }
  }

  async #addBlob(descriptor: Descriptor, content: ReadableStream<Uint8Array>, signal: AbortSignal | undefined): Promise<void> {
    const { algorithm, hex } = parseDigest(descriptor.digest);
    await this.#addDirectory("blobs");
    await this.#addDirectory(`blobs/${algorithm}`);
    const { sink, written } = this.#startEntry({ name: `${this.#prefix}blobs/${algorithm}/${hex}`, size: descriptor.size });
    // Checked before writing (content/ingest.ts), so not one byte past the declared size reaches the tar.
    await ingest(
      content,
      new ContentVerifier(descriptor),
      {
        write: async (chunk) => {
          if (!sink.write(chunk)) await this.#whileOutputWorks(drained(sink));
        },
        commit: async () => {
          sink.end(undefined);
          await this.#whileOutputWorks(written);
        },
        abort: async (error) => {
          sink.destroy(error);
        },
      },
      { where: this.path, ...(signal ? { signal } : {}) },
    );
  }

  async #addSmallFile(name: string, bytes: Uint8Array): Promise<void> {
    const { sink, written } = this.#startEntry({ name: `${this.#prefix}${name}`, size: bytes.byteLength });
    sink.end(bytes);
    await this.#whileOutputWorks(written);
  }

  /** A directory entry (once): tools that extract the archive get the layout's folders as the spec shows them. */
  async #addDirectory(name: string): Promise<void> {
    if (this.#directories.has(name)) return;
    this.#directories.add(name);
    const { sink, written } = this.#startEntry({ name: `${this.#prefix}${name}${name === "" ? "" : "/"}`, type: "directory", mode: 0o755 });
    sink.end(undefined);
    await this.#whileOutputWorks(written);
  }

  #startEntry(header: { name: string; size?: number; type?: "file" | "directory"; mode?: number }): { sink: TarSink; written: Promise<void> } {
    return startTarEntry(this.#pack, { mode: 0o644, ...header, mtime: ENTRY_TIME, uid: 0, gid: 0, uname: "", gname: "" });
  }

  #whileOutputWorks<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.#outputFailure]);
  }
}

async function writeAll(stream: ReadableStream<Uint8Array>, file: BlobWriter): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      await file.add(value);
    }
  } catch (error) {
    await reader.cancel(error).catch(() => undefined);
    if (error instanceof OcibootError) throw error;
    throw new OcibootError("LOCAL_IO", `Cannot write the archive: ${errorMessage(error)}`, { cause: error });
  }
}

function partialPathOf(path: string): string {
  return `${path}.partial`;
}

function checkFolder(folder: string): string {
  if (!FOLDER_NAME.test(folder) || LAYOUT_NAMES.has(folder)) {
    throw new OcibootError("USAGE", `Cannot use archive folder "${folder.slice(0, 80)}": name one plain folder such as onmetal (not ${[...LAYOUT_NAMES].join(", ")})`);
  }
  return folder;
}
