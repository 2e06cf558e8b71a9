import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import tarStream from "tar-stream";
import { errorCode, errorMessage, fileReadableStream, readBoundedFile } from "../content/fs-util.ts";
import type { OciLayoutStore } from "../content/layout.ts";
import { drained, gzipStage, packStream, startTarEntry } from "../content/node-web-streams.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { type Digest, sha256Digest } from "../oci/digest.ts";
import { MediaType } from "../oci/mediatypes.ts";
import { encodeGoManifest } from "../oci/onmetal.ts";
import { parseOsRelease } from "./os-release.ts";
import { addUntaggedEntry, normalizeTagName } from "./store-ops.ts";

/** The three build files an info image holds. */
export interface InfoImageFiles {
  osRelease: string;
  buildLog: string;
  packageManifest: string;
}

/**
 * Where each file lies inside the image. os-release where every distribution and `podman run …
 * cat /etc/os-release` look for it; the build log and the package list beside each other under
 * the directory the Garden Linux build gives its own data.
 */
export const INFO_IMAGE_PATHS: Readonly<Record<keyof InfoImageFiles, string>> = {
  osRelease: "etc/os-release",
  buildLog: "usr/share/gardenlinux/build.log",
  packageManifest: "usr/share/gardenlinux/packages.manifest",
};

const DIRECTORIES = ["etc/", "usr/", "usr/share/", "usr/share/gardenlinux/"];
const FILE_LABELS: Readonly<Record<keyof InfoImageFiles, string>> = {
  osRelease: "os-release",
  buildLog: "build log",
  packageManifest: "package manifest",
};
/** os-release is a few hundred bytes; it is read whole for the labels, so it is bounded. */
const OS_RELEASE_MAX_BYTES = 64 * 1024;

/** Options for {@link buildInfoImage}. */
export interface InfoImageOptions {
  /** The reference the image is tagged with in the store. */
  tag: string;
  /** `architecture`, `os` (and variant) of the image config. */
  platform: Platform;
  /**
   * RFC 3339 time for the config's `created` and history, also the files' mtime. Without it the
   * config has no `created` and the files are dated 1970, so equal inputs give an equal digest.
   */
  created?: string;
  /** A manifest the image describes (the boot image it was built with): its `subject`. */
  subject?: Descriptor;
  signal?: AbortSignal;
}

/** What {@link buildInfoImage} stored. */
export interface InfoImageResult {
  descriptor: Descriptor;
  reference: string;
  config: Descriptor;
  layer: Descriptor;
  /** sha256 of the uncompressed tar, as `rootfs.diff_ids` names it. */
  diffId: Digest;
}

/**
 * Builds a small, real container image holding a build's os-release, build log and package list
 * (docs/formats.md#referrers, the Garden Linux wish for something docker and podman can pull): one gzip tar
 * layer, an OCI image config with `rootfs.diff_ids`, os and architecture, tagged in the store.
 * The tar is written as the files are read, hashed uncompressed (diff_id) and compressed (digest)
 * on its way into the store, never held whole in memory. Entries are owned by root and dated
 * `created` (or 1970); gzip carries no name or time: the same inputs give the same digest.
 */
export async function buildInfoImage(store: OciLayoutStore, files: InfoImageFiles, options: InfoImageOptions): Promise<InfoImageResult> {
  const reference = normalizeTagName(options.tag);
  const sizes = await statInputs(files);
  const osRelease = parseOsRelease(await readOsRelease(files.osRelease));
  const mtime = options.created === undefined ? new Date(0) : new Date(options.created);
  const { layer, diffId } = await ingestLayer(store, files, sizes, mtime, options.signal);
  const config = await store.ingestBytes(encodeImageConfig(options, diffId, osRelease), MediaType.ociConfig);
  const descriptor = await store.ingestBytes(encodeGoManifest(MediaType.ociManifest, config, [layer], undefined, options.subject), MediaType.ociManifest);
  await addUntaggedEntry(store, descriptor);
  await store.tag(descriptor, reference);
  return { descriptor, reference, config, layer, diffId };
}

type Sizes = Record<keyof InfoImageFiles, number>;

async function statInputs(files: InfoImageFiles): Promise<Sizes> {
  const sizes: Partial<Sizes> = {};
  for (const kind of Object.keys(INFO_IMAGE_PATHS) as Array<keyof InfoImageFiles>) {
    const path = files[kind];
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new OcibootError("USAGE", `Cannot read the ${FILE_LABELS[kind]} ${path}: not a regular file`);
      sizes[kind] = info.size;
    } catch (error) {
      if (error instanceof OcibootError) throw error;
      const code = errorCode(error) === "ENOENT" ? "NOT_FOUND" : "LOCAL_IO";
      throw new OcibootError(code, `Cannot read the ${FILE_LABELS[kind]} ${path}: ${errorMessage(error)}`, { cause: error });
    }
  }
  return sizes as Sizes;
}

