import type { ReadableStore } from "../content/store.ts";
import { readVerified } from "../content/verify.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { isDigest } from "../oci/digest.ts";
import type { ImageManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { type IndexSelection, selectIndexEntry } from "../oci/platform.ts";
import { walkGraph } from "./graph-walk.ts";

/** What to pick from an index (see {@link IndexSelection}). */
export type ManifestSelection = IndexSelection;

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
  const root = await store.resolve(reference);
  if (isDigest(reference) && root.digest !== reference) {
    throw new OcibootError("INTEGRITY", `Cannot resolve ${reference}: the store answered with ${root.digest}`);
  }
  const indexes: Descriptor[] = [];
  const indexBytes: Uint8Array[] = [];
  let found: ResolvedManifest | undefined;
  await walkGraph(store, root, {
    action: `resolve ${reference}`,
    ...(signal ? { signal } : {}),
    next: ({ descriptor, bytes, parsed }) => {
      if (parsed.kind === "manifest") {
        found = { descriptor: { ...descriptor, mediaType: parsed.mediaType }, bytes, manifest: parsed.manifest, indexes, indexBytes };
        return [];
      }
      indexes.push(descriptor);
      indexBytes.push(bytes);
      return [selectIndexEntry(parsed.index, selection)];
    },
  });
  if (found === undefined) {
    // Only an index that leads back to a manifest or index already passed ends the walk without one.
    throw new OcibootError("INVALID_MANIFEST", `Cannot resolve ${reference}: the index leads back to where it started`);
  }
  return found;
}

/** Reads a config blob, bounded and verified. */
export async function readConfigBytes(store: ReadableStore, descriptor: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
  const content = await store.fetch(descriptor, signal ? { signal } : {});
  return readVerified(content.stream, descriptor, Limits.configBytes);
}
