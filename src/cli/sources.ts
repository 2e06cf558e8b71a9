import process from "node:process";
import type { BlobPlacement } from "../content/archive-placement.ts";
import { type ArchiveStore, openArchiveInPlace } from "../content/archive-store.ts";
import { OciLayoutStore } from "../content/layout.ts";
import { isWritableStore, type ReadableStore, type Store } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Platform } from "../oci/descriptor.ts";
import { platformFromNode } from "../oci/platform.ts";
import { type IndexedStore, onlyImageIn } from "../ops/only-image.ts";
import { DEFAULT_TAG, parseReference } from "../oci/reference.ts";
import type { CliContext } from "./context.ts";
import type { GlobalOptions } from "./global-options.ts";
import { resolvePath } from "./paths.ts";
import { loadRegistryClient } from "./registry-loader.ts";
import { registryOptionsFrom } from "./registry-options.ts";

/** Where content comes from, as written on the command line (skopeo's transport prefixes). */
export type Location =
  | { kind: "registry"; reference: string }
  | { kind: "layout"; path: string; reference?: string }
  | { kind: "archive"; path: string; reference?: string };

/** A store opened from a location, with the reference to resolve in it. */
export interface OpenedSource {
  store: ReadableStore;
  reference: string;
  close(): Promise<void>;
}

/**
 * Parses `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` or a registry reference. As with skopeo, the
 * path ends at the first colon, so REF may itself contain colons (`oci:./store:ghcr.io/a/b:1.0`).
 */
export function parseLocation(text: string): Location {
  for (const [prefix, kind] of [["oci:", "layout"], ["oci-archive:", "archive"]] as const) {
    if (!text.startsWith(prefix)) continue;
    const rest = text.slice(prefix.length);
    const colon = rest.indexOf(":");
    const path = colon < 0 ? rest : rest.slice(0, colon);
    const reference = colon < 0 ? undefined : rest.slice(colon + 1);
    if (path.length === 0) throw new OcibootError("USAGE", `Cannot use ${text}: the ${prefix} location needs a path`);
    return reference ? { kind, path, reference } : { kind, path };
  }
  if (text.startsWith("docker://")) return { kind: "registry", reference: text.slice("docker://".length) };
  return { kind: "registry", reference: text };
}

/**
 * The tag a source location names, to name a copy by: a registry reference's tag; a layout's or
 * archive's REF, or the tag in it when REF is a full reference; `latest` when the source names
 * none (a digest, or no REF at all), as a registry destination without a tag gets.
 */
export function sourceTagOf(location: Location): string {
  const text = location.reference;
  if (text === undefined) return DEFAULT_TAG;
  if (location.kind !== "registry" && !/[/:@]/.test(text)) return text;
  try {
    return parseReference(text).tag ?? DEFAULT_TAG;
  } catch {
    return DEFAULT_TAG;
  }
}

/** A store opened from a location, and the REF the location names, if any. */
export interface OpenedStore {
  store: ReadableStore;
  location: Location;
  /** The tag or digest (registry) or reference name (layout, archive) given; undefined when none was. */
  reference: string | undefined;
  close(): Promise<void>;
}

/**
 * How an archive source is read (docs/archives.md, "Reading archives in place"): where the large
 * blobs of a compressed archive go during its one pass, and what must hold before any goes there.
 */
export interface ArchiveSourceOptions {
  /** Default: verified and dropped (read again from the archive if ever needed). */
  archiveBlobs?: BlobPlacement;
  /**
   * A check on the archive's metadata (a signature, with --key) that must pass before any blob is
   * placed: a compressed archive is then read twice, first with every blob dropped.
   */
  beforePlacing?: (store: ArchiveStore, reference: string) => Promise<unknown>;
}

/** Opens the store a location names, without choosing an image in it (for listing its tags). */
export async function openStore(text: string, global: GlobalOptions, context: CliContext, options: ArchiveSourceOptions = {}): Promise<OpenedStore> {
  const location = parseLocation(text);
  switch (location.kind) {
    case "layout": {
      const store = new OciLayoutStore(resolvePath(context, location.path));
      await store.requireLayout();
      return { store, location, reference: location.reference, close: async () => undefined };
    }
    case "archive": {
      const { store, close } = await openArchive(location.path, context, { placement: options.archiveBlobs });
      return { store, location, reference: location.reference, close };
    }
    case "registry": {
      const reference = parseReference(location.reference);
      const options = await registryOptionsFrom(global, context);
      const { closeRegistryConnections, openRepository } = await loadRegistryClient();
      return {
        store: openRepository(reference, options),
        location,
        reference: reference.digest ?? reference.tag,
        close: () => closeRegistryConnections(options),
      };
    }
  }
}

