import type { Descriptor } from "../../oci/descriptor.ts";
import { titleOf } from "../../oci/artifact.ts";
import { formatReference, parseReference } from "../../oci/reference.ts";
import type { AttachResult, ReferrerListing } from "../../ops/referrers.ts";
import { parseLocation } from "../sources.ts";

/**
 * The location as written, pinned to a digest so that it can be passed back to ociboot:
 * `host/repo@sha256:…` (tag dropped, as oras prints it) or `oci:DIR:sha256:…`.
 */
export function pinnedLocation(text: string, digest: string): string {
  const location = parseLocation(text);
  if (location.kind === "registry") {
    const { registry, repository } = parseReference(location.reference);
    return formatReference({ registry, repository, digest: digest as Descriptor["digest"] });
  }
  return `${location.kind === "layout" ? "oci" : "oci-archive"}:${location.path}:${digest}`;
}

/** `attach` output: where it went and the artifact's digest, or the whole result as JSON. */
export function formatAttachResult(result: AttachResult, location: string, options: { json: boolean }): string {
  const pinned = pinnedLocation(location, result.subject.digest);
  if (options.json) {
    return `${JSON.stringify({ reference: pinned, subject: result.subject, ...result.artifact, layers: result.layers }, null, 2)}\n`;
  }
  return `Attached to ${pinned}\nDigest: ${result.artifact.digest}\n`;
}

/**
 * `discover` output as a tree like `oras discover`: the pinned subject, its referrers grouped by
 * artifact type (in the order first seen), each digest followed by the titles of its files.
 */
export function formatReferrerTree(listing: ReferrerListing, location: string): string {
  const groups = new Map<string, ReferrerListing["referrers"]>();
  for (const referrer of listing.referrers) {
    const type = referrer.descriptor.artifactType ?? "<no artifact type>";
    groups.set(type, [...(groups.get(type) ?? []), referrer]);
  }
  const lines = [pinnedLocation(location, listing.subject.digest)];
  const types = [...groups.keys()];
  types.forEach((type, typePosition) => {
    const lastType = typePosition === types.length - 1;
    lines.push(`${lastType ? "└── " : "├── "}${type}`);
    const members = groups.get(type) ?? [];
    members.forEach((referrer, position) => {
      const titles = (referrer.layers ?? []).map(titleOf).filter((title) => title !== undefined);
      const branch = position === members.length - 1 ? "└── " : "├── ";
      lines.push(`${lastType ? "    " : "│   "}${branch}${referrer.descriptor.digest}${titles.length > 0 ? `  ${titles.join(", ")}` : ""}`);
    });
  });
  return `${lines.join("\n")}\n`;
}

/** `discover --json`: the subject and its referrer descriptors, each with the layers of its manifest. */
export function formatReferrerJson(listing: ReferrerListing, location: string): string {
  const manifests = listing.referrers.map((referrer) => (referrer.layers === undefined ? referrer.descriptor : { ...referrer.descriptor, layers: referrer.layers }));
  return `${JSON.stringify({ reference: pinnedLocation(location, listing.subject.digest), subject: listing.subject, manifests }, null, 2)}\n`;
}
