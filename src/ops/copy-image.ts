import { isReferrerLister, type ReadableStore, type WritableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "../oci/descriptor.ts";
import { sha256DigestOf } from "../oci/digest.ts";
import { formatPlatform, platformMatches } from "../oci/platform.ts";
import { parseManifest } from "../oci/manifest.ts";
import { copyGraph, type CopyGraphOptions } from "./copy-graph.ts";
import { readManifestBytes, walkGraph } from "./graph-walk.ts";

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
  return narrowed === undefined ? { descriptor: root, referrers, copied } : { descriptor: root, referrers, copied, sourceIndex: sourceRoot };
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
