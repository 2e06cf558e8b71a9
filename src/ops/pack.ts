import { mkdtemp, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { errorCode, errorMessage, readBoundedFile } from "../content/fs-util.ts";
import { OciArchiveWriter } from "../content/archive-writer.ts";
import { OciLayoutStore } from "../content/layout.ts";
import { signImage, type SignReport } from "./sign.ts";
import type { SigningKey } from "./signing-key.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { formatReference, formatRepository, parseReference } from "../oci/reference.ts";
import { buildImage } from "./build.ts";
import type { TransferHooks } from "./copy-graph.ts";
import { copyLayoutInto } from "./export.ts";
import { buildInfoImage, type InfoImageOptions } from "./info-image.ts";
import { attachFiles, type AttachOptions } from "./referrers.ts";
import { normalizeTagName } from "./store-ops.ts";

/**
 * The files of a Garden Linux build folder that a pack takes, by suffix after `<NAME>`. The rootfs
 * is the first of these that exists: `.rootfs` (a file named for the role), the PXE `.squashfs`,
 * the `.raw` disk image (what the `_oci` feature gives onmetal-image's `--rootfs-file` in the
 * seed's own build folder), then the root tarball `.tar`, `.tar.gz`, `.tar.xz`, stored as they are.
 * The order and the reasons are in docs/pack-inputs.md.
 */
export const BUILD_SUFFIXES = {
  kernel: ".vmlinuz",
  initramfs: ".initrd",
  rootfs: [".rootfs", ".squashfs", ".raw", ".tar", ".tar.gz", ".tar.xz"],
  commandLine: ".cmdline",
  osRelease: ".os-release",
  packageManifest: ".manifest",
  buildLog: ".log",
} as const;

/** The build files attached to the boot image, with the artifact types the seed gave them (`oras attach`). */
const ATTACHED = [
  ["osRelease", "build/os-release"],
  ["packageManifest", "build/manifest"],
  ["buildLog", "build/log"],
] as const;

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;
/** The OCI tag grammar: a build name that fits becomes the info image's default tag. */
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** Repository of the info image when neither `tag` nor `infoTag` names it. */
const DEFAULT_INFO_REPOSITORY = "localhost/build-info";
/** A kernel command line is at most a few KiB (x86: 2 KiB); anything larger is not one. */
const COMMAND_LINE_MAX_BYTES = 64 * 1024;

/** Options for {@link packBuild}. */
export interface PackOptions {
  /** The build's base name: `<NAME>.vmlinuz`, `<NAME>.initrd`, … */
  name: string;
  /** The archive to write (`.tar.xz`, `.tar.gz`, `.tar.zst` or `.tar` by name), laid out as an `onmetal/` store. */
  output: string;
  /** The compressor's level (default: the tool's own; docs/archives.md). */
  compressionLevel?: number;
  /** Told what goes into the archive as it goes (progress). */
  transfer?: TransferHooks;
  /** Where the temporary store is made (it holds a copy of every file until the archive is written). */
  temporaryDirectory: string;
  /** Also tag the boot image with this reference (it always has its untagged entry, as onmetal-image builds it). */
  tag?: string;
  /** The info image's reference; default `tag` with `-info` after its tag, else `localhost/build-info:<NAME>`. */
  infoTag?: string;
  /** Kernel command line when the folder has no `<NAME>.cmdline`. */
  commandLine?: string;
  /** The rootfs file, instead of looking for `<NAME>.rootfs`/`.squashfs`/`.tar`. */
  rootfsFile?: string;
  /** os and architecture of the info image. */
  platform: Platform;
  /** RFC 3339 time for the info image and the attached files; without it neither is dated, so equal builds give equal archives. */
  created?: string;
  /** Sign the boot image with this key (cosign's `sha256-<hex>.sig`, in the archive beside it). */
  signingKey?: SigningKey;
  signal?: AbortSignal;
}

/** What {@link packBuild} wrote into the archive. */
export interface PackResult {
  bootImage: Descriptor;
  bootReference?: string;
  infoImage: Descriptor;
  infoReference: string;
  /** The artifacts holding os-release, package manifest and build log, whose subject is the boot image. */
  referrers: Descriptor[];
  /** The boot image's signature, with `signingKey`. */
  signature?: SignReport;
}

interface BuildFolderFiles {
  kernel: string;
  initramfs: string;
  rootfs: string;
  commandLine?: string;
  osRelease: string;
  packageManifest: string;
  buildLog: string;
}

/**
 * The Garden Linux `_oci` feature in one step: from a build folder, the onmetal boot image
 * (byte-identical to onmetal-image's), the info image (a container image of os-release, build log
 * and package list, whose `subject` is the boot image), and the three build files attached to
 * the boot image as referrers, built in a temporary store and archived as an `onmetal/` layout.
 *
 * In the archive the boot image is untagged, as onmetal-image leaves it (and tagged too, with
 * `tag`); the info image is tagged. Since the info image and the attachments all refer to the boot
 * image, the boot image is the archive's only image: `fetch oci-archive:FILE` needs no REF.
 * Every input is checked before anything is written; the archive appears only when complete.
 */
export async function packBuild(folder: string, options: PackOptions): Promise<PackResult> {
  checkName(options.name);
  const files = await locateBuildFiles(folder, options);
  const commandLine = await commandLineOf(files, options);
  const bootTag = options.tag === undefined ? undefined : normalizeTagName(options.tag);
  const infoTag = infoReferenceOf(options, bootTag);
  // Opened first, so that a missing xz or a FILE.partial left behind fails before minutes of building.
  const writer = await OciArchiveWriter.create(options.output, {
    folder: "onmetal",
    ...(options.compressionLevel !== undefined ? { level: options.compressionLevel } : {}),
  });
  let directory: string | undefined;
  try {
    directory = await mkdtemp(join(options.temporaryDirectory, "ociboot-pack-"));
    const store = new OciLayoutStore(directory);
    const result = await buildInto(store, files, { ...options, commandLine, bootTag, infoTag });
    await copyLayoutInto(store, writer, { ...options.transfer, ...(options.signal !== undefined ? { signal: options.signal } : {}) });
    await writer.commit();
    return result;
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  }
}

/** The options with the command line read and the tags decided. */
type ResolvedPackOptions = Omit<PackOptions, "commandLine"> & { commandLine: string | undefined; bootTag: string | undefined; infoTag: string };

/** The boot image, the info image referring to it and the three attachments, into one store. */
async function buildInto(store: OciLayoutStore, files: BuildFolderFiles, options: ResolvedPackOptions): Promise<PackResult> {
  const signal = options.signal !== undefined ? { signal: options.signal } : {};
  const boot = await buildImage(
    store,
    { kernel: files.kernel, initramfs: files.initramfs, rootfs: files.rootfs },
    {
      format: "onmetal",
      ...signal,
      ...(options.commandLine !== undefined ? { commandLine: options.commandLine } : {}),
      ...(options.bootTag !== undefined ? { tag: options.bootTag } : {}),
    },
  );
  const infoOptions: InfoImageOptions = { tag: options.infoTag, platform: options.platform, subject: boot.descriptor, ...signal };
  if (options.created !== undefined) infoOptions.created = options.created;
  const info = await buildInfoImage(store, files, infoOptions);
  const referrers: Descriptor[] = [];
  for (const [kind, artifactType] of ATTACHED) {
    const attachOptions: AttachOptions = { artifactType, ...signal };
    if (options.created !== undefined) attachOptions.created = options.created;
    referrers.push((await attachFiles(store, boot.descriptor.digest, [files[kind]], attachOptions)).artifact);
  }
  const result: PackResult = { bootImage: boot.descriptor, infoImage: info.descriptor, infoReference: info.reference, referrers };
  if (boot.reference !== undefined) result.bootReference = boot.reference;
  if (options.signingKey !== undefined) {
    const dockerReference = options.bootTag === undefined ? `localhost/${options.name}` : formatRepository(parseReference(options.bootTag));
    result.signature = await signImage(store, boot.descriptor.digest, options.signingKey, { dockerReference, ...signal });
  }
  return result;
}

function checkName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new OcibootError("USAGE", `Cannot pack build "${name.slice(0, 80)}": the name must be a plain file name prefix (letters, digits, . _ + -)`);
  }
}