/** Opens the store a location names, with the image to use in it: the REF given, `latest`, or a store's only image. */
export async function openSource(text: string, global: GlobalOptions, context: CliContext, options: ArchiveSourceOptions = {}): Promise<OpenedSource> {
  const { beforePlacing, ...placing } = options;
  const gated = beforePlacing !== undefined && parseLocation(text).kind === "archive";
  // Nothing is placed before the check passed: the first read drops every blob.
  const opened = await openStore(text, global, context, gated ? {} : placing);
  let reference: string;
  try {
    // A registry reference without tag or digest means `latest`; a layout or archive, its only image.
    reference = opened.reference ?? (hasIndex(opened.store) ? await onlyImageIn(opened.store, text) : DEFAULT_TAG);
    if (gated) await beforePlacing(opened.store as ArchiveStore, reference);
  } catch (error) {
    await opened.close();
    await placing.archiveBlobs?.close();
    throw error;
  }
  if (!gated) return { store: opened.store, reference, close: opened.close };
  await opened.close();
  const reopened = await openStore(text, global, context, placing);
  return { store: reopened.store, reference, close: reopened.close };
}

function hasIndex(store: ReadableStore): store is ReadableStore & IndexedStore {
  return typeof (store as Partial<IndexedStore>).entries === "function" && typeof (store as Partial<IndexedStore>).readBlob === "function";
}

/** Opens a store to write into, with the image to attach to: a registry or a layout. An archive is read-only. */
export async function openWritableSource(text: string, global: GlobalOptions, context: CliContext, action = "write to"): Promise<OpenedSource & { store: Store }> {
  if (parseLocation(text).kind === "archive") {
    throw new OcibootError("USAGE", `Cannot ${action} ${text}: an archive is read-only; import it into a store first`);
  }
  const source = await openSource(text, global, context);
  const { store } = source;
  if (!isWritableStore(store)) {
    await source.close();
    throw new OcibootError("USAGE", `Cannot ${action} ${store.description}: it cannot be written`);
  }
  return { ...source, store };
}

/** A whole store, or one image in a store. */
export type OpenedStoreOrImage = ({ store: OciLayoutStore | ArchiveStore; reference?: undefined } | { store: ReadableStore; reference: string }) & { close(): Promise<void> };

/**
 * A layout or archive named without REF opens as the whole store (`verify oci:DIR` checks every
 * image and blob); anything else opens as {@link openSource} does.
 */
export async function openStoreOrImage(text: string, global: GlobalOptions, context: CliContext): Promise<OpenedStoreOrImage> {
  const location = parseLocation(text);
  if (location.kind === "layout" && location.reference === undefined) {
    return { store: new OciLayoutStore(resolvePath(context, location.path)), close: async () => undefined };
  }
  if (location.kind === "archive" && location.reference === undefined) return openArchive(location.path, context);
  return openSource(text, global, context);
}

/**
 * An archive, read in place (docs/archives.md, "Reading archives in place"): a plain `.tar` by
 * offset, a compressed one in one pass whose large blobs go where `placement` puts them (default:
 * verified and dropped). Closing removes what the placement left and did not hand on.
 */
export async function openArchive(
  path: string,
  context: CliContext,
  options: { placement?: BlobPlacement | undefined; keepCorrupt?: boolean } = {},
): Promise<{ store: ArchiveStore; close(): Promise<void> }> {
  const { placement } = options;
  const close = async () => {
    await placement?.close();
  };
  try {
    const store = await openArchiveInPlace(resolvePath(context, path), {
      signal: context.signal,
      ...(placement ? { placement } : {}),
      ...(options.keepCorrupt === true ? { keepCorrupt: true } : {}),
    });
    return { store, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * This machine's architecture, the default choice from a multi-arch index. The os is always
 * linux: a boot image is fetched for the machine it will boot, even from a Mac.
 */
export function defaultPlatform(): Platform {
  return platformFromNode(process.arch, "linux");
}
