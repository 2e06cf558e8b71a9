import { OcibootError } from "../errors.ts";
import { referrerDescriptorOf, subjectOf } from "../oci/artifact.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType } from "../oci/mediatypes.ts";

/** Manifests one referrers scan reads at most (each bounded to 4 MiB), so a huge store cannot make it unbounded. */
const MAX_REFERRER_SCAN = 10_000;

/**
 * The manifests and indexes among index.json entries whose `subject` is `subject`, as referrer
 * descriptors (`artifactType`, annotations); filtered by `artifactType` when given. `read` gives an
 * entry's manifest, bounded and verified, or undefined when the store lacks it (it is skipped).
 * Shared by the layout store and the archive store, which keep referrers the same way.
 */
export async function referrersAmong(
  entries: readonly Descriptor[],
  subject: Descriptor,
  artifactType: string | undefined,
  store: { description: string; read(entry: Descriptor): Promise<Uint8Array | undefined> },
): Promise<Descriptor[]> {
  const scanned = new Set<string>();
  const found: Descriptor[] = [];
  for (const entry of entries) {
    if (scanned.has(entry.digest) || !(isManifestMediaType(entry.mediaType) || isIndexMediaType(entry.mediaType))) continue;
    scanned.add(entry.digest);
    if (scanned.size > MAX_REFERRER_SCAN) {
      throw new OcibootError("UNSUPPORTED", `Cannot list referrers of ${subject.digest} in ${store.description}: more than ${MAX_REFERRER_SCAN} manifests to scan`);
    }
    const bytes = await store.read(entry);
    if (bytes === undefined) continue;
    const parsed = parseManifest(bytes, entry.mediaType);
    if (subjectOf(parsed)?.digest !== subject.digest) continue;
    const referrer = referrerDescriptorOf({ mediaType: parsed.mediaType, digest: entry.digest, size: entry.size }, parsed);
    if (artifactType === undefined || referrer.artifactType === artifactType) found.push(referrer);
  }
  return found;
}