/** Finds every file of the build, reporting all that are missing at once. */
async function locateBuildFiles(folder: string, options: PackOptions): Promise<BuildFolderFiles> {
  const path = (suffix: string) => join(folder, `${options.name}${suffix}`);
  const missing: string[] = [];
  const required = async (suffix: string): Promise<string> => {
    if (!(await isFile(path(suffix)))) missing.push(path(suffix));
    return path(suffix);
  };
  const kernel = await required(BUILD_SUFFIXES.kernel);
  const initramfs = await required(BUILD_SUFFIXES.initramfs);
  let rootfs = options.rootfsFile;
  if (rootfs === undefined) {
    for (const suffix of BUILD_SUFFIXES.rootfs) {
      if (await isFile(path(suffix))) {
        rootfs = path(suffix);
        break;
      }
    }
    if (rootfs === undefined) missing.push(`${path("")}{${BUILD_SUFFIXES.rootfs.join(",")}}`);
  } else if (!(await isFile(rootfs))) {
    missing.push(rootfs);
  }
  const osRelease = await required(BUILD_SUFFIXES.osRelease);
  const packageManifest = await required(BUILD_SUFFIXES.packageManifest);
  const buildLog = await required(BUILD_SUFFIXES.buildLog);
  if (missing.length > 0 || rootfs === undefined) {
    throw new OcibootError("NOT_FOUND", `Cannot pack build ${options.name} from ${folder}: missing ${missing.join(", ")}`);
  }
  const files: BuildFolderFiles = { kernel, initramfs, rootfs, osRelease, packageManifest, buildLog };
  if (await isFile(path(BUILD_SUFFIXES.commandLine))) files.commandLine = path(BUILD_SUFFIXES.commandLine);
  return files;
}

