import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OcibootError } from "../../src/errors.ts";
import { parseDescriptor } from "../../src/oci/descriptor.ts";
import { isDigest, parseDigest, sha256Digest, toDigest } from "../../src/oci/digest.ts";
import { parseReference } from "../../src/oci/reference.ts";
import { DIGEST_TABLE } from "./fixtures/conformance.ts";

const HEX64 = "d002d4426df1928be7646289e8a67f2851679e955cacbbc042295f5c6af80b69";
const HEX128 = HEX64 + HEX64;

describe("parseDigest", () => {
  it.each([
    [`sha256:${HEX64}`, "sha256", HEX64],
    [`sha512:${HEX128}`, "sha512", HEX128],
  ])("parses %s", (input, algorithm, hex) => {
    expect(parseDigest(input)).toEqual({ algorithm, hex, digest: input });
  });

  it.each([
    ["", "missing algorithm prefix"],
    [HEX64, "missing algorithm prefix"],
    [`SHA256:${HEX64}`, "digest grammar"],
    [`:${HEX64}`, "digest grammar"],
    [`sha256:${HEX64.toUpperCase()}`, "64 lowercase hex"],
    [`sha256:${HEX64.slice(1)}`, "64 lowercase hex"],
    [`sha256:${HEX64}0`, "64 lowercase hex"],
    [`sha256:${HEX128}`, "64 lowercase hex"],
    [`sha512:${HEX64}`, "128 lowercase hex"],
    [`sha256:${HEX64.slice(1)}g`, "64 lowercase hex"],
    [`sha256:${HEX64}\n`, "64 lowercase hex"],
    [`sha256: ${HEX64.slice(1)}`, "64 lowercase hex"],
    ["sha256:", "64 lowercase hex"],
  ])("rejects %j (%s)", (input, reason) => {
    expect(() => parseDigest(input)).toThrowError(expect.objectContaining({ code: "INVALID_DIGEST" }));
    expect(() => parseDigest(input)).toThrowError(reason);
  });

  it("shortens very long input in messages", () => {
    expect(() => parseDigest(`x${"a".repeat(1000)}`)).toThrowError(/\.\.\."/);
  });

  it("rejects non-string input with OcibootError", () => {
    expect(() => parseDigest(undefined as unknown as string)).toThrowError(expect.objectContaining({ code: "INVALID_DIGEST" }));
  });

  it.each(DIGEST_TABLE)("classifies %j as %s (image-spec digest grammar)", (input, outcome) => {
    if (outcome === "supported") {
      expect(parseDigest(input).digest).toBe(input);
      return;
    }
    const code = outcome === "unsupported" ? "UNSUPPORTED" : "INVALID_DIGEST";
    expect(() => parseDigest(input)).toThrowError(expect.objectContaining({ code }));
    if (outcome === "unsupported") expect(() => parseDigest(input)).toThrowError("only sha256 and sha512");
  });

  it("keeps UNSUPPORTED through a reference and a descriptor, and malformed stays a usage error", () => {
    expect(() => parseReference(`ghcr.io/a/b@blake3:${HEX64}`)).toThrowError(expect.objectContaining({ code: "UNSUPPORTED" }));
    expect(() => parseReference(`ghcr.io/a/b@SHA256:${HEX64}`)).toThrowError(expect.objectContaining({ code: "INVALID_REFERENCE" }));
    const descriptor = { mediaType: "application/octet-stream", digest: `sha384:${HEX128.slice(0, 96)}`, size: 1 };
    expect(() => parseDescriptor(descriptor, "layers[0]")).toThrowError(expect.objectContaining({ code: "UNSUPPORTED" }));
    expect(() => parseDescriptor({ ...descriptor, digest: "sha384" }, "layers[0]")).toThrowError(expect.objectContaining({ code: "INVALID_MANIFEST" }));
  });

  it("never throws anything but OcibootError INVALID_DIGEST or, for grammatical digests, UNSUPPORTED", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.stringMatching(/^sha(256|512):[0-9a-fA-F]{0,130}$/)), (input) => {
        try {
          const parsed = parseDigest(input);
          return parsed.digest === input && `${parsed.algorithm}:${parsed.hex}` === input;
        } catch (error) {
          if (!(error instanceof OcibootError)) return false;
          const grammatical = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(input);
          return error.code === (grammatical && !/^sha(256|512):/.test(input) ? "UNSUPPORTED" : "INVALID_DIGEST");
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("isDigest, toDigest and sha256Digest", () => {
  it("agree with parseDigest", () => {
    expect(isDigest(`sha256:${HEX64}`)).toBe(true);
    expect(isDigest(`sha256:${HEX64.toUpperCase()}`)).toBe(false);
    expect(isDigest(42)).toBe(false);
    expect(toDigest(`sha512:${HEX128}`)).toBe(`sha512:${HEX128}`);
    expect(sha256Digest(HEX64)).toBe(`sha256:${HEX64}`);
    expect(() => sha256Digest("abc")).toThrowError(expect.objectContaining({ code: "INVALID_DIGEST" }));
  });
});
