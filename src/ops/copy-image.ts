import { isReferrerLister, type ReadableStore, type WritableStore } from "../content/store.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import { cosignTagsFor } from "../oci/signature.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Annotation, Limits } from "../oci/mediatypes.ts";
import { copyGraph, type CopyGraphOptions } from "./copy-graph.ts";
import { readManifestBytes } from "./resolve.ts";
import { signatureLookup, type TrustOptions, verifyImageSignature, type VerifiedSigner } from "./signature.ts";

/** Options for {@link copyImage}. */
export interface CopyImageOptions extends CopyGraphOptions {
  /**
   * The name of the copy: a tag in a registry, a reference name (`org.opencontainers.image.ref.name`)
   * in a layout or archive. Without it a registry holds the image by digest only, and a layout or
   * archive lists it untagged.
   */
  targetReference?: string;
  /** The digest the destination names (`host/repo@sha256:…`): the copy is refused unless the source resolves to it. */
  targetDigest?: string;
  /** Also copy the manifests that refer to the image (OCI 1.1 `subject`), and theirs in turn. */
  withReferrers?: boolean;
  /** Require a signature by a trusted key (see {@link verifyImageSignature}) before the target changes. */
  trust?: TrustOptions;
}

/** What {@link copyImage} did. */
export interface CopyImageResult {
  /** The manifest or index copied, under the same digest. */
  descriptor: Descriptor;
  /** Referrers copied, as the source lists them. */
  referrers: Descriptor[];
  /** Blobs and manifests the target lacked and received, and their bytes. */
  copied: { count: number; bytes: number };
  /** Who signed the image, when a signature was required. */
  signers?: VerifiedSigner[];
}

/** A target that keeps an index of images (a layout, an archive being written) and can list one without a name. */
interface UntaggedEntryTarget {
  addUntaggedEntry(descriptor: Descriptor): Promise<void>;
}

/**
 * Copies the image `reference` names from one store to another, digest-preserving: every blob is
 * verified by the target as it lands, manifests before the index that names them, then the image
 * is named in the target. With `withReferrers`, the referrers of the image and of every manifest
 * of an index follow, each after its subject: a registry target records them in its referrers
 * index (or the `sha256-<hex>` fallback tag), a layout or archive as untagged index.json entries.
 */
export async function copyImage(source: ReadableStore, reference: string, target: WritableStore, options: CopyImageOptions = {}): Promise<CopyImageResult> {
  const resolved = await source.resolve(reference);
  const root: Descriptor = { mediaType: resolved.mediaType, digest: resolved.digest, size: resolved.size };
  if (options.targetDigest !== undefined && options.targetDigest !== root.digest) {
    throw new OcibootError("USAGE", `Cannot copy ${reference} to ${options.targetDigest}: the source is ${root.digest}`);
  }
  const signers = options.trust ? await verifyImageSignature(source, root, options.trust.keys, signatureLookup(options.trust, options.signal)) : undefined;
  const copied = { count: 0, bytes: 0 };
  const graphOptions: CopyGraphOptions = {
    ...options,
    onCopied: (descriptor) => {
      copied.count++;
      copied.bytes += descriptor.size;
      options.onCopied?.(descriptor);
    },
  };
  await copyGraph(source, target, root, graphOptions);
  if (options.targetReference !== undefined) await target.tag(root, options.targetReference);
  else if (keepsUntaggedEntries(target)) await target.addUntaggedEntry(root);
  const referrers = options.withReferrers === true ? await copyReferrers(source, target, root, graphOptions) : [];
  if (options.withReferrers === true) referrers.push(...(await copyCosignArtifacts(source, target, root, graphOptions, options.trust?.name)));
  return signers ? { descriptor: root, referrers, copied, signers } : { descriptor: root, referrers, copied };
}

/** Referrers of referrers (a signature of an SBOM) are followed this many steps at most. */
const MAX_REFERRER_DEPTH = 4;

async function copyReferrers(source: ReadableStore, target: WritableStore, root: Descriptor, options: CopyGraphOptions): Promise<Descriptor[]> {
  if (!isReferrerLister(source)) {
    throw new OcibootError("UNSUPPORTED", `Cannot copy the referrers of ${root.digest}: ${source.description} cannot list referrers`);
  }
  const seen = new Set<string>();
  let subjects = await manifestsOf(source, root, options.signal, 0);
  for (const subject of subjects) seen.add(subject.digest);
  const copied: Descriptor[] = [];
  for (let depth = 0; depth < MAX_REFERRER_DEPTH && subjects.length > 0; depth++) {
    const next: Descriptor[] = [];
    for (const subject of subjects) {
      for (const referrer of await source.referrers(subject)) {
        if (seen.has(referrer.digest)) continue;
        seen.add(referrer.digest);
        // The target lists a manifest with a subject when it receives it (referrers index, fallback tag or index.json entry).
        await copyGraph(source, target, { mediaType: referrer.mediaType, digest: referrer.digest, size: referrer.size }, options);
        copied.push(referrer);
        next.push(referrer);
      }
    }
    subjects = next;
  }
  return copied;
}

/**
 * cosign keeps signatures, attestations and SBOMs not as referrers but under tags named after the
 * manifest (`sha256-<hex>.sig`, `.att`, `.sbom`; docs/trust.md). They travel with the image under
 * the same tags, so `--key` works on the far side of an air gap.
 */
async function copyCosignArtifacts(source: ReadableStore, target: WritableStore, root: Descriptor, options: CopyGraphOptions, name: string | undefined): Promise<Descriptor[]> {
  const copied: Descriptor[] = [];
  for (const subject of await manifestsOf(source, root, options.signal, 0)) {
    for (const tag of cosignTagsFor(subject.digest)) {
      const found = await resolveOptional(source, [tag, ...(name !== undefined ? [`${name}:${tag}`] : [])]);
      if (found === undefined) continue;
      const descriptor: Descriptor = { mediaType: found.mediaType, digest: found.digest, size: found.size };
      await copyGraph(source, target, descriptor, options);
      await target.tag(descriptor, tag);
      copied.push({ ...descriptor, annotations: { [Annotation.refName]: tag } });
    }
  }
  return copied;
}

async function resolveOptional(store: ReadableStore, names: readonly string[]): Promise<Descriptor | undefined> {
  for (const name of names) {
    try {
      return await store.resolve(name);
    } catch (error) {
      if (!isOcibootError(error) || !["NOT_FOUND", "INVALID_REFERENCE", "USAGE"].includes(error.code)) throw error;
    }
  }
  return undefined;
}

/** The root and, for an index, every manifest and index below it: the subjects whose referrers travel along. */
async function manifestsOf(source: ReadableStore, node: Descriptor, signal: AbortSignal | undefined, depth: number): Promise<Descriptor[]> {
  if (depth > Limits.indexDepth) {
    throw new OcibootError("UNSAFE_CONTENT", `Cannot copy ${node.digest}: indexes nested deeper than ${Limits.indexDepth}`);
  }
  const parsed = parseManifest(await readManifestBytes(source, node, signal), node.mediaType);
  const found: Descriptor[] = [{ mediaType: parsed.mediaType, digest: node.digest, size: node.size }];
  if (parsed.kind === "index") {
    for (const child of parsed.index.manifests) found.push(...(await manifestsOf(source, child, signal, depth + 1)));
  }
  return found;
}

function keepsUntaggedEntries(target: object): target is UntaggedEntryTarget {
  return typeof (target as Partial<UntaggedEntryTarget>).addUntaggedEntry === "function";
}
