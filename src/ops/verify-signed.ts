import type { ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import type { Digest } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { readManifestBytes } from "./graph-walk.ts";
import type { ResolvedManifest } from "./resolve.ts";
import { readMaterial } from "./signature-material.ts";
import { type TrustAnchors, verifyResolvedSignature, type VerifiedSigner } from "./signature.ts";
import { type DirectoryCheckOptions, readSavedFetch, verifySavedDirectory, type VerifyReport } from "./verify.ts";

export interface SignedFolderCheckOptions extends DirectoryCheckOptions {
  trust: TrustAnchors;
  /** The digest the user pinned (`REF@sha256:…`): manifest.json must hash to it. */
  pinned?: Digest;
}

/**
 * Re-checks a folder `fetch --key` wrote, with no registry (docs/trust.md): `DIR/manifest.json`
 * (its digest must match a pin), its signature from the saved material, then every file as
 * {@link verifySavedDirectory} checks it.
 *
 * @throws OcibootError SIGNATURE when no trusted signature verifies; INTEGRITY when the pin differs.
 */
export async function verifySignedFolder(directory: string, options: SignedFolderCheckOptions): Promise<VerifyReport & { signer: VerifiedSigner }> {
  const { trust, pinned, ...check } = options;
  const saved = await readSavedFetch(directory);
  if (pinned !== undefined && pinned !== saved.digest) {
    throw new OcibootError("INTEGRITY", `Cannot verify ${directory}: ${saved.manifestPath} is ${saved.digest}, not the pinned ${pinned}`);
  }
  const parsed = parseManifest(saved.manifestBytes);
  const material = await readMaterial(directory);
  const resolved: ResolvedManifest = {
    descriptor: { mediaType: parsed.mediaType, digest: saved.digest, size: saved.manifestBytes.byteLength },
    bytes: saved.manifestBytes,
    manifest: saved.manifest,
    indexes: [],
    indexBytes: [],
  };
  const index = material.index === undefined ? undefined : await savedIndex(material.store, material.index, options.signal);
  const entry = index?.entries.find((candidate) => candidate.digest === saved.digest);
  if (index !== undefined && entry !== undefined) {
    resolved.descriptor = { ...entry, mediaType: parsed.mediaType };
    resolved.indexes = [index.descriptor];
    resolved.indexBytes = [index.bytes];
  }
  const { signer } = await verifyResolvedSignature(material.store, resolved, trust, {}, options.signal ? { signal: options.signal } : {});
  const report = await verifySavedDirectory(saved, check);
  // The manifest itself is an item too: its signature is what vouches for every other file.
  const manifestItem = { name: "manifest.json", digest: saved.digest, size: saved.manifestBytes.byteLength, ok: true, state: "ok" as const };
  return { ...report, items: [manifestItem, ...report.items], signer };
}

async function savedIndex(
  layout: ReadableStore,
  descriptor: Descriptor,
  signal: AbortSignal | undefined,
): Promise<{ descriptor: Descriptor; bytes: Uint8Array; entries: Descriptor[] } | undefined> {
  const bytes = await readManifestBytes(layout, descriptor, signal);
  const parsed = parseManifest(bytes, descriptor.mediaType);
  return parsed.kind === "index" ? { descriptor, bytes, entries: parsed.index.manifests } : undefined;
}
