import type { Descriptor } from "./descriptor.ts";
import type { ParsedManifest } from "./manifest.ts";
import { isIndexMediaType, isManifestMediaType } from "./mediatypes.ts";

/**
 * The descriptors a manifest or index points at, in the order oras-go v2's `content.Successors`
 * gives them: the `subject` first (a referrer needs its subject, so a copy brings it along and
 * prune keeps it), then `config` and `layers` of a manifest, or `manifests` of an index.
 * See docs/graph-walk.md.
 */
export function successors(parsed: ParsedManifest): Descriptor[] {
  const subject = parsed.kind === "manifest" ? parsed.manifest.subject : parsed.index.subject;
  const content = parsed.kind === "manifest" ? [parsed.manifest.config, ...parsed.manifest.layers] : parsed.index.manifests;
  return subject === undefined ? [...content] : [subject, ...content];
}

/**
 * True for a descriptor whose content is itself a node of the graph (a manifest or an index, by
 * its media type as oras-go decides it); everything else (configs, layers) is a leaf.
 */
export function isGraphNode(descriptor: Descriptor): boolean {
  return isManifestMediaType(descriptor.mediaType) || isIndexMediaType(descriptor.mediaType);
}
