import { isTagLister, type ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { isDigest } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Annotation } from "../oci/mediatypes.ts";
import { readManifestBytes } from "./graph-walk.ts";
import { type ManifestSelection, resolveManifest } from "./resolve.ts";

/** At most this many tags are listed; a repository with more is refused rather than read without end. */
export const MAX_TAGS = 100_000;

/**
 * Lists the tags of a store, as `crane ls` and `skopeo list-tags` do: a registry repository's
 * tags (its `Link` pages are followed, bounded), or the reference names of a layout or archive.
 *
 * @throws OcibootError UNSUPPORTED for a store that cannot list tags; REGISTRY beyond {@link MAX_TAGS}.
 */
export async function listTags(store: ReadableStore, options: { signal?: AbortSignal; limit?: number } = {}): Promise<string[]> {
  if (!isTagLister(store)) throw new OcibootError("UNSUPPORTED", `Cannot list tags of ${store.description}: the store cannot list them`);
  const limit = options.limit ?? MAX_TAGS;
  const tags: string[] = [];
  const seen = new Set<string>();
  for await (const tag of store.tags()) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (seen.has(tag)) continue;
    if (tags.length >= limit) throw new OcibootError("REGISTRY", `Cannot list tags of ${store.description}: more than ${limit} tags`);
    seen.add(tag);
    tags.push(tag);
  }
  return tags;
}

/** A manifest or index as stored: its descriptor and its exact bytes, verified against the digest. */
export interface ManifestRead {
  descriptor: Descriptor;
  bytes: Uint8Array;
}

/**
 * Reads the manifest or index a reference names, as `crane manifest` does: the exact bytes,
 * checked against the digest (a `name@sha256:…` reference must get that digest back). With a
 * platform or flavor, an index is narrowed to the one manifest they choose, as `fetch` chooses
 * it; without, an index is returned as it is.
 */
export async function readManifest(store: ReadableStore, reference: string, selection: ManifestSelection = {}, signal?: AbortSignal): Promise<ManifestRead> {
  if (selection.platform !== undefined || selection.flavor !== undefined) {
    const resolved = await resolveManifest(store, reference, selection, signal);
    return { descriptor: plainDescriptor(resolved.descriptor), bytes: resolved.bytes };
  }
  const root = await store.resolve(reference);
  if (isDigest(reference) && root.digest !== reference) {
    throw new OcibootError("INTEGRITY", `Cannot resolve ${reference}: the store answered with ${root.digest}`);
  }
  const bytes = await readManifestBytes(store, root, signal);
  const parsed = parseManifest(bytes, root.mediaType);
  return { descriptor: plainDescriptor({ ...root, mediaType: parsed.mediaType }), bytes };
}

/** A descriptor as `--descriptor` prints it: what the document is, without a store's own naming (`ref.name`). */
function plainDescriptor(descriptor: Descriptor): Descriptor {
  const { annotations, ...rest } = descriptor;
  const kept = Object.entries(annotations ?? {}).filter(([key]) => key !== Annotation.refName);
  return kept.length === 0 ? rest : { ...rest, annotations: Object.fromEntries(kept) };
}
