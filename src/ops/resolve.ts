import type { ReadableStore } from "../content/store.ts";
import { readVerified } from "../content/verify.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { isDigest } from "../oci/digest.ts";
import { parseManifest, type ImageManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { selectIndexEntry } from "../oci/platform.ts";

export interface ManifestSelection {
  platform?: Platform;
  flavor?: string;
}

/** A manifest found from a reference, with the verified bytes it was parsed from. */
export interface ResolvedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
  manifest: ImageManifest;
  /** The index (or chain of indexes) walked through to reach the manifest, outermost first. */
  indexes: Descriptor[];
  /** The verified bytes of each of `indexes`, in the same order. */
  indexBytes: Uint8Array[];
}

/**
 * Resolves a tag or digest to one image manifest: every manifest and index read is verified
 * against its descriptor (so `name@sha256:…` is pinned), and indexes are narrowed by platform
 * and flavor, to a bounded depth.
 */
export async function resolveManifest(
  store: ReadableStore,
  reference: string,
  selection: ManifestSelection = {},
  signal?: AbortSignal,
): Promise<ResolvedManifest> {
  let descriptor = await store.resolve(reference);
  if (isDigest(reference) && descriptor.digest !== reference) {
    throw new OcibootError("INTEGRITY", `Cannot resolve ${reference}: the store answered with ${descriptor.digest}`);
  }
  const indexes: Descriptor[] = [];
  const indexBytes: Uint8Array[] = [];
  for (let depth = 0; depth <= Limits.indexDepth; depth++) {
    const bytes = await readManifestBytes(store, descriptor, signal);
    const parsed = parseManifest(bytes, descriptor.mediaType);
    if (parsed.kind === "manifest") {
      return { descriptor: { ...descriptor, mediaType: parsed.mediaType }, bytes, manifest: parsed.manifest, indexes, indexBytes };
    }
    indexes.push(descriptor);
    indexBytes.push(bytes);
    descriptor = selectIndexEntry(parsed.index, selection);
  }
  throw new OcibootError("UNSAFE_CONTENT", `Cannot resolve ${reference}: indexes nested deeper than ${Limits.indexDepth}`);
}

/** Reads a manifest or index blob, bounded and verified. */
export async function readManifestBytes(store: ReadableStore, descriptor: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
  const content = await store.fetch(descriptor, signal ? { signal } : {});
  return readVerified(content.stream, descriptor, Limits.manifestBytes);
}

/** Reads a config blob, bounded and verified. */
export async function readConfigBytes(store: ReadableStore, descriptor: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
  const content = await store.fetch(descriptor, signal ? { signal } : {});
  return readVerified(content.stream, descriptor, Limits.configBytes);
}
