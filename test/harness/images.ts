import { constants, createReadStream } from "node:fs";
import { access, copyFile, mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createHash, randomFillSync } from "node:crypto";
import { join } from "node:path";
import type { Descriptor, Platform } from "../../src/oci/descriptor.ts";
import { sha256Digest } from "../../src/oci/digest.ts";
import { runOk } from "./commands.ts";
import type { RunResult } from "./commands.ts";
import type { RunningRegistry } from "./registry.ts";

/**
 * Test fixtures made by code: OCI image layouts (image-layout.md of the OCI image spec v1.1),
 * boot images in the onmetal dialect, big random files, and publishing through skopeo — an
 * independent implementation — so tests never rely on ociboot to create what ociboot must read.
 * Media types are spelled out here rather than imported from src/, so a typo there cannot hide.
 */

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

/** docs/formats.md#onmetal-v1alpha1: onmetal v1alpha1 media types. */
export const ONMETAL_MEDIA_TYPES = {
  config: "application/vnd.onmetal.image.config.v1alpha1+json",
  rootfs: "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
  initrd: "application/vnd.onmetal.image.initramfs.v1alpha1.initramfs",
  kernel: "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz",
} as const;

/** Content given in memory or as a path to an existing file (for blobs too big to hold). */
export type BlobSource = { bytes: Uint8Array | string } | { file: string };

export type LayerSpec = BlobSource & { mediaType: string; annotations?: Record<string, string> };

export interface ManifestSpec {
  /** Listed in index.json under `org.opencontainers.image.ref.name`; untagged manifests are only blobs. */
  tag?: string;
  /**
   * Also list the manifest in index.json without a ref name, before any tagged entry: the shape an
   * onmetal-image store has after `build` then `tag` (docs/formats.md#local-store-layout).
   */
  untaggedEntry?: boolean;
  config: { mediaType: string; bytes: Uint8Array | string };
  layers: LayerSpec[];
  /** Media type of the manifest. Default: OCI image manifest. */
  manifestMediaType?: string;
  /** Whether the manifest JSON carries its `mediaType` field (onmetal-image omits it). Default true. */
  mediaTypeField?: boolean;
  artifactType?: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
  /** Platform recorded on the index.json entry of the tag. */
  platform?: Platform;
}

