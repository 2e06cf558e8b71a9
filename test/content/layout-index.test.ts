import { describe, expect, it } from "vitest";
import { sameImageName, taggedEntry } from "../../src/content/layout-index.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";

const entry = (hex: string, name?: string): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${hex.repeat(64)}` as Descriptor["digest"],
  size: 1,
  ...(name === undefined ? {} : { annotations: { "org.opencontainers.image.ref.name": name } }),
});

describe("image names in index.json", () => {
  it("treats short, full and legacy Docker Hub spellings as one name; bare-word entry names only exactly", () => {
    expect(sameImageName("docker.io/lab/small:v1", "lab/small:v1")).toBe(true);
    expect(sameImageName("lab/small:v1", "index.docker.io/lab/small:v1")).toBe(true);
    expect(sameImageName("docker.io/library/alpine:latest", "alpine")).toBe(true);
    expect(sameImageName("ghcr.io/a/b:1", "ghcr.io/a/b:2")).toBe(false);
    expect(sameImageName("v1", "v1")).toBe(true);
    expect(sameImageName("v1", "docker.io/library/v1:latest")).toBe(false);
    expect(sameImageName(undefined, "v1")).toBe(false);
  });

  it("prefers the exact spelling, else finds another; refuses spellings that tag different images", () => {
    expect(taggedEntry([entry("a", "lab/x:1"), entry("b", "docker.io/lab/x:1")], "lab/x:1", "s")?.digest).toBe(`sha256:${"a".repeat(64)}`);
    expect(taggedEntry([entry("a", "docker.io/lab/x:1")], "lab/x:1", "s")?.digest).toBe(`sha256:${"a".repeat(64)}`);
    expect(taggedEntry([entry("a", "docker.io/lab/x:1")], "lab/x:2", "s")).toBeUndefined();
    expect(() => taggedEntry([entry("a", "lab/x:1"), entry("b", "docker.io/lab/x:1")], "index.docker.io/lab/x:1", "s")).toThrowError(
      expect.objectContaining({ code: "AMBIGUOUS" }),
    );
  });
});
