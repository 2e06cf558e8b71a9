import { fileReadableStream, errorCode, errorMessage } from "../content/fs-util.ts";
import type { OciLayoutStore } from "../content/layout.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { IRONCORE_MEDIA_TYPES, ONMETAL_MEDIA_TYPES } from "../oci/dialects.ts";
import { MediaType } from "../oci/mediatypes.ts";
import { encodeGoIndex, encodeGoManifest, encodeOnmetalConfig, encodeOnmetalManifest } from "../oci/onmetal.ts";
import { addUntaggedEntry, normalizeTagName } from "./store-ops.ts";

/** The manifest dialect to write: onmetal v1alpha1 (byte-identical to onmetal-image) or ironcore today. */
export type BuildFormat = "onmetal" | "ironcore";

/** Input files by the name onmetal-image and ironcore-image give their flags. */
export interface BootFiles {
  rootfs?: string;
  initramfs?: string;
  kernel?: string;
  squashfs?: string;
  uki?: string;
  iso?: string;
}

type FileKind = keyof BootFiles;

/** Layer order and media types of each format; the onmetal order is part of its digest. */
const LAYERS: Readonly<Record<BuildFormat, ReadonlyArray<readonly [FileKind, string]>>> = {
  onmetal: [
    ["rootfs", ONMETAL_MEDIA_TYPES.rootfs],
    ["initramfs", ONMETAL_MEDIA_TYPES.initramfs],
    ["kernel", ONMETAL_MEDIA_TYPES.vmlinuz],
  ],
  ironcore: [
    ["rootfs", IRONCORE_MEDIA_TYPES.rootfs],
    ["initramfs", IRONCORE_MEDIA_TYPES.initramfs],
    ["kernel", IRONCORE_MEDIA_TYPES.kernel],
    ["squashfs", IRONCORE_MEDIA_TYPES.squashfs],
    ["uki", IRONCORE_MEDIA_TYPES.uki],
    ["iso", IRONCORE_MEDIA_TYPES.iso],
  ],
};

/** Options shared by the build operations. */
export interface BuildOptions {
  format: BuildFormat;
  commandLine?: string;
  signal?: AbortSignal;
}

/** Result of a build: the manifest (or index) and the full reference it was tagged with, if any. */
export interface BuildResult {
  descriptor: Descriptor;
  reference?: string;
  /** Per-architecture manifests of a multi-architecture build, with their platform. */
  manifests?: Descriptor[];
}

/**
 * Builds one boot image into the store: each file streamed in once (hashed while written, never
 * held in memory), then the config and manifest. The manifest gets an untagged index.json entry
 * (one only, however often the same image is built) and, with `tag`, a tag.
 */
export async function buildImage(store: OciLayoutStore, files: BootFiles, options: BuildOptions & { tag?: string }): Promise<BuildResult> {
  const reference = options.tag === undefined ? undefined : normalizeTagName(options.tag);
  const descriptor = await buildManifest(store, files, options);
  await addUntaggedEntry(store, descriptor);
  if (reference === undefined) return { descriptor };
  await store.tag(descriptor, reference);
  return { descriptor, reference };
}

/**
 * Builds one ironcore manifest per architecture and an index over them with `linux/<arch>`
 * platforms, as ironcore-image does: the index is tagged `T`, each manifest `T-<arch>`.
 */
export async function buildMultiArchImage(
  store: OciLayoutStore,
  architectures: ReadonlyArray<{ architecture: string; files: BootFiles }>,
  options: BuildOptions & { tag?: string },
): Promise<BuildResult> {
  if (options.format !== "ironcore") {
    throw new OcibootError("USAGE", "Cannot build several architectures: only the ironcore format has an index");
  }
  if (architectures.length === 0) throw new OcibootError("USAGE", "Cannot build an index: no architecture given");
  const reference = options.tag === undefined ? undefined : normalizeTagName(options.tag);
  const manifests: Descriptor[] = [];
  for (const { architecture, files } of architectures) {
    if (!/^[a-z0-9_]+$/.test(architecture)) throw new OcibootError("USAGE", `Cannot build for architecture "${architecture}": not a GOARCH name`);
    const manifest = await buildManifest(store, files, options);
    if (reference !== undefined) await store.tag(manifest, normalizeTagName(`${reference}-${architecture}`));
    manifests.push({ ...manifest, platform: { architecture, os: "linux" } });
  }
  const descriptor = await store.ingestBytes(encodeGoIndex(MediaType.ociIndex, manifests), MediaType.ociIndex);
  await addUntaggedEntry(store, descriptor);
  if (reference !== undefined) await store.tag(descriptor, reference);
  return reference === undefined ? { descriptor, manifests } : { descriptor, reference, manifests };
}

/** Stores the layers, config and manifest of one image; no index.json entry. */
export async function buildManifest(store: OciLayoutStore, files: BootFiles, options: BuildOptions): Promise<Descriptor> {
  checkFiles(files, options.format);
  const layers: Descriptor[] = [];
  for (const [kind, mediaType] of LAYERS[options.format]) {
    const path = files[kind];
    if (path === undefined) continue;
    layers.push(await store.ingest(await openInput(path, kind), mediaType, options.signal ? { signal: options.signal } : {}));
  }
  const configMediaType = options.format === "onmetal" ? ONMETAL_MEDIA_TYPES.config : IRONCORE_MEDIA_TYPES.config;
  const config = await store.ingestBytes(encodeOnmetalConfig(options.commandLine), configMediaType);
  const manifestBytes =
    options.format === "onmetal" ? encodeOnmetalManifest(config, layers) : encodeGoManifest(MediaType.ociManifest, config, layers);
  return store.ingestBytes(manifestBytes, MediaType.ociManifest);
}

function checkFiles(files: BootFiles, format: BuildFormat): void {
  if (format === "onmetal") {
    const missing = (["rootfs", "initramfs", "kernel"] as const).filter((kind) => files[kind] === undefined);
    if (missing.length > 0) {
      throw new OcibootError("USAGE", `Cannot build an onmetal image: --${missing.map(flagOf).join(", --")} missing`);
    }
    const extra = (["squashfs", "uki", "iso"] as const).filter((kind) => files[kind] !== undefined);
    if (extra.length > 0) {
      throw new OcibootError("USAGE", `Cannot build an onmetal image with --${extra.map(flagOf).join(", --")}: use --format ironcore`);
    }
  } else if (Object.values(files).every((path) => path === undefined)) {
    throw new OcibootError("USAGE", "Cannot build an ironcore image: no file given");
  }
}

function flagOf(kind: FileKind): string {
  return `${kind}-file`;
}

async function openInput(path: string, kind: FileKind): Promise<ReadableStream<Uint8Array>> {
  try {
    return await fileReadableStream(path);
  } catch (error) {
    const code = errorCode(error) === "ENOENT" ? "NOT_FOUND" : "LOCAL_IO";
    throw new OcibootError(code, `Cannot read the ${kind} file ${path}: ${errorMessage(error)}`, { cause: error });
  }
}
