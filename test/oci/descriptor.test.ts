import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OcibootError } from "../../src/errors.ts";
import { isMediaType, parseAnnotations, parseDescriptor } from "../../src/oci/descriptor.ts";

const DIGEST = "sha256:3108caa582a70f3490723a654d93896840ea2ad09d3c06bb0c51ed83a60e0660";
const MINIMAL = { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: DIGEST, size: 16583520 };

describe("parseDescriptor", () => {
  it("keeps the required fields and drops unknown ones", () => {
    expect(parseDescriptor({ ...MINIMAL, extra: { nested: true } }, "layers[0]")).toEqual(MINIMAL);
  });

  it("keeps every optional field of OCI image spec v1.1", () => {
    const full = {
      ...MINIMAL,
      size: 3,
      urls: ["https://example.com/blob"],
      annotations: { "org.opencontainers.image.title": "vmlinuz", cname: "kvm-amd64" },
      artifactType: "application/vnd.example+json",
      data: "YWJj",
      platform: {
        architecture: "arm",
        os: "linux",
        "os.version": "10.0",
        "os.features": ["win32k"],
        variant: "v7",
        features: ["sse4"],
      },
    };
    expect(parseDescriptor(full, "manifests[0]")).toEqual(full);
  });

  it("returns copies, not the input arrays", () => {
    const input = { ...MINIMAL, urls: ["https://a"] };
    const parsed = parseDescriptor(input, "x");
    input.urls.push("https://b");
    expect(parsed.urls).toEqual(["https://a"]);
  });

  it("keeps a __proto__ annotation as a plain key", () => {
    const input = JSON.parse(`{"mediaType":"a/b","digest":"${DIGEST}","size":1,"annotations":{"__proto__":"x"}}`) as unknown;
    const parsed = parseDescriptor(input, "x");
    expect(Object.getPrototypeOf(parsed.annotations)).toBe(Object.prototype);
    expect(Object.keys(parsed.annotations ?? {})).toEqual(["__proto__"]);
  });

  it.each([
    [null, "must be a JSON object"],
    [[], "must be a JSON object"],
    ["text", "must be a JSON object"],
    [{ ...MINIMAL, mediaType: undefined }, "mediaType"],
    [{ ...MINIMAL, mediaType: "application" }, "mediaType"],
    [{ ...MINIMAL, mediaType: "application/vnd.oci+json; charset=utf-8" }, "mediaType"],
    [{ ...MINIMAL, mediaType: "/json" }, "mediaType"],
    [{ ...MINIMAL, mediaType: `application/${"x".repeat(128)}` }, "mediaType"],
    [{ ...MINIMAL, mediaType: 7 }, "mediaType"],
    [{ ...MINIMAL, digest: undefined }, "digest must be a string"],
    [{ ...MINIMAL, digest: "sha256:abc" }, "sha256 needs 64"],
    [{ ...MINIMAL, size: undefined }, "size"],
    [{ ...MINIMAL, size: -1 }, "size"],
    [{ ...MINIMAL, size: 1.5 }, "size"],
    [{ ...MINIMAL, size: 2 ** 53 }, "size"],
    [{ ...MINIMAL, size: "1" }, "size"],
    [{ ...MINIMAL, urls: "https://a" }, "layers[2].urls: must be an array of strings"],
    [{ ...MINIMAL, urls: [1] }, "layers[2].urls: must be an array of strings"],
    [{ ...MINIMAL, annotations: [] }, "layers[2].annotations: must be a JSON object"],
    [{ ...MINIMAL, annotations: { a: 1 } }, `layers[2].annotations: value of "a" must be a string`],
    [{ ...MINIMAL, artifactType: "nope" }, "artifactType"],
    [{ ...MINIMAL, platform: { os: "linux" } }, "layers[2].platform: architecture and os"],
    [{ ...MINIMAL, platform: { os: "linux", architecture: "amd64", variant: 8 } }, "variant"],
    [{ ...MINIMAL, platform: { os: "linux", architecture: "amd64", "os.version": 1 } }, "os.version"],
    [{ ...MINIMAL, platform: { os: "linux", architecture: "amd64", "os.features": [1] } }, "os.features"],
    [{ ...MINIMAL, platform: { os: "linux", architecture: "amd64", features: "x" } }, "features"],
    [{ ...MINIMAL, size: 3, data: "YWJj=" }, "base64"],
    [{ ...MINIMAL, size: 3, data: "YW Jj" }, "base64"],
    [{ ...MINIMAL, size: 2, data: "YWJj" }, "data holds 3 bytes but size says 2"],
    [{ ...MINIMAL, size: 1, data: "YQ==" }, null],
  ])("rejects %j (%s)", (input, reason) => {
    if (reason === null) {
      expect(parseDescriptor(input, "layers[2]").data).toBe("YQ==");
      return;
    }
    expect(() => parseDescriptor(input, "layers[2]")).toThrowError(expect.objectContaining({ code: "INVALID_MANIFEST" }));
    expect(() => parseDescriptor(input, "layers[2]")).toThrowError(reason);
    expect(() => parseDescriptor(input, "layers[2]")).toThrowError("Cannot read descriptor layers[2]");
  });

  it("never throws anything but OcibootError INVALID_MANIFEST on arbitrary JSON", () => {
    const descriptorLike = fc.record(
      {
        mediaType: fc.oneof(fc.constant("a/b"), fc.string()),
        digest: fc.oneof(fc.constant(DIGEST), fc.string()),
        size: fc.oneof(fc.nat(), fc.double(), fc.jsonValue()),
        urls: fc.jsonValue(),
        annotations: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.jsonValue()),
        platform: fc.oneof(fc.record({ os: fc.string(), architecture: fc.string() }), fc.jsonValue()),
        artifactType: fc.jsonValue(),
        data: fc.oneof(fc.base64String(), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), descriptorLike), (value) => {
        try {
          parseDescriptor(value, "x");
        } catch (error) {
          if (!(error instanceof OcibootError)) return false;
          // A digest that follows the grammar but names another algorithm is unsupported content (exit 6).
          const digest = (value as { digest?: unknown } | null)?.digest;
          const grammatical = typeof digest === "string" && /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest) && !/^sha(256|512):/.test(digest);
          return error.code === "INVALID_MANIFEST" || (grammatical && error.code === "UNSUPPORTED");
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  });
});

describe("parseAnnotations", () => {
  it("accepts an empty map and string values", () => {
    expect(parseAnnotations({}, "annotations")).toEqual({});
    expect(parseAnnotations({ a: "", b: "c" }, "annotations")).toEqual({ a: "", b: "c" });
  });
});

describe("isMediaType", () => {
  it.each([
    ["application/vnd.oci.image.manifest.v1+json", true],
    ["application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz", true],
    ["application/io.gardenlinux.kernel", true],
    ["text/plain; charset=utf-8", false],
    ["a/b/c", false],
    ["", false],
    [3, false],
  ])("%j → %s", (input, expected) => {
    expect(isMediaType(input)).toBe(expected);
  });
});
