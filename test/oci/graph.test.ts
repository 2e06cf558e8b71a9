import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { toDigest } from "../../src/oci/digest.ts";
import { isGraphNode, successors } from "../../src/oci/graph.ts";
import { parseManifest } from "../../src/oci/manifest.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";

const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
const descriptor = (mediaType: fc.Arbitrary<string>): fc.Arbitrary<Descriptor> =>
  fc.record({ mediaType, digest: hex.map((text) => toDigest(`sha256:${text}`)), size: fc.nat() });
const blobType = fc.constantFrom("application/octet-stream", MediaType.ociLayerTarGzip, "application/io.gardenlinux.kernel");
const nodeType = fc.constantFrom(MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociIndex, MediaType.dockerManifestList);
const subject = fc.option(descriptor(fc.constantFrom(MediaType.ociManifest, MediaType.ociIndex)), { nil: undefined });
const encode = (document: object) => new TextEncoder().encode(JSON.stringify(document));

describe("successors", () => {
  it("of a manifest: its subject first, then config, then the layers in order (as oras-go's content.Successors)", () => {
    fc.assert(
      fc.property(descriptor(fc.constant(MediaType.ociConfig)), fc.array(descriptor(blobType), { maxLength: 8 }), subject, (config, layers, referred) => {
        const document = { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers, ...(referred ? { subject: referred } : {}) };
        const found = successors(parseManifest(encode(document)));
        expect(found).toEqual([...(referred ? [referred] : []), config, ...layers]);
      }),
    );
  });

  it("of an index: its subject first, then every entry in order, platforms kept", () => {
    fc.assert(
      fc.property(fc.array(descriptor(nodeType), { maxLength: 8 }), subject, (manifests, referred) => {
        const entries = manifests.map((entry, position) => ({ ...entry, platform: { os: "linux", architecture: `arch${position}` } }));
        const document = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries, ...(referred ? { subject: referred } : {}) };
        expect(successors(parseManifest(encode(document)))).toEqual([...(referred ? [referred] : []), ...entries]);
      }),
    );
  });

  it("does not hand out the parsed document's own arrays", () => {
    const config = { mediaType: MediaType.ociConfig, digest: toDigest(`sha256:${"a".repeat(64)}`), size: 2 };
    const parsed = parseManifest(encode({ schemaVersion: 2, config, layers: [] }));
    successors(parsed).push(config);
    expect(successors(parsed)).toEqual([config]);
  });
});

describe("isGraphNode", () => {
  it("is true exactly for manifest and index media types", () => {
    fc.assert(fc.property(descriptor(nodeType), (node) => isGraphNode(node)));
    fc.assert(fc.property(descriptor(blobType), (leaf) => !isGraphNode(leaf)));
    // Media types that merely look like a manifest's are leaves: prune and copy decide alike.
    expect(isGraphNode({ mediaType: "application/vnd.example.manifest.v1+json", digest: toDigest(`sha256:${"b".repeat(64)}`), size: 1 })).toBe(false);
  });
});
