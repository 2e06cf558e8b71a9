import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage, writeFileAtomically } from "../content/fs-util.ts";
import type { ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { isDigest, parseDigest, sha256DigestOf } from "../oci/digest.ts";
import { DEFAULT_FILE_NAMES, hasBootFiles, noBootFilesError, parseBootConfig, planBootFiles, safeFileName, type Role } from "../oci/dialects.ts";
import { downloadBlob, type DownloadStatus } from "./download.ts";
import { FETCH_RECORD_FILE_NAME, type FetchRecord, serializeFetchRecord } from "./fetch-record.ts";
import { runBounded } from "./pool.ts";
import { readConfigBytes, resolveManifest, type ManifestSelection } from "./resolve.ts";
import { imageArchitecture, qemuCommandFor } from "./boot-hint.ts";
import { saveSignatureMaterial, SIGNATURES_FILE } from "./signature-material.ts";
import { signatureLookup, type TrustOptions, verifyResolvedSignature, type VerifiedSigner } from "./signature.ts";

export interface FetchBootImageOptions extends ManifestSelection {
  /** Only these roles (default: every file of the image). */
  roles?: readonly Role[];
  /** File names by role, replacing the defaults (`vmlinuz`, `initrd`, …). */
  fileNames?: Partial<Record<Role, string>>;
  /** Blobs downloaded at once. */
  concurrency?: number;
  signal?: AbortSignal;
  progress?: FetchProgress;
  /** Require a signature by one of these keys, verified before anything is written. */
  trust?: TrustOptions;
}

/** What fetch tells a progress display; one call per state change, bytes as they land. */
export interface FetchProgress {
  planned(files: ReadonlyArray<{ name: string; size: number }>): void;
  advanced(name: string, done: number, total: number): void;
  finished(name: string, status: FetchedFileStatus): void;
}

export type FetchedFileStatus = DownloadStatus | "written";

export interface FetchedFile {
  role?: Role;
  name: string;
  path: string;
  mediaType?: string;
  digest: string;
  size: number;
  status: FetchedFileStatus;
}

export interface FetchReport {
  source: string;
  reference: string;
  digest: string;
  mediaType: string;
  indexDigest?: string;
  platform?: Platform;
  /** What the image says it runs on (its platform or Garden Linux annotations), for boot hints. */
  architecture?: string;
  dialect: string;
  commandLine?: string;
  outputDir: string;
  files: FetchedFile[];
  /** Bytes that came from the source in this run. */
  transferred: number;
  /** Who signed the image, when a signature was required. */
  signer?: VerifiedSigner;
}

export const MANIFEST_FILE_NAME = "manifest.json";
export const CHECKSUM_FILE_NAME = "SHA256SUMS";
export const BOOT_SCRIPT_FILE_NAME = "boot.sh";

/**
 * Fetches a boot image into a directory: every blob verified while streaming, files written by
 * role, plus the exact manifest bytes, a `SHA256SUMS` that `sha256sum -c` accepts and a kexec
 * script. Re-running is cheap: files that already match are kept.
 */
export async function fetchBootImage(
  store: ReadableStore,
  reference: string,
  outputDir: string,
  options: FetchBootImageOptions = {},
): Promise<FetchReport> {
  const resolved = await resolveManifest(store, reference, selectionOf(options), options.signal);
  const plan = planBootFiles(resolved.manifest);
  // Checked before anything is written: no manifest.json or SHA256SUMS may suggest a usable folder.
  if (!hasBootFiles(plan)) throw noBootFilesError("fetch", reference, resolved.manifest);
  const wanted = options.roles ? new Set<Role>(options.roles) : undefined;

  // The config (for the command line) is read while the blobs download: one round trip less.
  const wantsConfigCommandLine = plan.commandLineFrom === "config" && (!wanted || wanted.has("cmdline"));
  const configRead = wantsConfigCommandLine ? readConfigBytes(store, resolved.manifest.config, options.signal) : Promise.resolve(undefined);
  const commandLineRead = configRead.then((bytes) => (bytes === undefined ? undefined : parseBootConfig(bytes).commandLine));
  configRead.catch(() => undefined);
  commandLineRead.catch(() => undefined);

  const blobs = plan.files
    .filter((file) => !wanted || (file.role !== undefined && wanted.has(file.role)))
    .map((file) => ({ ...file, name: file.role ? nameFor(file.role, options.fileNames) : file.name }));
  if (wanted) {
    const present = new Set<Role>(blobs.flatMap((file) => (file.role ? [file.role] : [])));
    // Asked for by name, the command line must exist before anything is downloaded.
    if (wanted.has("cmdline") && (await commandLineRead) !== undefined) present.add("cmdline");
    const missing = [...wanted].filter((role) => !present.has(role));
    if (missing.length > 0) {
      throw new OcibootError("NOT_FOUND", `Cannot fetch ${missing.join(", ")} from ${reference}: the image has no such layer`, {
        details: { missing, available: plan.files.flatMap((file) => (file.role ? [file.role] : [])) },
      });
    }
  }
  assertDistinctNames([...blobs.map((file) => file.name), ...(wantsConfigCommandLine ? [nameFor("cmdline", options.fileNames)] : [])]);

  // Before the output folder is touched: an image nobody trusted signed leaves no trace, not even a .partial.
  const trusted = options.trust
    ? await verifyResolvedSignature(store, resolved, options.trust, { ...selectionOf(options), ...tagOf(reference) }, signatureLookup(options.trust, options.signal))
    : undefined;

  await ensureDirectory(outputDir);
  const signaturesSaved = trusted
    ? saveSignatureMaterial(store, join(outputDir, SIGNATURES_FILE), trusted.material, resolved, options.signal ? { signal: options.signal } : {})
    : Promise.resolve();
  signaturesSaved.catch(() => undefined);
  const manifestWritten = writeFileAtomically(join(outputDir, MANIFEST_FILE_NAME), resolved.bytes);
  manifestWritten.catch(() => undefined);
  options.progress?.planned(blobs.map((file) => ({ name: file.name, size: file.descriptor.size })));
  let transferred = 0;
  const fetched = await runBounded(blobs, options.concurrency ?? 3, async (file) => {
    const path = join(outputDir, file.name);
    const result = await downloadBlob(store, file.descriptor, path, {
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: ({ done, total }) => options.progress?.advanced(file.name, done, total),
    });
    transferred += result.transferred;
    options.progress?.finished(file.name, result.status);
    return fetchedFile(file.role, file.name, path, file.descriptor, result.status);
  });

  const commandLine = await commandLineRead;
  const writes: Array<Promise<void>> = [manifestWritten, signaturesSaved];
  if (commandLine !== undefined) {
    const bytes = commandLineFileBytes(commandLine);
    const name = nameFor("cmdline", options.fileNames);
    const path = join(outputDir, name);
    writes.push(writeFileAtomically(path, bytes));
    fetched.push({ role: "cmdline", name, path, digest: sha256DigestOf(bytes), size: bytes.byteLength, status: "written" });
  }
  writes.push(writeFileAtomically(join(outputDir, CHECKSUM_FILE_NAME), checksumFile(fetched, resolved.descriptor)));
  const record: FetchRecord = {
    reference,
    source: store.description,
    digest: resolved.descriptor.digest,
    fileNames: Object.fromEntries(fetched.flatMap((file) => (file.role ? [[file.role, file.name]] : []))),
  };
  if (resolved.indexes[0]) {
    record.indexDigest = resolved.indexes[0].digest;
    record.indexes = resolved.indexBytes;
  }
  if (resolved.descriptor.platform) record.platform = resolved.descriptor.platform;
  if (options.roles) record.roles = [...options.roles];
  // Kept whenever it was read, also without a command line: an offline verify needs it to say so.
  const config = await configRead;
  if (config) record.config = config;
  writes.push(writeFileAtomically(join(outputDir, FETCH_RECORD_FILE_NAME), serializeFetchRecord(record)));
  const architecture = imageArchitecture(resolved.descriptor, resolved.manifest, plan.files.find((file) => file.role === "kernel")?.descriptor);
  const bootScript = bootScriptFor(fetched, architecture);
  if (bootScript) writes.push(writeFileAtomically(join(outputDir, BOOT_SCRIPT_FILE_NAME), bootScript, outputDir, 0o755));
  await Promise.all(writes);

  const report: FetchReport = {
    source: store.description,
    reference,
    digest: resolved.descriptor.digest,
    mediaType: resolved.descriptor.mediaType,
    dialect: plan.dialect,
    outputDir,
    files: fetched,
    transferred,
  };
  const outerIndex = resolved.indexes[0];
  if (outerIndex) report.indexDigest = outerIndex.digest;
  if (resolved.descriptor.platform) report.platform = resolved.descriptor.platform;
  if (architecture !== undefined) report.architecture = architecture;
  if (commandLine !== undefined) report.commandLine = commandLine;
  if (trusted) report.signer = trusted.signer;
  return report;
}

/** The `cmdline` file: the config's command line and a newline, so `cat` and `$(cat cmdline)` both read well. */
export function commandLineFileBytes(commandLine: string): Uint8Array {
  return new TextEncoder().encode(`${commandLine}\n`);
}

function selectionOf(options: FetchBootImageOptions): ManifestSelection {
  const selection: ManifestSelection = {};
  if (options.platform) selection.platform = options.platform;
  if (options.flavor !== undefined) selection.flavor = options.flavor;
  if (options.hostPlatform) selection.hostPlatform = options.hostPlatform;
  return selection;
}

function tagOf(reference: string): { tag?: string } {
  return isDigest(reference) ? {} : { tag: reference };
}

function nameFor(role: Role, overrides: Partial<Record<Role, string>> | undefined): string {
  return safeFileName(overrides?.[role] ?? DEFAULT_FILE_NAMES[role]);
}

const RESERVED_NAMES = new Set([MANIFEST_FILE_NAME, CHECKSUM_FILE_NAME, BOOT_SCRIPT_FILE_NAME, FETCH_RECORD_FILE_NAME, SIGNATURES_FILE]);

/** Two layers must never race for one file name, nor overwrite fetch's own files. */
function assertDistinctNames(names: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name) || RESERVED_NAMES.has(name) || name.endsWith(".partial")) {
      throw new OcibootError("UNSAFE_CONTENT", `Cannot write ${name}: the name is used twice or reserved`);
    }
    seen.add(name);
  }
}

