import { indexEntryOf, refNameOf, sameImageName, taggedEntry } from "../content/layout-index.ts";
import type { OciLayoutStore } from "../content/layout.ts";
import { OcibootError } from "../errors.ts";
import { referrerDescriptorOf, subjectOf } from "../oci/artifact.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { type Digest, isDigest } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType } from "../oci/mediatypes.ts";
import { formatReference, parseReference } from "../oci/reference.ts";

/** One line of `list`: an index.json entry as onmetal-image shows it. */
export interface ImageListing {
  /** `registry/repository`; undefined for an untagged entry or a name that is not a canonical reference. */
  repository?: string;
  /** The tag; undefined for an untagged entry. */
  tag?: string;
  /** The first 12 hex characters of the digest. */
  id: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** The raw `org.opencontainers.image.ref.name`, if any. */
  reference?: string;
  /**
   * `image`; `referrer` for an untagged manifest with a `subject` (an attached build file, a
   * signature); `duplicate` for an untagged entry of an image that is also listed tagged, or listed
   * untagged before.
   */
  kind: "image" | "referrer" | "duplicate";
  /** A referrer's artifact type (its `artifactType`, else its config media type). */
  artifactType?: string;
  /** The digest a referrer refers to. */
  subject?: Digest;
}

const SHORT_ID_LENGTH = 12;
const MIN_PREFIX_LENGTH = 4;

/**
 * Lists the store's images: every tagged entry, and each untagged image once unless it is also
 * tagged. Referrers (untagged manifests with a `subject`) and duplicate untagged entries are left
 * out unless `all` (docs/list.md). Order as onmetal-image's (digest, descending), then untagged
 * entries before tagged ones and names in order, so that the output is stable.
 */
export async function listImages(store: OciLayoutStore, options: { all?: boolean } = {}): Promise<ImageListing[]> {
  const entries = await store.entries();
  const tagged = new Set(entries.filter((entry) => refNameOf(entry) !== undefined).map((entry) => entry.digest));
  const seenUntagged = new Set<string>();
  const listings: ImageListing[] = [];
  for (const entry of entries) {
    const listing = listingOf(entry);
    if (listing.reference === undefined) {
      // Tagged, it is an image however it refers (the info image names the boot image as its subject).
      if (tagged.has(entry.digest) || seenUntagged.has(entry.digest)) {
        listing.kind = "duplicate";
      } else {
        const subject = await subjectOfEntry(store, entry);
        if (subject !== undefined) Object.assign(listing, { kind: "referrer", ...subject });
      }
      seenUntagged.add(entry.digest);
    }
    if (options.all === true || listing.kind === "image") listings.push(listing);
  }
  return listings.sort(
    (a, b) =>
      compare(b.digest, a.digest) ||
      compare(a.reference === undefined ? 0 : 1, b.reference === undefined ? 0 : 1) ||
      compare(a.reference ?? "", b.reference ?? ""),
  );
}

/**
 * The subject of an entry's manifest and the entry's artifact type, read bounded and verified;
 * undefined for a blob that is missing, unreadable or not a manifest: `list` still shows the entry.
 */
async function subjectOfEntry(store: OciLayoutStore, entry: Descriptor): Promise<{ subject: Digest; artifactType?: string } | undefined> {
  if (!(isManifestMediaType(entry.mediaType) || isIndexMediaType(entry.mediaType))) return undefined;
  let parsed;
  try {
    parsed = parseManifest(await store.readBlob(entry), entry.mediaType);
  } catch {
    return undefined;
  }
  const subject = subjectOf(parsed);
  if (subject === undefined) return undefined;
  const artifactType = referrerDescriptorOf(entry, parsed).artifactType;
  return artifactType === undefined ? { subject: subject.digest } : { subject: subject.digest, artifactType };
}

function listingOf(entry: Descriptor): ImageListing {
  const hex = entry.digest.slice(entry.digest.indexOf(":") + 1);
  const listing: ImageListing = {
    id: hex.slice(0, SHORT_ID_LENGTH),
    digest: entry.digest,
    mediaType: entry.mediaType,
    size: entry.size,
    kind: "image",
  };
  const name = refNameOf(entry);
  if (name === undefined) return listing;
  listing.reference = name;
  const canonical = canonicalReference(name);
  if (canonical) {
    listing.repository = `${canonical.registry}/${canonical.repository}`;
    if (canonical.tag !== undefined) listing.tag = canonical.tag;
  } else {
    // skopeo and oras name entries by tag alone ("latest"): show it rather than hide it.
    listing.tag = name;
  }
  return listing;
}

