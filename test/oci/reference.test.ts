import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OcibootError } from "../../src/errors.ts";
import {
  formatReference,
  isLoopbackRegistry,
  parseReference,
  parseRepository,
  referenceTarget,
  registryEndpointHost,
  type Reference,
} from "../../src/oci/reference.ts";
import { NAME_LENGTH_TABLE } from "./fixtures/conformance.ts";

const SHA = "sha256:44dd616962d17884bd3609443a3c62b94d423fd1513a40098ffa1a1f75495fd5";

describe("parseReference", () => {
  const valid: Array<[string, Reference]> = [
    ["alpine", { registry: "docker.io", repository: "library/alpine" }],
    ["alpine:3", { registry: "docker.io", repository: "library/alpine", tag: "3" }],
    ["library/alpine", { registry: "docker.io", repository: "library/alpine" }],
    ["user/app:v1.0", { registry: "docker.io", repository: "user/app", tag: "v1.0" }],
    ["docker.io/alpine", { registry: "docker.io", repository: "library/alpine" }],
    ["index.docker.io/alpine:edge", { registry: "docker.io", repository: "library/alpine", tag: "edge" }],
    ["index.docker.io/user/app", { registry: "docker.io", repository: "user/app" }],
    ["ghcr.io/gardenlinux/gardenlinux:1443.3", { registry: "ghcr.io", repository: "gardenlinux/gardenlinux", tag: "1443.3" }],
    ["ghcr.io/app", { registry: "ghcr.io", repository: "app" }],
    ["localhost/app", { registry: "localhost", repository: "app" }],
    ["localhost:5000/a/b/c:t", { registry: "localhost:5000", repository: "a/b/c", tag: "t" }],
    ["127.0.0.1:5000/x", { registry: "127.0.0.1:5000", repository: "x" }],
    ["[::1]:5000/x:1", { registry: "[::1]:5000", repository: "x", tag: "1" }],
    ["[2001:db8::1]/x", { registry: "[2001:db8::1]", repository: "x" }],
    ["Registry.Example.COM/x", { registry: "Registry.Example.COM", repository: "x" }],
    ["Foo/bar", { registry: "Foo", repository: "bar" }],
    ["host:05000/x", { registry: "host:5000", repository: "x" }],
    ["alpine@" + SHA, { registry: "docker.io", repository: "library/alpine", digest: SHA as never }],
    ["alpine:3@" + SHA, { registry: "docker.io", repository: "library/alpine", tag: "3", digest: SHA as never }],
    ["a:5000@" + SHA, { registry: "docker.io", repository: "library/a", tag: "5000", digest: SHA as never }],
    ["a.b-c/d__e---f/g_h.i", { registry: "a.b-c", repository: "d__e---f/g_h.i" }],
    ["x/a__b/c---d", { registry: "docker.io", repository: "x/a__b/c---d" }],
    ["x:_Tag.-", { registry: "docker.io", repository: "library/x", tag: "_Tag.-" }],
    [`x:${"t".repeat(128)}`, { registry: "docker.io", repository: "library/x", tag: "t".repeat(128) }],
  ];
  it.each(valid)("parses %s", (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  const invalid: Array<[string, string]> = [
    ["", "empty"],
    ["Alpine", "must be lowercase"],
    ["ghcr.io/Org/app", "must be lowercase"],
    ["a//b", "empty component"],
    ["a/", "empty component"],
    ["/a", "empty component"],
    ["a/b/", "empty component"],
    ["ghcr.io/", "empty component"],
    ["a_-b", "not a valid path component"],
    ["a___b", "not a valid path component"],
    ["a..b", "not a valid path component"],
    ["-a", "not a valid path component"],
    ["a-", "not a valid path component"],
    ["x:", "tag"],
    ["x:-t", "tag"],
    ["x:.t", "tag"],
    [`x:${"t".repeat(129)}`, "tag"],
    ["x:t@", "digest"],
    ["x@sha256:abc", "sha256 needs 64"],
    ["x@" + SHA.toUpperCase(), "digest grammar"],
    ["x@" + SHA + "@" + SHA, "digest"],
    ["host:0/x", "port"],
    ["host:65536/x", "port"],
    ["host:port/x", "port"],
    ["host:/x", "port"],
    ["-host.io/x", "valid host"],
    ["host-.io/x", "valid host"],
    ["host..io/x", "valid host"],
    ["[::1/x", "port"],
    ["[zz::1]/x", "valid host"],
    ["[::1]", "not a valid path component"],
    ["a".repeat(64).replace(/a/g, "f"), "image ID"],
    [`ghcr.io/${"a".repeat(256)}`, "longer than 255"],
    [`${"a".repeat(248)}`, "longer than 255"],
    ["a b", "not a valid path component"],
    ["a\u0000b", "not a valid path component"],
  ];
  it.each(invalid)("rejects %j (%s)", (input, reason) => {
    expect(() => parseReference(input)).toThrowError(expect.objectContaining({ code: "INVALID_REFERENCE" }));
    expect(() => parseReference(input)).toThrowError(reason);
  });

  it.each(NAME_LENGTH_TABLE)("measures only the repository path of %j: %s (distribution/reference v0.6.0)", (input, outcome) => {
    if (outcome === "accepted") expect(parseReference(input).repository.length).toBeLessThanOrEqual(255);
    else expect(() => parseReference(input)).toThrowError(expect.objectContaining({ code: "INVALID_REFERENCE", message: expect.stringContaining("longer than 255") }));
  });

  it("counts the implied library/ prefix against the 255-character path limit", () => {
    // library/ is 8 characters; distribution/reference v0.6.0 measures the normalised path.
    expect(() => parseReference("a".repeat(255 - 7))).toThrowError("longer than 255");
    expect(parseReference("a".repeat(255 - 8)).repository).toBe(`library/${"a".repeat(247)}`);
  });

  it("keeps the digest error as the cause", () => {
    try {
      parseReference("x@sha256:zz");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(OcibootError);
      expect((error as OcibootError).cause).toMatchObject({ code: "INVALID_DIGEST" });
    }
  });

  it("never throws anything but OcibootError INVALID_REFERENCE", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (input) => {
        try {
          parseReference(input);
        } catch (error) {
          // "a@a:a" is a well-formed digest of an algorithm ociboot lacks.
          return error instanceof OcibootError && (error.code === "INVALID_REFERENCE" || error.code === "UNSUPPORTED");
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws anything but OcibootError on reference-shaped input", () => {
    const piece = fc.constantFrom("a", "B", "0", ".", "_", "__", "-", "/", ":", "@", "[", "]", "::1", "sha256:", "localhost", "5000");
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 20 }), (pieces) => {
        try {
          const reference = parseReference(pieces.join(""));
          expect(parseReference(formatReference(reference))).toEqual(reference);
        } catch (error) {
          return error instanceof OcibootError && (error.code === "INVALID_REFERENCE" || error.code === "UNSUPPORTED");
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  });

  it("refuses a well-formed digest of another algorithm as unsupported (exit 6), not as a typo", () => {
    expect(() => parseReference("x@md5:" + "0".repeat(32))).toThrowError(expect.objectContaining({ code: "UNSUPPORTED" }));
  });

  it("rejects non-string input with OcibootError", () => {
    expect(() => parseReference(42 as unknown as string)).toThrowError(expect.objectContaining({ code: "INVALID_REFERENCE" }));
  });
});

describe("formatReference", () => {
  it.each([
    ["alpine", "docker.io/library/alpine"],
    ["alpine:3", "docker.io/library/alpine:3"],
    ["index.docker.io/user/app:1", "docker.io/user/app:1"],
    ["[::1]:5000/x:t@" + SHA, "[::1]:5000/x:t@" + SHA],
    ["localhost:5000/a/b@" + SHA, "localhost:5000/a/b@" + SHA],
    ["Foo/x", "Foo/x"],
  ])("formats %s as %s", (input, expected) => {
    expect(formatReference(parseReference(input))).toBe(expected);
  });

  it("round-trips every parsed reference", () => {
    const component = fc.stringMatching(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/).filter((text) => text.length <= 30);
    const registry = fc.constantFrom("docker.io", "ghcr.io", "localhost:5000", "[::1]:5000", "127.0.0.1", "my-reg.example.com:443");
    const tag = fc.option(fc.stringMatching(/^\w[\w.-]{0,20}$/), { nil: undefined });
    const digest = fc.option(fc.stringMatching(/^[0-9a-f]{64}$/).map((hex) => `sha256:${hex}`), { nil: undefined });
    fc.assert(
      fc.property(registry, fc.array(component, { minLength: 1, maxLength: 4 }), tag, digest, (host, path, tagValue, digestValue) => {
        let text = `${host}/${path.join("/")}`;
        if (tagValue !== undefined) text += `:${tagValue}`;
        if (digestValue !== undefined) text += `@${digestValue}`;
        let reference: Reference;
        try {
          reference = parseReference(text);
        } catch (error) {
          // Only the 64-hex image-ID rule may refuse a grammatical name here.
          return error instanceof OcibootError;
        }
        expect(parseReference(formatReference(reference))).toEqual(reference);
        return true;
      }),
    );
  });
});

describe("referenceTarget", () => {
  it.each([
    ["alpine", "latest"],
    ["alpine:3", "3"],
    ["alpine@" + SHA, SHA],
    ["alpine:3@" + SHA, SHA],
  ])("targets %s as %s", (input, expected) => {
    expect(referenceTarget(parseReference(input))).toBe(expected);
  });
});

describe("parseRepository", () => {
  it("parses a repository without tag", () => {
    expect(parseRepository("ghcr.io/a/b")).toEqual({ registry: "ghcr.io", repository: "a/b" });
    expect(parseRepository("busybox")).toEqual({ registry: "docker.io", repository: "library/busybox" });
  });
  it.each(["ghcr.io/a:1", "ghcr.io/a@" + SHA])("rejects %s", (input) => {
    expect(() => parseRepository(input)).toThrowError(expect.objectContaining({ code: "INVALID_REFERENCE" }));
  });
});

describe("isLoopbackRegistry", () => {
  it.each([
    ["localhost", true],
    ["localhost:5000", true],
    ["LOCALHOST:5000", true],
    ["127.0.0.1", true],
    ["127.0.0.1:5000", true],
    ["127.255.10.3:1", true],
    ["[::1]", true],
    ["[::1]:5000", true],
    ["[0:0:0:0:0:0:0:1]:5000", true],
    ["[0::1]", true],
    ["[::]", false],
    ["[::2]", false],
    ["[1::1]", false],
    ["[::1:1]", false],
    ["128.0.0.1", false],
    ["127.0.0.256", false],
    ["127.0.0", false],
    ["127.0.0.1.example.com", false],
    ["localhost.example.com", false],
    ["example.com", false],
    ["docker.io", false],
    ["10.0.0.1:5000", false],
  ])("%s → %s", (registry, expected) => {
    expect(isLoopbackRegistry(registry)).toBe(expected);
  });
});

describe("registryEndpointHost", () => {
  it.each([
    ["docker.io", "registry-1.docker.io"],
    ["ghcr.io", "ghcr.io"],
    ["localhost:5000", "localhost:5000"],
    ["[::1]:5000", "[::1]:5000"],
  ])("%s → %s", (registry, expected) => {
    expect(registryEndpointHost(registry)).toBe(expected);
  });
});