/** The `<NAME>.cmdline` file's text without its line ending, or the option; both at once is ambiguous. */
async function commandLineOf(files: BuildFolderFiles, options: PackOptions): Promise<string | undefined> {
  if (files.commandLine === undefined) return options.commandLine;
  if (options.commandLine !== undefined) {
    throw new OcibootError("USAGE", `Cannot pack build ${options.name}: both ${files.commandLine} and --command-line give a command line; remove one`);
  }
  const bytes = await readBoundedFile(files.commandLine, COMMAND_LINE_MAX_BYTES);
  return new TextDecoder().decode(bytes).replace(/\s+$/, "");
}

function infoReferenceOf(options: PackOptions, bootTag: string | undefined): string {
  if (options.infoTag !== undefined) {
    const infoTag = normalizeTagName(options.infoTag);
    if (infoTag === bootTag) throw new OcibootError("USAGE", `Cannot tag both images ${infoTag}: give the info image another --info-tag`);
    return infoTag;
  }
  if (bootTag !== undefined) {
    const reference = parseReference(bootTag);
    return normalizeTagName(formatReference({ ...reference, tag: `${reference.tag ?? "latest"}-info` }));
  }
  if (!TAG_PATTERN.test(options.name)) {
    throw new OcibootError("USAGE", `Cannot name the info image after build ${options.name.slice(0, 80)}: not a valid tag; give --info-tag`);
  }
  return `${DEFAULT_INFO_REPOSITORY}:${options.name}`;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (error) {
    if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return false;
    throw new OcibootError("LOCAL_IO", `Cannot read ${path}: ${errorMessage(error)}`, { cause: error });
  }
}