export interface IndexEntrySpec {
  /** Position of the manifest in `LayoutSpec.manifests`. */
  manifest: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface IndexSpec {
  tag: string;
  manifests: IndexEntrySpec[];
  annotations?: Record<string, string>;
}

export interface LayoutSpec {
  manifests: ManifestSpec[];
  /** OCI image indexes (multi-platform tags) over manifests above. */
  indexes?: IndexSpec[];
}

export interface WrittenManifest {
  tag: string | undefined;
  /** Descriptor of the manifest itself. */
  descriptor: Descriptor;
  /** The exact manifest bytes written. */
  bytes: Buffer;
  config: Descriptor;
  layers: Descriptor[];
}

export interface WrittenIndex {
  tag: string;
  descriptor: Descriptor;
  bytes: Buffer;
}

export interface WrittenLayout {
  directory: string;
  manifests: WrittenManifest[];
  indexes: WrittenIndex[];
}

/**
 * Encodes JSON as Go's encoding/json does (compact, `<` `>` `&` U+2028 U+2029 escaped), because the
 * onmetal and ironcore tools are written in Go and their digests depend on those exact bytes.
 * Key order is the insertion order of `value`.
 */
export function encodeGoJson(value: unknown): Buffer {
  const text = JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (character) => {
    return `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
  return Buffer.from(text, "utf8");
}

/** Descriptor of in-memory content, keys in the order Go's oras/onmetal structs emit them. */
export function describeBytes(mediaType: string, bytes: Uint8Array | string, annotations?: Record<string, string>): Descriptor {
  const buffer = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
  const descriptor: Descriptor = {
    mediaType,
    digest: sha256Digest(createHash("sha256").update(buffer).digest("hex")),
    size: buffer.byteLength,
  };
  if (annotations !== undefined) descriptor.annotations = annotations;
  return descriptor;
}

/** Serializes a manifest for already-described config and layers. */
export function encodeManifest(input: {
  config: Descriptor;
  layers: Descriptor[];
  manifestMediaType?: string;
  mediaTypeField?: boolean;
  artifactType?: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
}): Buffer {
  const manifest: Record<string, unknown> = { schemaVersion: 2 };
  if (input.mediaTypeField ?? true) manifest["mediaType"] = input.manifestMediaType ?? OCI_MANIFEST;
  if (input.artifactType !== undefined) manifest["artifactType"] = input.artifactType;
  manifest["config"] = input.config;
  manifest["layers"] = input.layers;
  if (input.subject !== undefined) manifest["subject"] = input.subject;
  if (input.annotations !== undefined) manifest["annotations"] = input.annotations;
  return encodeGoJson(manifest);
}

/**
 * Writes a plain OCI image layout into `directory` (created if missing): `oci-layout`, `index.json`
 * with one entry per tag, and every blob under `blobs/sha256/`.
 */
export async function writeOciLayout(directory: string, spec: LayoutSpec): Promise<WrittenLayout> {
  const blobsDirectory = join(directory, "blobs", "sha256");
  await mkdir(blobsDirectory, { recursive: true });
  const writeBlob = async (descriptor: Descriptor, bytes: Uint8Array): Promise<void> => {
    await writeFile(join(blobsDirectory, descriptor.digest.slice("sha256:".length)), bytes);
  };

  const manifests: WrittenManifest[] = [];
  const indexEntries: Descriptor[] = [];
  for (const manifestSpec of spec.manifests) {
    const config = describeBytes(manifestSpec.config.mediaType, manifestSpec.config.bytes);
    await writeBlob(config, toBuffer(manifestSpec.config.bytes));
    const layers: Descriptor[] = [];
    for (const layer of manifestSpec.layers) {
      let descriptor: Descriptor;
      if ("file" in layer) {
        const { digest, size } = await hashFile(layer.file);
        descriptor = { mediaType: layer.mediaType, digest, size };
        if (layer.annotations !== undefined) descriptor.annotations = layer.annotations;
        const target = join(blobsDirectory, digest.slice("sha256:".length));
        // Reflink where the filesystem can, so gigabyte fixtures do not cost a second gigabyte.
        if (!(await exists(target))) await copyFile(layer.file, target, constants.COPYFILE_FICLONE);
      } else {
        descriptor = describeBytes(layer.mediaType, layer.bytes, layer.annotations);
        await writeBlob(descriptor, toBuffer(layer.bytes));
      }
      layers.push(descriptor);
    }
    const bytes = encodeManifest({
      config,
      layers,
      ...pick(manifestSpec, ["manifestMediaType", "mediaTypeField", "artifactType", "subject", "annotations"]),
    });
    const descriptor = describeBytes(manifestSpec.manifestMediaType ?? OCI_MANIFEST, bytes);
    if (manifestSpec.artifactType !== undefined) descriptor.artifactType = manifestSpec.artifactType;
    await writeBlob(descriptor, bytes);
    manifests.push({ tag: manifestSpec.tag, descriptor, bytes, config, layers });
    const entryFor = (annotations: Record<string, string> | undefined): Descriptor => {
      const entry: Descriptor = { ...descriptor };
      if (annotations !== undefined) entry.annotations = annotations;
      if (manifestSpec.platform !== undefined) entry.platform = manifestSpec.platform;
      return entry;
    };
    if (manifestSpec.untaggedEntry === true) indexEntries.push(entryFor(undefined));
    if (manifestSpec.tag !== undefined) indexEntries.push(entryFor({ [REF_NAME_ANNOTATION]: manifestSpec.tag }));
  }

  const indexes: WrittenIndex[] = [];
  for (const indexSpec of spec.indexes ?? []) {
    const entries = indexSpec.manifests.map((entrySpec) => {
      const target = manifests[entrySpec.manifest];
      if (target === undefined) throw new Error(`Cannot build index "${indexSpec.tag}": no manifest #${entrySpec.manifest}`);
      const entry: Descriptor = { ...target.descriptor };
      if (entrySpec.platform !== undefined) entry.platform = entrySpec.platform;
      if (entrySpec.annotations !== undefined) entry.annotations = entrySpec.annotations;
      return entry;
    });
    const index: Record<string, unknown> = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries };
    if (indexSpec.annotations !== undefined) index["annotations"] = indexSpec.annotations;
    const bytes = encodeGoJson(index);
    const descriptor = describeBytes(OCI_INDEX, bytes);
    await writeBlob(descriptor, bytes);
    indexes.push({ tag: indexSpec.tag, descriptor, bytes });
    indexEntries.push({ ...descriptor, annotations: { [REF_NAME_ANNOTATION]: indexSpec.tag } });
  }

  await writeFile(join(directory, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(directory, "index.json"), encodeGoJson({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: indexEntries }));
  return { directory, manifests, indexes };
}

