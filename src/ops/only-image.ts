import type { Descriptor } from "../oci/descriptor.ts";
import { refNameOf } from "../content/layout-index.ts";
import { OcibootError } from "../errors.ts";
import { subjectOf } from "../oci/artifact.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType } from "../oci/mediatypes.ts";

/** A store that lists its images in an index.json: a layout directory, or an archive read in place. */
export interface IndexedStore {
  entries(): Promise<Descriptor[]>;
  readBlob(descriptor: Descriptor): Promise<Uint8Array>;
}

/**
 * With no REF, a layout or archive holding exactly one image means that image. Its referrers
 * (entries whose `subject` is another entry, as `copy --with-referrers` and `oras attach` add them)
 * come along and do not count as images of their own. `name` is how the user wrote the location.
 */
export async function onlyImageIn(store: IndexedStore, name: string): Promise<string> {
  const digests = await withoutReferrers(store, [...new Set((await store.entries()).map((entry) => entry.digest))]);
  if (digests.length === 1) return digests[0] as string;
  if (digests.length === 0) throw new OcibootError("NOT_FOUND", `Cannot use ${name}: the store holds no image`);
  throw new OcibootError("AMBIGUOUS", `Cannot use ${name}: the store holds ${digests.length} images; name one as ${name}:REF`);
}

/** cosign's tag scheme (`sha256-<hex>.sig`, `.att`, `.sbom`, or a full reference ending so): not images of their own. */
const COSIGN_TAG = /(?:^|:)sha256-[0-9a-f]{64}\.(?:sig|att|sbom)$/;

async function withoutReferrers(store: IndexedStore, digests: string[]): Promise<string[]> {
  if (digests.length < 2) return digests;
  const listed = new Set(digests);
  const images: string[] = [];
  for (const entry of await store.entries()) {
    if (COSIGN_TAG.test(refNameOf(entry) ?? "")) continue;
    if (!listed.delete(entry.digest)) continue;
    const isManifest = isManifestMediaType(entry.mediaType) || isIndexMediaType(entry.mediaType);
    const subject = isManifest ? subjectOf(parseManifest(await store.readBlob(entry), entry.mediaType)) : undefined;
    if (subject === undefined || !digests.includes(subject.digest)) images.push(entry.digest);
  }
  return images;
}
