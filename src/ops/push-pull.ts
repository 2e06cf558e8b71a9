import { indexEntryOf } from "../content/layout-index.ts";
import type { OciLayoutStore } from "../content/layout.ts";
import type { ReadableStore, WritableStore } from "../content/store.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { formatReference, parseReference } from "../oci/reference.ts";
import { copyGraph, type CopyGraphOptions } from "./copy-graph.ts";
import { type ManifestSelection, resolveManifest } from "./resolve.ts";
import { resolveLocalImage } from "./store-ops.ts";
import { signatureLookup, type TrustOptions, verifyImageSignature, verifyResolvedSignature, type VerifiedSigner } from "./signature.ts";

/**
 * Pushes a local image (manifest or index with all it reaches) to the repository its reference
 * names, skipping blobs the registry has, then points the reference's tag at it.
 *
 * @param name a reference as tagged in the store (`127.0.0.1:5000/gardenlinux:today`).
 */
export async function pushImage(store: OciLayoutStore, target: WritableStore & ReadableStore, name: string, options: CopyGraphOptions = {}): Promise<Descriptor> {
  const descriptor = await resolveLocalImage(store, name);
  const root: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
  await copyGraph(store, target, root, options);
  const reference = parseReference(name);
  if (reference.digest === undefined) await target.tag(root, reference.tag ?? "latest");
  return root;
}

export interface PullOptions extends CopyGraphOptions {
  /** Pull only the manifest these pick from an index (as `docker pull --platform`), not the whole index. */
  selection?: ManifestSelection;
  /** Require a signature by a trusted key before the store changes. */
  trust?: TrustOptions;
}

/**
 * Pulls an image (a whole index with every platform, one platform's manifest of it, or one
 * manifest) into the store, every blob verified as it lands, and tags it locally with the full
 * reference.
 *
 * @returns the descriptor and the full reference it is tagged under locally.
 */
export async function pullImage(
  source: ReadableStore,
  store: OciLayoutStore,
  name: string,
  options: PullOptions = {},
): Promise<{ descriptor: Descriptor; reference: string; signers?: VerifiedSigner[] }> {
  const reference = parseReference(name);
  const target = reference.digest ?? reference.tag ?? "latest";
  const resolved = options.selection ? await resolveManifest(source, target, options.selection, options.signal) : undefined;
  const descriptor = resolved ? resolved.descriptor : await source.resolve(target);
  const root: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
  let signers: VerifiedSigner[] | undefined;
  if (options.trust) {
    const lookup = signatureLookup(options.trust, options.signal);
    signers = resolved
      ? [(await verifyResolvedSignature(source, resolved, options.trust, { ...options.selection, ...(reference.digest === undefined && reference.tag !== undefined ? { tag: reference.tag } : {}) }, lookup)).signer]
      : await verifyImageSignature(source, root, options.trust, lookup);
  }
  if (options.selection && descriptor.platform) root.platform = descriptor.platform;
  await copyGraph(source, store, root, options);
  const full = formatReference(reference.digest === undefined ? { ...reference, tag: reference.tag ?? "latest" } : reference);
  if (reference.digest === undefined) await store.tag(root, full);
  else await store.addUntaggedEntry(indexEntryOf(root));
  return signers ? { descriptor: root, reference: full, signers } : { descriptor: root, reference: full };
}
