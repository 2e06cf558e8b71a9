import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OcibootError } from "../../src/errors.ts";
import { decodeJsonObject, manifestMediaTypeOf, parseManifest, type ParsedManifest } from "../../src/oci/manifest.ts";
import { Limits, MediaType } from "../../src/oci/mediatypes.ts";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_SCHEMA1_MANIFEST,
  GARDENLINUX_INDEX,
  GARDENLINUX_MANIFEST,
  IRONCORE_INDEX,
  IRONCORE_LEGACY_MANIFEST,
  IRONCORE_MANIFEST,
  ONMETAL_SEED_CONFIG_DIGEST,
  ONMETAL_SEED_MANIFEST_DIGEST,
  ONMETAL_SEED_MANIFEST_JSON,
  ONMETAL_SEED_VMLINUZ_DIGEST,
  ORAS_ARTIFACT_MANIFEST,
  bytesOf,
  digestOf,
  encoder,
  labelDigest,
} from "./fixtures/manifests.ts";

function manifestOf(parsed: ParsedManifest) {
  if (parsed.kind !== "manifest") throw new Error(`expected a manifest, got ${parsed.kind}`);
  return parsed.manifest;
}

function indexOf(parsed: ParsedManifest) {
  if (parsed.kind !== "index") throw new Error(`expected an index, got ${parsed.kind}`);
  return parsed.index;
}

const EMPTY_MANIFEST = { schemaVersion: 2, config: DOCKER_MANIFEST.config, layers: [] };

describe("parseManifest: real-world documents", () => {
  it("reads the onmetal seed manifest, which has no mediaType field", () => {
    const bytes = encoder.encode(ONMETAL_SEED_MANIFEST_JSON);
    // The literal is byte-exact: its digest is the one the Garden Linux README publishes.
    expect(bytes.byteLength).toBe(713);
    expect(digestOf(bytes)).toBe(ONMETAL_SEED_MANIFEST_DIGEST);
    const parsed = parseManifest(bytes);
    expect(parsed.kind).toBe("manifest");
    expect(parsed.mediaType).toBe(MediaType.ociManifest);
    const manifest = manifestOf(parsed);
    expect(manifest.mediaType).toBeUndefined();
    expect(manifest.config).toEqual({
      mediaType: "application/vnd.onmetal.image.config.v1alpha1+json",
      digest: ONMETAL_SEED_CONFIG_DIGEST,
      size: 147,
    });
    expect(manifest.layers.map((layer) => layer.size)).toEqual([231536600, 16583520, 13212832]);
    expect(manifest.layers[2]?.digest).toBe(ONMETAL_SEED_VMLINUZ_DIGEST);
  });

  it.each([
    ["application/vnd.oci.image.manifest.v1+json", MediaType.ociManifest],
    ["application/vnd.oci.image.manifest.v1+json; charset=utf-8", MediaType.ociManifest],
    ["Application/VND.OCI.Image.Manifest.v1+JSON", MediaType.ociManifest],
    ["application/vnd.docker.distribution.manifest.v2+json", MediaType.dockerManifest],
    ["application/octet-stream", MediaType.ociManifest],
    ["application/json", MediaType.ociManifest],
    ["", MediaType.ociManifest],
  ])("takes the type of an unlabelled manifest from Content-Type %j", (contentType, expected) => {
    expect(parseManifest(encoder.encode(ONMETAL_SEED_MANIFEST_JSON), contentType).mediaType).toBe(expected);
  });

  it.each([
    ["Garden Linux manifest", GARDENLINUX_MANIFEST, "manifest", MediaType.ociManifest],
    ["ironcore manifest", IRONCORE_MANIFEST, "manifest", MediaType.ociManifest],
    ["legacy ironcore manifest", IRONCORE_LEGACY_MANIFEST, "manifest", MediaType.ociManifest],
    ["oras artifact", ORAS_ARTIFACT_MANIFEST, "manifest", MediaType.ociManifest],
    ["Docker image", DOCKER_MANIFEST, "manifest", MediaType.dockerManifest],
    ["Garden Linux index", GARDENLINUX_INDEX, "index", MediaType.ociIndex],
    ["ironcore index", IRONCORE_INDEX, "index", MediaType.ociIndex],
    ["Docker manifest list", DOCKER_MANIFEST_LIST, "index", MediaType.dockerManifestList],
  ])("reads a %s", (_name, document, kind, mediaType) => {
    const parsed = parseManifest(bytesOf(document), mediaType);
    expect(parsed.kind).toBe(kind);
    expect(manifestMediaTypeOf(parsed)).toBe(mediaType);
    // Every field of these documents is known, so nothing is lost.
    expect(parsed.kind === "manifest" ? parsed.manifest : parsed.index).toEqual(document);
  });

  it("reads an index without mediaType as an OCI index", () => {
    const { mediaType: _dropped, ...unlabelled } = IRONCORE_INDEX;
    const parsed = parseManifest(bytesOf(unlabelled));
    expect(parsed.mediaType).toBe(MediaType.ociIndex);
    expect(indexOf(parsed).manifests).toHaveLength(2);
  });

  it("keeps subject, artifactType and annotations", () => {
    const referrer = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: "build/os-release",
      config: { mediaType: MediaType.ociEmpty, digest: labelDigest("empty"), size: 2 },
      layers: [{ mediaType: "text/plain", digest: labelDigest("os-release"), size: 300 }],
      subject: { mediaType: MediaType.ociManifest, digest: ONMETAL_SEED_MANIFEST_DIGEST, size: 713 },
      annotations: { "org.opencontainers.image.created": "2026-11-26T00:00:00Z" },
    };
    expect(manifestOf(parseManifest(bytesOf(referrer)))).toEqual(referrer);
    const index = { schemaVersion: 2, artifactType: "a/b", manifests: [], subject: referrer.subject, annotations: { a: "b" } };
    expect(indexOf(parseManifest(bytesOf(index)))).toEqual(index);
  });

  it("accepts an artifact without layers", () => {
    expect(manifestOf(parseManifest(bytesOf(EMPTY_MANIFEST))).layers).toEqual([]);
  });

  it("drops unknown top-level fields", () => {
    const parsed = manifestOf(parseManifest(bytesOf({ ...EMPTY_MANIFEST, extra: [1, 2] })));
    expect(Object.keys(parsed).sort()).toEqual(["config", "layers", "schemaVersion"]);
  });

  it("accepts exactly 4 MiB", () => {
    const text = JSON.stringify(EMPTY_MANIFEST);
    const padded = text.slice(0, -1) + " ".repeat(Limits.manifestBytes - text.length) + "}";
    expect(padded.length).toBe(Limits.manifestBytes);
    expect(parseManifest(encoder.encode(padded)).kind).toBe("manifest");
  });
});

