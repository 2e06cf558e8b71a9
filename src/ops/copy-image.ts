import { isReferrerLister, type ReadableStore, type WritableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { copyGraph, type CopyGraphOptions } from "./copy-graph.ts";
import { walkGraph } from "./graph-walk.ts";

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
}

/** What {@link copyImage} did. */
export interface CopyImageResult {
  /** The manifest or index copied, under the same digest. */
  descriptor: Descriptor;
  /** Referrers copied, as the source lists them. */
  referrers: Descriptor[];
  /** Blobs and manifests the target lacked and received, and their bytes. */
  copied: { count: number; bytes: number };
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
  await copyGraph(source, target, root, graphOptions);
  if (options.targetReference !== undefined) await target.tag(root, options.targetReference);
  else if (keepsUntaggedEntries(target)) await target.addUntaggedEntry(root);
  const referrers = options.withReferrers === true ? await copyReferrers(source, target, root, graphOptions) : [];
  return { descriptor: root, referrers, copied };
}

/**
 * Copies the referrers of the root and, for an index, of every manifest and index below it, each
 * after its subject; referrers of referrers (a signature of an SBOM) follow, as deep as the walk allows.
 */
async function copyReferrers(source: ReadableStore, target: WritableStore, root: Descriptor, options: CopyGraphOptions): Promise<Descriptor[]> {
  if (!isReferrerLister(source)) {
    throw new OcibootError("UNSUPPORTED", `Cannot copy the referrers of ${root.digest}: ${source.description} cannot list referrers`);
  }
  const image = new Set<string>([root.digest]);
  const listed = new Map<string, Descriptor>();
  const copied: Descriptor[] = [];
  await walkGraph(source, root, {
    action: `copy the referrers of ${root.digest}`,
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