function fetchedFile(role: Role | undefined, name: string, path: string, descriptor: Descriptor, status: FetchedFileStatus): FetchedFile {
  const file: FetchedFile = { name, path, mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size, status };
  if (role) file.role = role;
  return file;
}

/** `sha256sum -c` format; blobs named by another algorithm are left out rather than hashed twice. */
function checksumFile(files: readonly FetchedFile[], manifest: Descriptor): string {
  const lines = files.flatMap((file) => {
    const { algorithm, hex } = parseDigest(file.digest);
    return algorithm === "sha256" ? [`${hex}  ${file.name}\n`] : [];
  });
  const manifestDigest = parseDigest(manifest.digest);
  if (manifestDigest.algorithm === "sha256") lines.push(`${manifestDigest.hex}  ${MANIFEST_FILE_NAME}\n`);
  return lines.join("");
}

/** A kexec script for the fetched kernel, initrd and command line, when there is a kernel. */
export function bootScriptFor(files: readonly FetchedFile[], architecture?: string): string | undefined {
  const byRole = (role: Role) => files.find((file) => file.role === role)?.name;
  const kernel = byRole("kernel");
  if (!kernel) return undefined;
  const initrd = byRole("initrd");
  const cmdline = byRole("cmdline");
  const args = [`"$here/${kernel}"`];
  if (initrd) args.push(`--initrd="$here/${initrd}"`);
  args.push(cmdline ? `--command-line="$(cat "$here/${cmdline}")"` : "--reuse-cmdline");
  const qemu = qemuCommandFor(architecture, { kernel, initrd, cmdline });
  return [
    "#!/bin/sh",
    "# Boots the fetched image in place of the running kernel (needs kexec-tools and root).",
    ...(qemu === undefined ? [] : ["# Try it in a VM first:", `#   ${qemu}`]),
    "set -eu",
    'here=$(cd "$(dirname "$0")" && pwd)',
    `kexec -l ${args.join(" ")}`,
    "kexec -e",
    "",
  ].join("\n");
}

async function ensureDirectory(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot create ${path}: ${errorMessage(error)}`, { cause: error });
  }
}