async function readOsRelease(path: string): Promise<string> {
  const bytes = await readBoundedFile(path, OS_RELEASE_MAX_BYTES);
  if (bytes === undefined) throw new OcibootError("NOT_FOUND", `Cannot read the os-release ${path}: it vanished`);
  return new TextDecoder().decode(bytes);
}

/** Tar → diff_id hash → gzip → store, with the tar filled while the store takes its bytes. */
async function ingestLayer(
  store: OciLayoutStore,
  files: InfoImageFiles,
  sizes: Sizes,
  mtime: Date,
  signal: AbortSignal | undefined,
): Promise<{ layer: Descriptor; diffId: Digest }> {
  const pack = tarStream.pack();
  // A destroyed pack ends its byte stream with the error, which the ingest reports.
  pack.on("error", () => undefined);
  const diffHash = createHash("sha256");
  const hashing = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      diffHash.update(chunk);
      controller.enqueue(chunk);
    },
  });
  const gzip = gzipStage();
  const tar = packStream(pack).pipeThrough(hashing).pipeThrough(gzip.transform);
  const ingesting = store.ingest(tar, MediaType.ociLayerTarGzip, signal ? { signal } : {});
  ingesting.catch(() => undefined);
  try {
    // The ingest ends only after finalize; settling earlier means it failed.
    await Promise.race([writeEntries(pack, files, sizes, mtime, signal), ingesting.then(() => new Promise<never>(() => undefined))]);
    pack.finalize();
  } catch (error) {
    pack.destroy(error instanceof Error ? error : new Error(String(error)));
    gzip.stop();
    await ingesting.catch(() => undefined);
    throw error;
  }
  const layer = await ingesting;
  return { layer, diffId: sha256Digest(diffHash.digest("hex")) };
}

async function writeEntries(pack: tarStream.Pack, files: InfoImageFiles, sizes: Sizes, mtime: Date, signal: AbortSignal | undefined): Promise<void> {
  const owner = { mtime, uid: 0, gid: 0, uname: "", gname: "" };
  for (const name of DIRECTORIES) {
    const { sink, written } = startTarEntry(pack, { ...owner, name, type: "directory", mode: 0o755 });
    sink.end(undefined);
    await written;
  }
  for (const kind of Object.keys(INFO_IMAGE_PATHS) as Array<keyof InfoImageFiles>) {
    const { sink, written } = startTarEntry(pack, { ...owner, name: INFO_IMAGE_PATHS[kind], size: sizes[kind], mode: 0o644 });
    await copyFileInto(sink, files[kind], sizes[kind], FILE_LABELS[kind], signal);
    sink.end(undefined);
    await written;
  }
}

/** Streams a file into a tar entry of the size it had when stat'ed; a file that changed meanwhile is refused. */
async function copyFileInto(
  sink: ReturnType<typeof startTarEntry>["sink"],
  path: string,
  size: number,
  label: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  let stream: ReadableStream<Uint8Array>;
  try {
    stream = await fileReadableStream(path);
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot read the ${label} ${path}: ${errorMessage(error)}`, { cause: error });
  }
  const reader = stream.getReader();
  let copied = 0;
  try {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const { done, value } = await reader.read();
      if (done) break;
      copied += value.byteLength;
      if (copied > size) break;
      if (!sink.write(value)) await drained(sink);
    }
  } catch (error) {
    await reader.cancel(error).catch(() => undefined);
    throw error;
  } finally {
    reader.releaseLock();
  }
  if (copied !== size) {
    await stream.cancel().catch(() => undefined);
    throw new OcibootError("LOCAL_IO", `Cannot read the ${label} ${path}: it changed while being read (${size} bytes expected)`);
  }
}

/**
 * The OCI image config (image-spec v1.1 config.md), fields in Go struct order. Labels name the
 * OS from os-release so that `podman inspect` shows what build the image describes.
 */
function encodeImageConfig(options: InfoImageOptions, diffId: Digest, osRelease: Record<string, string>): Uint8Array {
  const labels: Record<string, string> = {};
  const title = osRelease["NAME"];
  const version = osRelease["VERSION"] ?? osRelease["VERSION_ID"];
  if (title !== undefined && title !== "") labels["org.opencontainers.image.title"] = title;
  if (version !== undefined && version !== "") labels["org.opencontainers.image.version"] = version;
  const created = options.created === undefined ? {} : { created: options.created };
  const { architecture, os, variant } = options.platform;
  const osVersion = options.platform["os.version"];
  const config = {
    ...created,
    architecture,
    os,
    ...(osVersion !== undefined ? { "os.version": osVersion } : {}),
    ...(variant !== undefined ? { variant } : {}),
    config: Object.keys(labels).length > 0 ? { Labels: labels } : {},
    rootfs: { type: "layers", diff_ids: [diffId] },
    history: [{ ...created, created_by: `ociboot info-image: /${Object.values(INFO_IMAGE_PATHS).join(", /")}` }],
  };
  return new TextEncoder().encode(JSON.stringify(config));
}
