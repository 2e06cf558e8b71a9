import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkLayoutFile,
  indexEntryOf,
  mergeIndexEntries,
  OCI_LAYOUT_BYTES,
  refNameOf,
  sameImageName,
  taggedEntry,
  withTag,
  withUntaggedEntry,
} from "../../src/content/layout-index.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { toDigest } from "../../src/oci/digest.ts";
import { Annotation, MediaType } from "../../src/oci/mediatypes.ts";

const digest = fc.constantFrom("a", "b", "c", "d").map((letter) => toDigest(`sha256:${letter.repeat(64)}`));
const name = fc.constantFrom("ghcr.io/org/os:1", "ghcr.io/org/os:2", "localhost/x:latest");
const entry: fc.Arbitrary<Descriptor> = fc
  .record({ digest, name: fc.option(name, { nil: undefined }) })
  .map(({ digest: entryDigest, name: refName }) => ({
    mediaType: MediaType.ociManifest,
    digest: entryDigest,
    size: 100,
    ...(refName === undefined ? {} : { annotations: { [Annotation.refName]: refName } }),
  }));
const entries = fc.array(entry, { maxLength: 8 });
const untaggedKeys = (list: readonly Descriptor[]) => list.filter((item) => refNameOf(item) === undefined).map((item) => item.digest);
const names = (list: readonly Descriptor[]) => list.map(refNameOf).filter((item) => item !== undefined);

describe("index.json rules", () => {
  it("a tag replaces the entry of the same name and leaves every other entry as it was", () => {
    fc.assert(
      fc.property(entries, entry, name, (before, added, reference) => {
        const after = withTag(before, indexEntryOf(added), reference);
        expect(after.at(-1)).toEqual({ ...indexEntryOf(added), annotations: { [Annotation.refName]: reference } });
        expect(after.filter((item) => refNameOf(item) === reference)).toHaveLength(1);
        expect(after.slice(0, -1)).toEqual(before.filter((item) => refNameOf(item) !== reference));
      }),
    );
  });

  it("an untagged entry is added once: adding it again changes nothing", () => {
    fc.assert(
      fc.property(entries, entry, (before, added) => {
        const plain = indexEntryOf(added);
        const once = withUntaggedEntry(before, plain);
        expect(withUntaggedEntry(once, plain)).toEqual(once);
        expect(untaggedKeys(once).filter((key) => key === plain.digest)).toHaveLength(Math.max(1, untaggedKeys(before).filter((key) => key === plain.digest).length));
        expect(once.slice(0, before.length)).toEqual(before);
      }),
    );
  });

  it("merging an imported index twice gives what merging it once gave, with every name listed once", () => {
    fc.assert(
      fc.property(entries, entries, (store, imported) => {
        const once = mergeIndexEntries(store, imported);
        // A tag merged again moves to the end (the latest tag wins), so compare as sets.
        const sorted = (list: readonly Descriptor[]) => list.map((item) => JSON.stringify(item)).sort();
        expect(sorted(mergeIndexEntries(once, imported))).toEqual(sorted(once));
        const importedNames = new Set(names(imported));
        for (const reference of importedNames) expect(names(once).filter((item) => item === reference)).toHaveLength(1);
        for (const key of untaggedKeys(imported)) expect(untaggedKeys(once)).toContain(key);
      }),
    );
  });

  it("an index entry keeps platform and artifact type, never annotations", () => {
    const descriptor: Descriptor = {
      mediaType: MediaType.ociManifest,
      digest: toDigest(`sha256:${"e".repeat(64)}`),
      size: 7,
      platform: { os: "linux", architecture: "arm64" },
      artifactType: "build/log",
      annotations: { [Annotation.refName]: "x", other: "y" },
      urls: ["https://example.com"],
    };
    expect(indexEntryOf(descriptor)).toEqual({ mediaType: descriptor.mediaType, digest: descriptor.digest, size: 7, platform: descriptor.platform, artifactType: "build/log" });
  });
});

describe("checkLayoutFile", () => {
  it("accepts the file ociboot writes and refuses anything else with a code", () => {
    expect(() => checkLayoutFile(OCI_LAYOUT_BYTES, "oci-layout")).not.toThrow();
    expect(() => checkLayoutFile(new TextEncoder().encode('{"imageLayoutVersion":"2.0.0"}'), "x/oci-layout")).toThrowError(
      expect.objectContaining({ code: "UNSUPPORTED", message: 'Cannot use x/oci-layout: imageLayoutVersion "2.0.0" is not 1.0.0' }),
    );
    expect(() => checkLayoutFile(new TextEncoder().encode("{"), "x/oci-layout")).toThrowError(expect.objectContaining({ code: "INVALID_MANIFEST" }));
  });
});

const namedEntry = (hex: string, name?: string): Descriptor => ({
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
    expect(taggedEntry([namedEntry("a", "lab/x:1"), namedEntry("b", "docker.io/lab/x:1")], "lab/x:1", "s")?.digest).toBe(`sha256:${"a".repeat(64)}`);
    expect(taggedEntry([namedEntry("a", "docker.io/lab/x:1")], "lab/x:1", "s")?.digest).toBe(`sha256:${"a".repeat(64)}`);
    expect(taggedEntry([namedEntry("a", "docker.io/lab/x:1")], "lab/x:2", "s")).toBeUndefined();
    expect(() => taggedEntry([namedEntry("a", "lab/x:1"), namedEntry("b", "docker.io/lab/x:1")], "index.docker.io/lab/x:1", "s")).toThrowError(
      expect.objectContaining({ code: "AMBIGUOUS" }),
    );
  });
});