describe("parseManifest: refusals", () => {
  it("refuses more than 4 MiB without reading it", () => {
    const bytes = new Uint8Array(Limits.manifestBytes + 1);
    expect(() => parseManifest(bytes)).toThrowError(expect.objectContaining({ code: "UNSAFE_CONTENT" }));
  });

  it.each([
    ["schemaVersion 1", bytesOf(DOCKER_SCHEMA1_MANIFEST), undefined],
    ["schema 1 Content-Type", bytesOf(EMPTY_MANIFEST), "application/vnd.docker.distribution.manifest.v1+prettyjws"],
    ["schema 1 Content-Type with parameters", bytesOf({}), "application/vnd.docker.distribution.manifest.v1+json; x=y"],
    ["schema 1 mediaType", bytesOf({ ...DOCKER_SCHEMA1_MANIFEST, mediaType: MediaType.dockerSchema1 }), undefined],
  ])("refuses Docker schema 1 (%s) as UNSUPPORTED", (_name, bytes, contentType) => {
    expect(() => parseManifest(bytes, contentType)).toThrowError(expect.objectContaining({ code: "UNSUPPORTED" }));
    expect(() => parseManifest(bytes, contentType)).toThrowError("Docker schema 1");
  });

  it("refuses an unknown mediaType as UNSUPPORTED", () => {
    const bytes = bytesOf({ ...EMPTY_MANIFEST, mediaType: "application/vnd.example.manifest+json" });
    expect(() => parseManifest(bytes)).toThrowError(expect.objectContaining({ code: "UNSUPPORTED" }));
  });

  const invalid: Array<[string, Uint8Array, string | undefined, string]> = [
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0x7d]), undefined, "not valid UTF-8"],
    ["a byte-order mark", new Uint8Array([0xef, 0xbb, 0xbf, ...bytesOf(EMPTY_MANIFEST)]), undefined, "not valid JSON"],
    ["empty input", new Uint8Array(), undefined, "not valid JSON"],
    ["truncated JSON", encoder.encode(ONMETAL_SEED_MANIFEST_JSON.slice(0, -1)), undefined, "not valid JSON"],
    ["a JSON array", bytesOf([EMPTY_MANIFEST]), undefined, "not an object"],
    ["JSON null", bytesOf(null), undefined, "not an object"],
    ["no schemaVersion", bytesOf({ config: EMPTY_MANIFEST.config, layers: [] }), undefined, "schemaVersion must be 2"],
    ["schemaVersion 3", bytesOf({ ...EMPTY_MANIFEST, schemaVersion: 3 }), undefined, "schemaVersion must be 2"],
    ["schemaVersion \"2\"", bytesOf({ ...EMPTY_MANIFEST, schemaVersion: "2" }), undefined, "schemaVersion must be 2"],
    ["both manifests and layers", bytesOf({ ...EMPTY_MANIFEST, manifests: [] }), undefined, "ambiguous"],
    ["both manifests and config", bytesOf({ schemaVersion: 2, manifests: [], config: EMPTY_MANIFEST.config }), undefined, "ambiguous"],
    ["neither shape", bytesOf({ schemaVersion: 2 }), undefined, "neither"],
    ["config without layers", bytesOf({ schemaVersion: 2, config: EMPTY_MANIFEST.config }), undefined, "layers must be an array"],
    ["layers without config", bytesOf({ schemaVersion: 2, layers: [] }), undefined, "descriptor config"],
    ["layers not an array", bytesOf({ ...EMPTY_MANIFEST, layers: {} }), undefined, "layers must be an array"],
    ["manifests not an array", bytesOf({ schemaVersion: 2, manifests: "x" }), undefined, "manifests must be an array"],
    ["a broken layer", bytesOf({ ...EMPTY_MANIFEST, layers: [DOCKER_MANIFEST.layers[0], { size: 1 }] }), undefined, "layers[1]"],
    ["a broken index entry", bytesOf({ schemaVersion: 2, manifests: [{}] }), undefined, "manifests[0]"],
    ["a broken subject", bytesOf({ ...EMPTY_MANIFEST, subject: {} }), undefined, "subject"],
    ["non-string annotations", bytesOf({ ...EMPTY_MANIFEST, annotations: { a: 1 } }), undefined, "annotations"],
    ["a bad artifactType", bytesOf({ ...EMPTY_MANIFEST, artifactType: "x" }), undefined, "artifactType"],
    ["a non-string mediaType", bytesOf({ ...EMPTY_MANIFEST, mediaType: 2 }), undefined, "mediaType must be a string"],
    ["an index type on a manifest", bytesOf({ ...EMPTY_MANIFEST, mediaType: MediaType.ociIndex }), undefined, "has the fields of an image manifest"],
    ["a manifest type on an index", bytesOf({ ...IRONCORE_INDEX, mediaType: MediaType.dockerManifest }), undefined, "has the fields of an index"],
    ["mediaType against Content-Type", bytesOf(IRONCORE_MANIFEST), MediaType.dockerManifest, "disagrees with Content-Type"],
    ["shape against Content-Type", encoder.encode(ONMETAL_SEED_MANIFEST_JSON), MediaType.ociIndex, "Content-Type"],
  ];
  it.each(invalid)("refuses %s as INVALID_MANIFEST", (_name, bytes, contentType, reason) => {
    expect(() => parseManifest(bytes, contentType)).toThrowError(expect.objectContaining({ code: "INVALID_MANIFEST" }));
    expect(() => parseManifest(bytes, contentType)).toThrowError(reason);
  });

  it("names what went wrong in the form Cannot <do X>: <state>", () => {
    expect(() => parseManifest(bytesOf({ schemaVersion: 2 }))).toThrowError(/^Cannot parse manifest: /);
  });
});

