import { isReferrerLister, type ReadableStore, type WritableStore } from "../content/store.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { sha256DigestOf } from "../oci/digest.ts";
import { formatPlatform, platformMatches } from "../oci/platform.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Annotation } from "../oci/mediatypes.ts";
import { cosignTagsFor } from "../oci/signature.ts";
import { copyGraph, type CopyGraphOptions } from "./copy-graph.ts";
import { readManifestBytes, walkGraph } from "./graph-walk.ts";
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
  /**
   * Copy only these platforms of an index: the target receives a new index that lists just the
   * entries copied (so it has a new digest), as `skopeo copy` and `crane copy --platform` make it.
   */
  platforms?: readonly Platform[];
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
  /** With `platforms`: the source's index, which `descriptor` (the new, narrowed index) replaces. */
  sourceIndex?: Descriptor;
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
  const sourceRoot: Descriptor = { mediaType: resolved.mediaType, digest: resolved.digest, size: resolved.size };
  const narrowed = options.platforms === undefined ? undefined : await narrowIndex(source, reference, sourceRoot, options.platforms, options.signal);
  const root = narrowed?.descriptor ?? sourceRoot;
  if (options.targetDigest !== undefined && options.targetDigest !== root.digest) {
    throw new OcibootError("USAGE", `Cannot copy ${reference} to ${options.targetDigest}: the source is ${root.digest}`);
  }
  // A narrowed index is new, so the source index (or its manifests) must carry the signature.
  const signers = options.trust ? await verifyImageSignature(source, sourceRoot, options.trust, signatureLookup(options.trust, options.signal)) : undefined;
  const copied = { count: 0, bytes: 0 };
  const graphOptions: CopyGraphOptions = {
    ...options,
    visited: options.visited ?? new Set<string>(),
    onCopied: (descriptor) => {
      copied.count++;
      copied.bytes += descriptor.size;
      options.onCopied?.(descriptor);
    },
  };
  if (narrowed === undefined) {
    await copyGraph(source, target, root, graphOptions);
  } else {
    for (const entry of narrowed.entries) await copyGraph(source, target, entry, graphOptions);
    if (!(await target.exists(root))) {
      await target.push(root, new Blob([narrowed.bytes]).stream(), options.signal ? { signal: options.signal } : {});
      graphOptions.onCopied?.(root);
    }
  }
  if (options.targetReference !== undefined) await target.tag(root, options.targetReference);
  else if (keepsUntaggedEntries(target)) await target.addUntaggedEntry(root);
  const subjects = narrowed === undefined ? [root] : narrowed.entries;
  const referrers = options.withReferrers === true ? await copyReferrers(source, target, subjects, graphOptions) : [];
  if (options.withReferrers === true) referrers.push(...(await copyCosignArtifacts(source, target, subjects, graphOptions, options.trust?.name)));
  const result: CopyImageResult = { descriptor: root, referrers, copied };
  if (narrowed !== undefined) result.sourceIndex = sourceRoot;
  if (signers) result.signers = signers;
  return result;
}

/** The index of the chosen platforms: the source index's own fields, with only the matching entries. */
interface NarrowedIndex {
  descriptor: Descriptor;
  bytes: Uint8Array;
  entries: Descriptor[];
}

async function narrowIndex(source: ReadableStore, reference: string, root: Descriptor, platforms: readonly Platform[], signal?: AbortSignal): Promise<NarrowedIndex> {
  const bytes = await readManifestBytes(source, root, signal);
  const parsed = parseManifest(bytes, root.mediaType);
  if (parsed.kind !== "index") {
    throw new OcibootError("USAGE", `Cannot copy only some platforms of ${reference}: it is a single manifest, not an index`);
  }
  for (const platform of platforms) {
    if (!parsed.index.manifests.some((entry) => platformMatches(platform, entry.platform))) {
      const available = parsed.index.manifests.map((entry) => (entry.platform === undefined ? "no platform" : formatPlatform(entry.platform)));
      throw new OcibootError("NOT_FOUND", `Cannot copy platform ${formatPlatform(platform)} of ${reference}: the index has ${available.join(", ") || "no entries"}`, {
        details: { available },
      });
    }
  }
  const entries = parsed.index.manifests.filter((entry) => platforms.some((platform) => platformMatches(platform, entry.platform)));
  // The source's own fields and their order are kept; only the list of manifests changes.
  const document = { ...(JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>) };
  const kept = new Set(entries.map((entry) => entry.digest));
  document["manifests"] = (document["manifests"] as Array<{ digest?: unknown }>).filter((entry) => kept.has(entry.digest as Descriptor["digest"]));
  const narrowed = new TextEncoder().encode(JSON.stringify(document));
  return { descriptor: { mediaType: parsed.mediaType, digest: sha256DigestOf(narrowed), size: narrowed.byteLength }, bytes: narrowed, entries };
}

