import { isVerifiedManifestReader, type ReadableStore } from "../content/store.ts";
import { checkReadLimit, readVerified } from "../content/verify.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import { subjectOf } from "../oci/artifact.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { isGraphNode, successors } from "../oci/graph.ts";
import { parseManifest, type ParsedManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";

/** A manifest or index reached by {@link walkGraph}, read (bounded, verified) and parsed. */
export interface GraphNode {
  /** The descriptor it was reached by, with the media type the document itself has. */
  descriptor: Descriptor;
  bytes: Uint8Array;
  parsed: ParsedManifest;
  /** 0 for a root, one more for each manifest or index passed on the way. */
  depth: number;
  /** Its successors that are not manifests or indexes (config, layers), each given once per walk. */
  blobs: Descriptor[];
}

/** Options for {@link walkGraph}. */
export interface WalkOptions {
  /** What the walk is for, in error messages: `Cannot <action>: …` (e.g. `copy sha256:…`). */
  action: string;
  signal?: AbortSignal;
  /** Digests already handled: skipped, and filled by this walk. Share it to walk several graphs once. */
  visited?: Set<string>;
  /** Default {@link Limits.graphDepth}. */
  maxDepth?: number;
  /** Default {@link Limits.graphNodes}. */
  maxNodes?: number;
  /**
   * The nodes to go to from `node` (asked before `enter`), all read as manifests or indexes. Default: its successors
   * (oci/graph.ts) that are manifests or indexes. A resolve picks one index entry; a referrer
   * walk goes to the referrers instead.
   */
  next?(node: GraphNode): readonly Descriptor[] | Promise<readonly Descriptor[]>;
  /** Called once a node is read, before the nodes after it (pre-order). */
  enter?(node: GraphNode): void | Promise<void>;
  /** Called after every node after it was walked (post-order): a copy pushes a manifest only once its content is there. */
  leave?(node: GraphNode): void | Promise<void>;
  /** A node that cannot be read (missing, corrupt): return true to go on without it, false to fail the walk. */
  unreadable?(descriptor: Descriptor, error: unknown): boolean | Promise<boolean>;
}

/**
 * The one bounded walk over a graph of manifests: each root and every manifest or index it reaches
 * is read (bounded, verified) and parsed once, a visited set skips what was seen, and the depth and
 * the number of descriptors are capped. Both caps fail with UNSAFE_CONTENT (exit 5): content that
 * deep or that large is treated as hostile (docs/graph-walk.md). Roots are always read as
 * manifests, whatever media type their descriptor claims. A subject the store does not hold is
 * passed over; any other node that is missing fails the walk unless `unreadable` says otherwise.
 */
export async function walkGraph(store: ReadableStore, roots: Descriptor | readonly Descriptor[], options: WalkOptions): Promise<void> {
  const visited = options.visited ?? new Set<string>();
  const maxDepth = options.maxDepth ?? Limits.graphDepth;
  const maxNodes = options.maxNodes ?? Limits.graphNodes;
  let counted = 0;
  const see = (descriptor: Descriptor): boolean => {
    if (visited.has(descriptor.digest)) return false;
    if (++counted > maxNodes) {
      throw new OcibootError("UNSAFE_CONTENT", `Cannot ${options.action}: the graph has more than ${maxNodes} descriptors`, {
        details: { limit: maxNodes },
      });
    }
    visited.add(descriptor.digest);
    return true;
  };
  const visit = async (descriptor: Descriptor, depth: number, isSubject = false): Promise<void> => {
    if (depth > maxDepth) {
      throw new OcibootError("UNSAFE_CONTENT", `Cannot ${options.action}: manifests nested deeper than ${maxDepth} levels`, {
        details: { limit: maxDepth },
      });
    }
    options.signal?.throwIfAborted();
    let bytes: Uint8Array;
    try {
      bytes = await readManifestBytes(store, descriptor, options.signal);
    } catch (error) {
      // A subject is another image the node points back at, not content it needs: registries take a
      // referrer before (or without) its subject, so a store may hold one alone.
      if (isSubject && isOcibootError(error, "NOT_FOUND")) return;
      if (options.unreadable !== undefined && (await options.unreadable(descriptor, error))) return;
      throw error;
    }
    const parsed = parseManifest(bytes, descriptor.mediaType);
    const node: GraphNode = { descriptor: { ...descriptor, mediaType: parsed.mediaType }, bytes, parsed, depth, blobs: [] };
    const next = options.next ? await options.next(node) : successors(parsed).filter(isGraphNode);
    // What `next` goes to is read as a node even when its media type says otherwise (an index entry picked by platform).
    const nodes = new Set(next.map((child) => child.digest));
    node.blobs = successors(parsed).filter((successor) => !isGraphNode(successor) && !nodes.has(successor.digest) && see(successor));
    await options.enter?.(node);
    const subject = subjectOf(parsed)?.digest;
    for (const child of next) {
      if (see(child)) await visit(child, depth + 1, child.digest === subject);
    }
    await options.leave?.(node);
  };
  for (const root of Array.isArray(roots) ? (roots as readonly Descriptor[]) : [roots as Descriptor]) {
    if (see(root)) await visit(root, 0);
  }
}

/** Reads a manifest or index blob, bounded and verified (hashed once: by the store that can, else here). */
export async function readManifestBytes(store: ReadableStore, descriptor: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
  if (isVerifiedManifestReader(store)) {
    checkReadLimit(descriptor, Limits.manifestBytes);
    return store.readVerifiedManifest(descriptor, signal ? { signal } : {});
  }
  const content = await store.fetch(descriptor, signal ? { signal } : {});
  return readVerified(content.stream, descriptor, Limits.manifestBytes);
}