describe("parseManifest: never throws anything but OcibootError", () => {
  function onlyOcibootErrors(run: () => unknown): boolean {
    try {
      run();
    } catch (error) {
      return error instanceof OcibootError;
    }
    return true;
  }

  it("on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.option(fc.string(), { nil: undefined }), (bytes, contentType) =>
        onlyOcibootErrors(() => parseManifest(bytes, contentType)),
      ),
      { numRuns: 2000 },
    );
  });

  it("on arbitrary JSON", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => onlyOcibootErrors(() => parseManifest(bytesOf(value)))),
      { numRuns: 2000 },
    );
  });

  it("on manifest-shaped JSON", () => {
    const descriptor = fc.oneof(
      fc.constant(DOCKER_MANIFEST.config),
      fc.record({ mediaType: fc.string(), digest: fc.string(), size: fc.jsonValue() }, { requiredKeys: [] }),
      fc.jsonValue(),
    );
    const document = fc.record(
      {
        schemaVersion: fc.oneof(fc.constant(2), fc.constant(1), fc.jsonValue()),
        mediaType: fc.oneof(fc.constantFrom(...Object.values(MediaType)), fc.jsonValue()),
        artifactType: fc.oneof(fc.constant("a/b"), fc.jsonValue()),
        config: descriptor,
        layers: fc.oneof(fc.array(descriptor, { maxLength: 3 }), fc.jsonValue()),
        manifests: fc.oneof(fc.array(descriptor, { maxLength: 3 }), fc.jsonValue()),
        subject: descriptor,
        annotations: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const contentType = fc.option(fc.constantFrom(...Object.values(MediaType), "application/json"), { nil: undefined });
    fc.assert(
      fc.property(document, contentType, (value, type) => onlyOcibootErrors(() => parseManifest(bytesOf(value), type))),
      { numRuns: 3000 },
    );
  });
});

describe("decodeJsonObject", () => {
  it("names the document in its errors", () => {
    expect(() => decodeJsonObject(encoder.encode("[]"), "config")).toThrowError("Cannot parse config: the JSON document is not an object");
  });
});