/**
 * cosign keeps signatures, attestations and SBOMs not as referrers but under tags named after the
 * manifest (`sha256-<hex>.sig`, `.att`, `.sbom`; docs/trust.md). They travel with the image under
 * the same tags, so `--key` works on the far side of an air gap.
 */
async function copyCosignArtifacts(
  source: ReadableStore,
  target: WritableStore,
  roots: readonly Descriptor[],
  options: CopyGraphOptions,
  name: string | undefined,
): Promise<Descriptor[]> {
  const copied: Descriptor[] = [];
  for (const subject of await manifestsOf(source, roots, options.signal)) {
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

/** The roots and, for an index, every manifest and index below it: the subjects whose signatures travel along. */
async function manifestsOf(source: ReadableStore, roots: readonly Descriptor[], signal: AbortSignal | undefined): Promise<Descriptor[]> {
  const found: Descriptor[] = [];
  await walkGraph(source, roots, {
    action: `copy the signatures of ${roots[0]?.digest}`,
    ...(signal ? { signal } : {}),
    next: (node) => (node.parsed.kind === "index" ? node.parsed.index.manifests : []),
    enter: (node) => {
      found.push({ mediaType: node.parsed.mediaType, digest: node.descriptor.digest, size: node.descriptor.size });
    },
  });
  return found;
}

/**
 * Copies the referrers of the roots and, for an index, of every manifest and index below them, each
 * after its subject; referrers of referrers (a signature of an SBOM) follow, as deep as the walk allows.
 */
async function copyReferrers(source: ReadableStore, target: WritableStore, roots: readonly Descriptor[], options: CopyGraphOptions): Promise<Descriptor[]> {
  if (!isReferrerLister(source)) {
    throw new OcibootError("UNSUPPORTED", `Cannot copy the referrers of ${roots[0]?.digest}: ${source.description} cannot list referrers`);
  }
  const image = new Set<string>(roots.map((root) => root.digest));
  const listed = new Map<string, Descriptor>();
  const copied: Descriptor[] = [];
  await walkGraph(source, roots, {
    action: `copy the referrers of ${roots[0]?.digest}`,
    ...(options.signal ? { signal: options.signal } : {}),
    next: async (node) => {
      // Below the image itself, only its index's manifests; from there on, referrers only.
      const below = image.has(node.descriptor.digest) && node.parsed.kind === "index" ? node.parsed.index.manifests : [];
      for (const child of below) image.add(child.digest);
      const referrers = (await source.referrers(node.descriptor)).filter((referrer) => !image.has(referrer.digest));
      for (const referrer of referrers) if (!listed.has(referrer.digest)) listed.set(referrer.digest, referrer);
      return [...below, ...referrers];
    },
    enter: async (node) => {
      const referrer = listed.get(node.descriptor.digest);
      if (image.has(node.descriptor.digest) || referrer === undefined) return;
      // The target lists a manifest with a subject when it receives it (referrers index, fallback tag or index.json entry).
      await copyGraph(source, target, { mediaType: node.descriptor.mediaType, digest: node.descriptor.digest, size: node.descriptor.size }, options);
      copied.push(referrer);
    },
  });
  return copied;
}

function keepsUntaggedEntries(target: object): target is UntaggedEntryTarget {
  return typeof (target as Partial<UntaggedEntryTarget>).addUntaggedEntry === "function";
}
