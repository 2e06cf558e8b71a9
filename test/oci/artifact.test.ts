import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { EMPTY_DESCRIPTOR, EMPTY_JSON_BYTES, encodeArtifactManifest, referrerDescriptorOf } from "../../src/oci/artifact.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { parseManifest } from "../../src/oci/manifest.ts";

const sha256 = (bytes: Uint8Array | string) => `sha256:${createHash("sha256").update(bytes).digest("hex")}` as Descriptor["digest"];
const subject: Descriptor = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha256("subject"), size: 7 };
const layer: Descriptor = {
  mediaType: "application/vnd.oci.image.layer.v1.tar",
  digest: sha256("ID=gardenlinux\n"),
  size: 15,
  annotations: { "org.opencontainers.image.title": "metal.os-release" },
};

describe("the empty descriptor", () => {
  it("names the two bytes {} and carries them inline", () => {
    expect(EMPTY_DESCRIPTOR.digest).toBe(sha256(EMPTY_JSON_BYTES));
    expect(EMPTY_DESCRIPTOR.size).toBe(EMPTY_JSON_BYTES.byteLength);
    expect(Buffer.from(EMPTY_DESCRIPTOR.data ?? "", "base64").toString()).toBe("{}");
  });
});

describe("encodeArtifactManifest", () => {
  it("writes the manifest oras-go packs: Go field order, empty config with data, subject reduced to media type, digest and size", () => {
    const bytes = encodeArtifactManifest({
      artifactType: "build/os-release",
      layers: [layer],
      subject: { ...subject, annotations: { "org.opencontainers.image.ref.name": "x" } },
      annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z", "a&b": "<c>" },
    });
    expect(new TextDecoder().decode(bytes)).toBe(
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"build/os-release",' +
        '"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},' +
        `"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"${layer.digest}","size":15,"annotations":{"org.opencontainers.image.title":"metal.os-release"}}],` +
        `"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${subject.digest}","size":7},` +
        '"annotations":{"a\\u0026b":"\\u003cc\\u003e","org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}',
    );
    const parsed = parseManifest(bytes);
    expect(parsed).toMatchObject({ kind: "manifest", manifest: { artifactType: "build/os-release", subject, layers: [layer] } });
  });

  it("gives an artifact without files the single empty layer, and leaves out empty annotations", () => {
    const parsed = parseManifest(encodeArtifactManifest({ artifactType: "build/log", layers: [], subject, annotations: {} }));
    expect(parsed.kind === "manifest" && parsed.manifest.layers).toEqual([EMPTY_DESCRIPTOR]);
    expect(parsed.kind === "manifest" && parsed.manifest.annotations).toBeUndefined();
  });

  it("refuses an artifact type that is not a media type", () => {
    expect(() => encodeArtifactManifest({ artifactType: "build log", layers: [], subject })).toThrow(expect.objectContaining({ code: "USAGE" }));
  });
});

describe("referrerDescriptorOf", () => {
  it("lists a manifest by its artifactType and annotations, else by its config media type", () => {
    const bytes = encodeArtifactManifest({ artifactType: "build/log", layers: [layer], subject, annotations: { k: "v" } });
    const descriptor: Descriptor = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha256(bytes), size: bytes.byteLength };
    expect(referrerDescriptorOf(descriptor, parseManifest(bytes))).toEqual({ ...descriptor, artifactType: "build/log", annotations: { k: "v" } });
    const plain = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, config: { ...layer, mediaType: "application/x-config" }, layers: [], subject }));
    expect(referrerDescriptorOf(descriptor, parseManifest(plain)).artifactType).toBe("application/x-config");
  });
});
