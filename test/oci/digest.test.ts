import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OcibootError } from "../../src/errors.ts";
import { isDigest, parseDigest, sha256Digest, toDigest } from "../../src/oci/digest.ts";

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
    [`SHA256:${HEX64}`, "unsupported algorithm"],
    [`md5:${HEX64.slice(0, 32)}`, "unsupported algorithm"],
    [`sha384:${HEX128.slice(0, 96)}`, "unsupported algorithm"],
    [`:${HEX64}`, "unsupported algorithm"],
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

  it("never throws anything but OcibootError INVALID_DIGEST", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.stringMatching(/^sha(256|512):[0-9a-fA-F]{0,130}$/)), (input) => {
        try {
          const parsed = parseDigest(input);
          return parsed.digest === input && `${parsed.algorithm}:${parsed.hex}` === input;
        } catch (error) {
          return error instanceof OcibootError && error.code === "INVALID_DIGEST";
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