/** The parsed reference when `name` is already in full canonical form (as onmetal-image's ParseNamed demands). */
function canonicalReference(name: string): ReturnType<typeof parseReference> | undefined {
  try {
    const parsed = parseReference(name);
    return formatReference(parsed) === name && parsed.digest === undefined ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Finds what SRC names in the local store. In order: an entry whose ref name is SRC exactly; a full
 * digest (with or without `sha256:`); a unique digest prefix of at least 4 hex characters (the
 * 12-hex ID that `list` shows); a reference in any spelling (`ghcr.io/x/y` means `…:latest`).
 *
 * @returns the index.json entry (with its ref-name annotation) when matched by name, else the plain descriptor.
 * @throws OcibootError NOT_FOUND when nothing matches, AMBIGUOUS for a prefix of several digests.
 */
export async function resolveLocalImage(store: OciLayoutStore, source: string): Promise<Descriptor> {
  const entries = await store.entries();
  const exact = entries.filter((entry) => refNameOf(entry) === source).at(-1);
  if (exact) return exact;

  const hex = /^(?:sha256:)?([0-9a-f]+)$/.exec(source)?.[1];
  if (hex !== undefined && hex.length === 64) return store.resolve(`sha256:${hex}`);
  if (hex !== undefined && hex.length >= MIN_PREFIX_LENGTH) {
    const digests = [...new Set(entries.map((entry) => entry.digest).filter((digest) => digest.startsWith(`sha256:${hex}`)))];
    if (digests.length > 1) {
      throw new OcibootError("AMBIGUOUS", `Cannot resolve ${source}: the prefix matches ${digests.length} images (${digests.join(", ")})`);
    }
    const only = digests[0];
    if (only !== undefined) return store.resolve(only);
  }

  const reference = parseReferenceOrNull(source);
  if (reference) {
    if (reference.digest !== undefined) return store.resolve(reference.digest);
    const named = taggedEntry(entries, source, store.description);
    if (named) return named;
  }
  if (isDigest(source)) return store.resolve(source);
  throw new OcibootError("NOT_FOUND", `Cannot find ${source}: no image of that name, digest or ID in ${store.description}`);
}

/**
 * The full reference a tag is stored under: `ghcr.io/x/y:1.0` as written, a short or tagless name
 * completed (`alpine` → `docker.io/library/alpine:latest`) so that it reads back the same way.
 */
export function normalizeTagName(destination: string): string {
  const reference = parseReference(destination);
  if (reference.digest !== undefined) {
    throw new OcibootError("INVALID_REFERENCE", `Cannot tag as ${destination}: a tag name must not carry a digest`);
  }
  return formatReference({ ...reference, tag: reference.tag ?? "latest" });
}

/** Result of {@link tagImage}. */
export interface TagResult {
  source: Descriptor;
  reference: string;
}

/** Tags the image SRC names (see {@link resolveLocalImage}) as DST in the store. */
export async function tagImage(store: OciLayoutStore, source: string, destination: string): Promise<TagResult> {
  const reference = normalizeTagName(destination);
  const descriptor = await resolveLocalImage(store, source);
  await store.tag(descriptor, reference);
  return { source: descriptor, reference };
}

/**
 * Adds an untagged entry for a manifest unless one exists already, so that rebuilding or
 * re-importing the same image never duplicates entries (onmetal-image appended one each time).
 */
export async function addUntaggedEntry(store: OciLayoutStore, descriptor: Descriptor): Promise<void> {
  await store.addUntaggedEntry(indexEntryOf(descriptor));
}

/**
 * Removes what REF names from index.json: the tag, for a name; every entry of the image (its
 * untagged entry and all its tags), for a digest or ID. Blobs stay until `prune`.
 *
 * @returns the removed entries.
 */
export async function deleteImage(store: OciLayoutStore, name: string): Promise<Descriptor[]> {
  const entries = await store.entries();
  let matches: (entry: Descriptor) => boolean;
  const byName = entries.some((entry) => refNameOf(entry) === name);
  if (byName) {
    matches = (entry) => refNameOf(entry) === name;
  } else if (!/^(?:sha256:)?[0-9a-f]+$/.test(name) && entries.some((entry) => sameImageName(refNameOf(entry), name))) {
    // Every spelling of the name goes: `delete lab/x:1` also removes `docker.io/lab/x:1`.
    matches = (entry) => sameImageName(refNameOf(entry), name);
  } else {
    const descriptor = await resolveLocalImage(store, name);
    matches = (entry) => entry.digest === descriptor.digest;
  }
  let removed: Descriptor[] = [];
  await store.updateIndex((current) => {
    removed = current.filter(matches);
    return current.filter((entry) => !matches(entry));
  });
  if (removed.length === 0) throw new OcibootError("NOT_FOUND", `Cannot delete ${name}: not in ${store.description}`);
  return removed;
}

function parseReferenceOrNull(text: string): ReturnType<typeof parseReference> | undefined {
  try {
    return parseReference(text);
  } catch {
    return undefined;
  }
}

function compare(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