export interface ArchiveOptions {
  /** Put the layout in this folder of the archive (`onmetal` for the Garden Linux `.oci.tar.xz`); root otherwise. */
  folder?: string;
  /** Empty directories to add, as paths inside the archive (e.g. `onmetal/ingest`). */
  emptyDirectories?: string[];
  compression?: "none" | "gzip" | "xz";
}

/**
 * Packs an OCI layout into a tar archive with GNU tar: without options, the `oci-archive:` format
 * skopeo reads; with `folder: "onmetal"`, `emptyDirectories: ["onmetal/ingest"]` and xz, the shape of
 * the Garden Linux `<name>.oci.tar.xz`. Entries are sorted, owned by root and dated 1970, so equal
 * layouts give equal archives.
 */
export async function archiveLayout(layoutDirectory: string, archiveFile: string, options: ArchiveOptions = {}): Promise<void> {
  const compressionFlags = { none: [], gzip: ["--gzip"], xz: ["--xz"] }[options.compression ?? "none"];
  const reproducible = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--format=gnu"];
  const args = ["--create", "--file", archiveFile, ...compressionFlags, ...reproducible];
  if (options.folder !== undefined) args.push(`--transform=s,^\\.,${options.folder},`);
  args.push("-C", layoutDirectory, ".");
  const emptyDirectories = options.emptyDirectories ?? [];
  if (emptyDirectories.length === 0) {
    await runOk("tar", args);
    return;
  }
  const staging = await mkdtemp(join(tmpdir(), "ociboot-archive-"));
  try {
    for (const path of emptyDirectories) await mkdir(join(staging, path), { recursive: true });
    await runOk("tar", [...args, "-C", staging, ...emptyDirectories]);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export interface BootImageSpec {
  kernel: BlobSource;
  initrd: BlobSource;
  rootfs: BlobSource;
  /** Kernel command line; omitted from the config when empty, as onmetal-image does. */
  commandLine?: string;
  dialect: "onmetal";
  tag?: string;
}

/**
 * A boot image as onmetal-image ≤ v0.1.1 builds it (docs/formats.md#onmetal-v1alpha1): config `{"commandLine":…}`,
 * layers rootfs, initramfs, vmlinuz, a manifest without `mediaType` and without annotations.
 * Pass the result to `writeOciLayout`.
 */
export function makeBootImage(spec: BootImageSpec): ManifestSpec {
  const types = ONMETAL_MEDIA_TYPES;
  const manifest: ManifestSpec = {
    config: { mediaType: types.config, bytes: onmetalConfigBytes(spec.commandLine) },
    layers: [
      { ...spec.rootfs, mediaType: types.rootfs },
      { ...spec.initrd, mediaType: types.initrd },
      { ...spec.kernel, mediaType: types.kernel },
    ],
    mediaTypeField: false,
  };
  if (spec.tag !== undefined) manifest.tag = spec.tag;
  return manifest;
}

/** The onmetal config blob: `{"commandLine":"…"}`, or `{}` for an empty command line. */
export function onmetalConfigBytes(commandLine: string | undefined): Buffer {
  return encodeGoJson(commandLine === undefined || commandLine === "" ? {} : { commandLine });
}

export interface RandomFile {
  path: string;
  size: number;
  digest: Descriptor["digest"];
}

/** Writes `size` random bytes to `path` in 1 MiB chunks, hashing on the way, never holding the whole. */
export async function randomBytesFile(path: string, size: number): Promise<RandomFile> {
  const chunk = Buffer.alloc(Math.min(size, 1024 * 1024));
  const hash = createHash("sha256");
  const handle = await open(path, "w");
  try {
    let remaining = size;
    while (remaining > 0) {
      const piece = chunk.subarray(0, Math.min(chunk.length, remaining));
      randomFillSync(piece);
      hash.update(piece);
      await handle.write(piece);
      remaining -= piece.length;
    }
  } finally {
    await handle.close();
  }
  return { path, size, digest: sha256Digest(hash.digest("hex")) };
}

/** sha256 digest and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ digest: Descriptor["digest"]; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: sha256Digest(hash.digest("hex")), size };
}

/**
 * Pushes tag `tag` of an OCI layout to `registry` with skopeo, digest-preserving (`--all` keeps
 * every entry of an index). Returns the reference pushed, `HOST/REPOSITORY:TAG`.
 */
export async function publishWithSkopeo(
  layoutDirectory: string,
  tag: string,
  registry: RegistryEndpoint,
  repository: string,
  destinationTag: string = tag,
): Promise<{ reference: string; result: RunResult }> {
  const reference = `${registry.host}/${repository}:${destinationTag}`;
  const result = await runOk("skopeo", [
    "copy", "--all", "--preserve-digests", "--quiet",
    ...skopeoRegistryFlags("dest", registry),
    `oci:${layoutDirectory}:${tag}`,
    `docker://${reference}`,
  ]);
  return { reference, result };
}

/** What skopeo needs to reach a registry: a `RunningRegistry`, or e.g. a relay in front of one. */
export type RegistryEndpoint = Pick<RunningRegistry, "host"> & Pick<RunningRegistry, "certDirectory" | "credentials">;

export interface SkopeoAccessOptions {
  /** Send no credentials even where the registry has an account, to test anonymous access. */
  anonymous?: boolean;
}

/** Pulls `REPOSITORY:TAG` (or `@DIGEST`) from `registry` into an OCI layout with skopeo, digest-preserving. */
export async function fetchWithSkopeo(
  registry: RegistryEndpoint,
  repository: string,
  tagOrDigest: string,
  layoutDirectory: string,
  options: SkopeoAccessOptions & { layoutTag?: string } = {},
): Promise<RunResult> {
  const separator = tagOrDigest.includes(":") ? "@" : ":";
  return runOk("skopeo", [
    "copy", "--all", "--preserve-digests", "--quiet",
    ...skopeoRegistryFlags("src", registry, options),
    `docker://${registry.host}/${repository}${separator}${tagOrDigest}`,
    `oci:${layoutDirectory}:${options.layoutTag ?? "latest"}`,
  ]);
}

/**
 * skopeo flags to reach `registry`: plain HTTP needs `tls-verify=false`; TLS gets the test CA
 * through `--cert-dir`; credentials are explicit and `no-creds` otherwise, so a developer's own
 * auth.json or ~/.docker/config.json never takes part.
 */
export function skopeoRegistryFlags(side: "src" | "dest", registry: RegistryEndpoint, options: SkopeoAccessOptions = {}): string[] {
  const flags: string[] = [];
  if (registry.certDirectory !== undefined) flags.push(`--${side}-cert-dir`, registry.certDirectory);
  else flags.push(`--${side}-tls-verify=false`);
  if (registry.credentials !== undefined && options.anonymous !== true) {
    flags.push(`--${side}-creds`, `${registry.credentials.username}:${registry.credentials.password}`);
  } else {
    flags.push(`--${side}-no-creds`);
  }
  return flags;
}

function toBuffer(bytes: Uint8Array | string): Buffer {
  return typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

function pick<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (source[key] !== undefined) picked[key] = source[key];
  return picked;
}
