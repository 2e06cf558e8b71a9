import { type ArchiveReadOptions, readOciArchive } from "../content/archive.ts";
import { checkLayoutFile, parseLayoutIndex, refNameOf } from "../content/layout-index.ts";
import type { OciLayoutStore } from "../content/layout.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType, Limits } from "../oci/mediatypes.ts";

/** What {@link importArchive} brought into the store. */
export interface ImportResult {
  /** The archive's index.json entries, now in the store's index.json (tags replace tags of the same name). */
  images: Descriptor[];
  /** Blobs read from the archive (each verified), and their bytes. */
  blobs: number;
  bytes: number;
}

/** Options for {@link importArchive}. */
export interface ImportOptions extends ArchiveReadOptions {
  /**
   * Called for each blob whose content does not match its name, instead of failing: the rest of
   * the archive is still read and index.json still merged, and checking that every image is
   * complete is left to the caller (verify reports each item; a real import must not set this).
   */
  onCorruptBlob?: (descriptor: Descriptor, error: OcibootError) => void;
}

/**
 * Imports an OCI layout archive (the Garden Linux `<name>.oci.tar.xz` with its `onmetal/` folder,
 * or any `.tar`, `.tar.gz`, `.tar.xz` layout) into the store in one streaming pass: each blob is
 * verified on its way into the store, then every manifest the archive's index.json names is
 * checked to be complete before its entries are added. A failure leaves index.json untouched.
 */
export async function importArchive(store: OciLayoutStore, archivePath: string, options: ImportOptions = {}): Promise<ImportResult> {
  let indexBytes: Uint8Array | undefined;
  let layoutBytes: Uint8Array | undefined;
  let blobs = 0;
  let bytes = 0;
  for await (const entry of readOciArchive(archivePath, options)) {
    if (entry.kind === "blob") {
      try {
        await store.push(entry.descriptor, entry.content);
      } catch (error) {
        if (!options.onCorruptBlob || !isOcibootError(error, "INTEGRITY")) throw error;
        options.onCorruptBlob(entry.descriptor, error);
        continue;
      }
      blobs++;
      bytes += entry.descriptor.size;
    } else if (entry.kind === "index") {
      indexBytes = entry.bytes;
    } else {
      layoutBytes = entry.bytes;
    }
  }
  if (!layoutBytes && !indexBytes) {
    throw new OcibootError("NOT_FOUND", `Cannot import ${archivePath}: it holds no OCI image layout (no oci-layout, no index.json)`);
  }
  checkLayoutFile(layoutBytes, `${archivePath}: oci-layout`);
  if (!indexBytes) throw new OcibootError("INVALID_MANIFEST", `Cannot import ${archivePath}: no index.json; not an OCI image layout archive`);
  const index = parseLayoutIndex(indexBytes, `${archivePath}: index.json`);
  if (index.manifests.length === 0) throw new OcibootError("NOT_FOUND", `Cannot import ${archivePath}: its index.json lists no image`);
  if (!options.onCorruptBlob) for (const entry of index.manifests) await checkComplete(store, entry, archivePath, 0);
  await store.updateIndex((entries) => mergeEntries(entries, index.manifests));
  return { images: index.manifests, blobs, bytes };
}

/** Adds imported entries: a tag replaces the store's tag of the same name; an untagged entry is added once. */
function mergeEntries(current: Descriptor[], imported: readonly Descriptor[]): Descriptor[] {
  let merged = [...current];
  for (const entry of imported) {
    const name = refNameOf(entry);
    if (name !== undefined) merged = [...merged.filter((existing) => refNameOf(existing) !== name), entry];
    else if (!merged.some((existing) => existing.digest === entry.digest && refNameOf(existing) === undefined)) merged.push(entry);
  }
  return merged;
}

/** Every blob a manifest or index reaches must now be in the store. */
async function checkComplete(store: OciLayoutStore, descriptor: Descriptor, archivePath: string, depth: number): Promise<void> {
  if (!(await store.exists(descriptor))) {
    throw new OcibootError("INTEGRITY", `Cannot import ${archivePath}: it lacks ${descriptor.digest} (${descriptor.size} bytes) that its index names`);
  }
  if (!isManifestMediaType(descriptor.mediaType) && !isIndexMediaType(descriptor.mediaType)) return;
  if (depth > Limits.indexDepth) throw new OcibootError("UNSUPPORTED", `Cannot import ${archivePath}: indexes nested too deep`);
  const parsed = parseManifest(await store.readBlob(descriptor));
  const children = parsed.kind === "manifest" ? [parsed.manifest.config, ...parsed.manifest.layers] : parsed.index.manifests;
  for (const child of children) await checkComplete(store, child, archivePath, depth + 1);
}
