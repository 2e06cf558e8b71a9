import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { parseManifest, type ImageIndex } from "../../src/oci/manifest.ts";
import {
  flavorMatches,
  formatPlatform,
  isBootImageEntry,
  normalizeArchitecture,
  normalizePlatform,
  parsePlatform,
  platformFromNode,
  platformMatches,
  selectIndexEntry,
  type IndexSelection,
  type Platform,
} from "../../src/oci/platform.ts";
import { DOCKER_MANIFEST_LIST, GARDENLINUX_INDEX, IRONCORE_INDEX, bytesOf, labelDigest } from "./fixtures/manifests.ts";

function indexFrom(document: unknown): ImageIndex {
  const parsed = parseManifest(bytesOf(document));
  if (parsed.kind !== "index") throw new Error("expected an index");
  return parsed.index;
}

function entry(label: string, platform?: Platform, annotations?: Record<string, string>, artifactType?: string): Descriptor {
  const descriptor: Descriptor = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: labelDigest(label) as Descriptor["digest"],
    size: 1,
  };
  if (platform !== undefined) descriptor.platform = platform;
  if (annotations !== undefined) descriptor.annotations = annotations;
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  return descriptor;
}

describe("parsePlatform", () => {
  it.each([
    ["linux/amd64", { os: "linux", architecture: "amd64" }],
    ["linux/x86_64", { os: "linux", architecture: "amd64" }],
    ["Linux/AMD64", { os: "linux", architecture: "amd64" }],
    ["linux/aarch64", { os: "linux", architecture: "arm64" }],
    ["linux/arm64/v8", { os: "linux", architecture: "arm64" }],
    ["linux/arm", { os: "linux", architecture: "arm", variant: "v7" }],
    ["linux/arm/v6", { os: "linux", architecture: "arm", variant: "v6" }],
    ["linux/armhf", { os: "linux", architecture: "arm", variant: "v7" }],
    ["gardenlinux/arm64", { os: "gardenlinux", architecture: "arm64" }],
    ["macos/arm64", { os: "darwin", architecture: "arm64" }],
    ["linux/riscv64", { os: "linux", architecture: "riscv64" }],
  ])("parses %s", (text, expected) => {
    expect(parsePlatform(text)).toEqual(expected);
  });

  it.each(["", "amd64", "linux/", "/amd64", "linux/amd64/", "linux/arm/v7/x", "linux amd64", "linux/amd 64", "linux//amd64"])(
    "refuses %j",
    (text) => {
      expect(() => parsePlatform(text)).toThrowError(expect.objectContaining({ code: "USAGE" }));
      expect(() => parsePlatform(text)).toThrowError("expected os/arch[/variant]");
    },
  );

  it("never throws anything but OcibootError USAGE", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 100 }), (text) => {
        try {
          const platform = parsePlatform(text);
          return parsePlatform(formatPlatform(platform)).architecture === platform.architecture;
        } catch (error) {
          return error instanceof OcibootError && error.code === "USAGE";
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("formatPlatform", () => {
  it.each([
    [{ os: "linux", architecture: "amd64" }, "linux/amd64"],
    [{ os: "linux", architecture: "arm", variant: "v7" }, "linux/arm/v7"],
    [{ os: "linux", architecture: "arm64", variant: "" }, "linux/arm64"],
  ])("formats %j as %s", (platform, expected) => {
    expect(formatPlatform(platform)).toBe(expected);
  });
});

describe("normalizeArchitecture", () => {
  it.each([
    ["x86_64", undefined, { architecture: "amd64" }],
    ["x86-64", undefined, { architecture: "amd64" }],
    ["amd64", "v1", { architecture: "amd64" }],
    ["amd64", "v3", { architecture: "amd64", variant: "v3" }],
    ["aarch64", undefined, { architecture: "arm64" }],
    ["arm64", "v8", { architecture: "arm64" }],
    ["arm64", "8", { architecture: "arm64" }],
    ["arm64", "v9", { architecture: "arm64", variant: "v9" }],
    ["armhf", undefined, { architecture: "arm", variant: "v7" }],
    ["armel", undefined, { architecture: "arm", variant: "v6" }],
    ["arm", undefined, { architecture: "arm", variant: "v7" }],
    ["arm", "7", { architecture: "arm", variant: "v7" }],
    ["arm", "6", { architecture: "arm", variant: "v6" }],
    ["arm", "v5", { architecture: "arm", variant: "v5" }],
    ["i386", undefined, { architecture: "386" }],
    ["i686", undefined, { architecture: "386" }],
    ["ppc64el", undefined, { architecture: "ppc64le" }],
    ["s390x", undefined, { architecture: "s390x" }],
    ["AMD64", undefined, { architecture: "amd64" }],
  ])("%s %s → %j", (architecture, variant, expected) => {
    expect(normalizeArchitecture(architecture, variant)).toEqual(expected);
  });

  it("keeps os.version and features", () => {
    expect(normalizePlatform({ os: "gardenlinux", architecture: "x86_64", "os.version": "1443.3", features: ["a"] })).toEqual({
      os: "gardenlinux",
      architecture: "amd64",
      "os.version": "1443.3",
      features: ["a"],
    });
  });
});

describe("platformFromNode", () => {
  it.each([
    ["x64", "linux", { os: "linux", architecture: "amd64" }],
    ["arm64", "linux", { os: "linux", architecture: "arm64" }],
    ["arm", "linux", { os: "linux", architecture: "arm", variant: "v7" }],
    ["ia32", "win32", { os: "windows", architecture: "386" }],
    ["arm64", "darwin", { os: "darwin", architecture: "arm64" }],
    ["ppc64", "linux", { os: "linux", architecture: "ppc64le" }],
    ["ppc64", "aix", { os: "aix", architecture: "ppc64" }],
    ["s390x", "linux", { os: "linux", architecture: "s390x" }],
    ["riscv64", "linux", { os: "linux", architecture: "riscv64" }],
    ["mipsel", "linux", { os: "linux", architecture: "mipsle" }],
    ["loong64", "linux", { os: "linux", architecture: "loong64" }],
    ["x64", "sunos", { os: "solaris", architecture: "amd64" }],
    ["future", "freebsd", { os: "freebsd", architecture: "future" }],
  ])("%s on %s → %j", (arch, os, expected) => {
    expect(platformFromNode(arch, os)).toEqual(expected);
  });
});

describe("platformMatches", () => {
  it.each([
    [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "amd64" }, true],
    [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "x86_64" }, true],
    [{ os: "linux", architecture: "amd64" }, { os: "Linux", architecture: "amd64" }, true],
    [{ os: "linux", architecture: "amd64" }, { os: "gardenlinux", architecture: "amd64" }, true],
    [{ os: "gardenlinux", architecture: "amd64" }, { os: "linux", architecture: "amd64" }, false],
    [{ os: "linux", architecture: "amd64" }, { os: "windows", architecture: "amd64" }, false],
    [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm64" }, false],
    [{ os: "linux", architecture: "arm64" }, { os: "linux", architecture: "arm64", variant: "v8" }, true],
    [{ os: "linux", architecture: "arm", variant: "v7" }, { os: "linux", architecture: "arm" }, true],
    [{ os: "linux", architecture: "arm", variant: "v7" }, { os: "linux", architecture: "arm", variant: "v6" }, false],
    [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "amd64", variant: "v3" }, true],
    [{ os: "linux", architecture: "amd64" }, undefined, false],
  ])("%j wants %j: %s", (wanted, candidate, expected) => {
    expect(platformMatches(wanted, candidate)).toBe(expected);
  });
});

describe("flavorMatches and isBootImageEntry", () => {
  const kvmProd = entry("a", { os: "gardenlinux", architecture: "amd64" }, { cname: "kvm-gardener_prod-amd64-1443.3-c7a0ac9b" });
  it.each([
    ["kvm-gardener_prod-amd64-1443.3-c7a0ac9b", true],
    ["kvm-gardener_prod", true],
    ["kvm-gardener_prod-amd64", true],
    ["kvm-gardener_prod-arm64", false],
    ["kvm-gardener_prod-amd64-1443.3", false],
    ["kvm", false],
    ["kvm-gardener", false],
    ["gardener_prod", false],
    ["", false],
  ])("flavor %j matches kvm-gardener_prod-amd64-…: %s", (flavor, expected) => {
    expect(flavorMatches(flavor, kvmProd)).toBe(expected);
  });

  it("needs a cname", () => {
    expect(flavorMatches("kvm", entry("b", { os: "linux", architecture: "amd64" }))).toBe(false);
  });

  it.each([
    [entry("a", { os: "gardenlinux", architecture: "amd64" }), true],
    [entry("b", { os: "linux", architecture: "amd64" }, { cname: "x-amd64" }), true],
    [entry("c", { os: "linux", architecture: "amd64" }, undefined, "application/vnd.ironcore.image.config.v1+json"), true],
    [entry("d", { os: "linux", architecture: "amd64" }), false],
    [entry("e", undefined, undefined, "application/vnd.example"), false],
  ])("isBootImageEntry(%j) → %s", (descriptor, expected) => {
    expect(isBootImageEntry(descriptor)).toBe(expected);
  });
});

describe("selectIndexEntry on real-world indexes", () => {
  const gardenLinux = indexFrom(GARDENLINUX_INDEX);
  const ironcore = indexFrom(IRONCORE_INDEX);
  const docker = indexFrom(DOCKER_MANIFEST_LIST);
  const linux = (architecture: string, variant?: string): Platform =>
    variant === undefined ? { os: "linux", architecture } : { os: "linux", architecture, variant };

  it.each<[string, ImageIndex, IndexSelection, string]>([
    ["ironcore amd64", ironcore, { platform: linux("amd64") }, "ironcore-amd64"],
    ["ironcore arm64 by its Linux name", ironcore, { platform: linux("aarch64") }, "ironcore-arm64"],
    ["alpine armv7", docker, { platform: linux("arm", "v7") }, "alpine-armv7"],
    ["alpine armhf", docker, { platform: parsePlatform("linux/armhf") }, "alpine-armv7"],
    ["alpine arm64 (v8 entry)", docker, { platform: linux("arm64") }, "alpine-arm64"],
    ["Garden Linux flavor over the container image", gardenLinux, { platform: linux("amd64"), flavor: "kvm-gardener_prod" }, "kvm-gardener_prod-amd64-1443.3-c7a0ac9b"],
    ["Garden Linux flavor, arm64", gardenLinux, { platform: linux("arm64"), flavor: "metal_pxe" }, "metal_pxe-arm64-1443.3-c7a0ac9b"],
    ["Garden Linux short flavor", gardenLinux, { platform: linux("amd64"), flavor: "kvm" }, "kvm-amd64-1443.3-c7a0ac9b"],
    ["Garden Linux full cname alone", gardenLinux, { flavor: "metal_pxe-amd64-1443.3-c7a0ac9b" }, "metal_pxe-amd64-1443.3-c7a0ac9b"],
    ["explicit gardenlinux os", gardenLinux, { platform: parsePlatform("gardenlinux/amd64"), flavor: "metal_pxe" }, "metal_pxe-amd64-1443.3-c7a0ac9b"],
  ])("%s", (_name, index, criteria, label) => {
    expect(selectIndexEntry(index, criteria).digest).toBe(labelDigest(label));
  });

  it("prefers the boot image over a container image of the same platform, in either order", () => {
    const container = entry("container", { os: "linux", architecture: "amd64" });
    const boot = entry("boot", { os: "gardenlinux", architecture: "amd64" });
    const platform = linux("amd64");
    expect(selectIndexEntry({ manifests: [container, boot] }, { platform })).toBe(boot);
    expect(selectIndexEntry({ manifests: [boot, container] }, { platform })).toBe(boot);
  });

  it("takes a container image when nothing else matches", () => {
    const container = entry("container", { os: "linux", architecture: "amd64" });
    const boot = entry("boot", { os: "gardenlinux", architecture: "arm64" });
    expect(selectIndexEntry({ manifests: [container, boot] }, { platform: linux("amd64") })).toBe(container);
  });

  it("skips buildx attestation entries", () => {
    const image = entry("image", { os: "linux", architecture: "amd64" });
    const attestation = entry("att", { os: "unknown", architecture: "unknown" }, { "vnd.docker.reference.type": "attestation-manifest" });
    expect(selectIndexEntry({ manifests: [attestation, image] }, {})).toBe(image);
  });

  it("a cname naming one entry wins over the host platform; the host only chooses among several", () => {
    const onAmd64 = { hostPlatform: linux("amd64") };
    expect(selectIndexEntry(gardenLinux, { ...onAmd64, flavor: "metal_pxe-arm64-1443.3-c7a0ac9b" }).digest).toBe(labelDigest("metal_pxe-arm64-1443.3-c7a0ac9b"));
    expect(selectIndexEntry(gardenLinux, { ...onAmd64, flavor: "metal_pxe-arm64" }).digest).toBe(labelDigest("metal_pxe-arm64-1443.3-c7a0ac9b"));
    expect(selectIndexEntry(gardenLinux, { ...onAmd64, flavor: "metal_pxe" }).digest).toBe(labelDigest("metal_pxe-amd64-1443.3-c7a0ac9b"));
    expect(selectIndexEntry(gardenLinux, { hostPlatform: linux("arm64"), flavor: "metal_pxe" }).digest).toBe(labelDigest("metal_pxe-arm64-1443.3-c7a0ac9b"));
    // Without a flavor the host platform filters as an explicit one does.
    expect(() => selectIndexEntry(ironcore, { hostPlatform: linux("s390x") })).toThrowError(expect.objectContaining({ code: "NOT_FOUND" }));
    expect(selectIndexEntry(ironcore, { hostPlatform: linux("arm64") }).digest).toBe(labelDigest("ironcore-arm64"));
    // An explicit platform still filters a flavor.
    expect(() => selectIndexEntry(gardenLinux, { platform: linux("amd64"), hostPlatform: linux("amd64"), flavor: "metal_pxe-arm64" })).toThrowError(
      expect.objectContaining({ code: "NOT_FOUND" }),
    );
  });

  it("counts one digest listed twice once", () => {
    const first = entry("same", { os: "linux", architecture: "amd64" });
    expect(selectIndexEntry({ manifests: [first, { ...first }] }, { platform: linux("amd64") })).toBe(first);
  });

  it("reports several flavors as AMBIGUOUS, with the cnames and how to choose", () => {
    const run = () => selectIndexEntry(gardenLinux, { platform: linux("amd64") });
    expect(run).toThrowError(expect.objectContaining({ code: "AMBIGUOUS" }));
    expect(run).toThrowError("3 entries match platform linux/amd64");
    expect(run).toThrowError("gardenlinux/amd64 cname metal_pxe-amd64-1443.3-c7a0ac9b");
    expect(run).toThrowError("--flavor");
    try {
      run();
    } catch (error) {
      expect((error as OcibootError).details?.["choices"]).toEqual([
        "gardenlinux/amd64 cname kvm-gardener_prod-amd64-1443.3-c7a0ac9b",
        "gardenlinux/amd64 cname metal_pxe-amd64-1443.3-c7a0ac9b",
        "gardenlinux/amd64 cname kvm-amd64-1443.3-c7a0ac9b",
      ]);
    }
  });

  it("reports several platforms as AMBIGUOUS when none is given", () => {
    expect(() => selectIndexEntry(ironcore, {})).toThrowError(expect.objectContaining({ code: "AMBIGUOUS" }));
    expect(() => selectIndexEntry(ironcore, {})).toThrowError("--platform");
  });

  it.each<[string, ImageIndex, IndexSelection, string]>([
    ["missing architecture", ironcore, { platform: linux("s390x") }, "nothing matches platform linux/s390x; available: linux/amd64"],
    ["missing flavor", gardenLinux, { platform: linux("amd64"), flavor: "aws" }, 'nothing matches platform linux/amd64 and flavor "aws"'],
    ["flavor on an index without cnames", ironcore, { flavor: "kvm" }, "available: linux/amd64 (sha256:"],
    ["wrong variant", docker, { platform: linux("arm", "v5") }, "linux/arm/v6"],
    ["empty index", { schemaVersion: 2, manifests: [] }, {}, "the index lists no manifests"],
  ])("reports %s as NOT_FOUND", (_name, index, criteria, message) => {
    expect(() => selectIndexEntry(index, criteria)).toThrowError(expect.objectContaining({ code: "NOT_FOUND" }));
    expect(() => selectIndexEntry(index, criteria)).toThrowError(message);
  });

  it("lists Garden Linux cnames when nothing matches", () => {
    expect(() => selectIndexEntry(gardenLinux, { platform: linux("riscv64") })).toThrowError(
      "gardenlinux/arm64 cname kvm-gardener_prod-arm64-1443.3-c7a0ac9b",
    );
  });

  it("returns an entry that matches, or throws NOT_FOUND or AMBIGUOUS", () => {
    const os = fc.constantFrom("linux", "gardenlinux", "windows");
    const architecture = fc.constantFrom("amd64", "x86_64", "arm64", "aarch64", "arm", "s390x");
    const variant = fc.option(fc.constantFrom("v6", "v7", "v8"), { nil: undefined });
    const platform = fc.record({ os, architecture, variant }).map(({ variant: v, ...rest }) => (v === undefined ? rest : { ...rest, variant: v }));
    const cname = fc.option(fc.constantFrom("kvm-amd64-1", "kvm-arm64-1", "metal-amd64-1"), { nil: undefined });
    const entries = fc.array(
      fc.tuple(fc.constantFrom("a", "b", "c", "d", "e"), fc.option(platform, { nil: undefined }), cname).map(([label, p, c]) =>
        entry(label, p, c === undefined ? undefined : { cname: c }),
      ),
      { maxLength: 6 },
    );
    const criteria = fc.record({ platform, flavor: fc.constantFrom("kvm", "metal", "kvm-amd64-1") }, { requiredKeys: [] });
    fc.assert(
      fc.property(entries, criteria, (manifests, wanted) => {
        try {
          const chosen = selectIndexEntry({ manifests }, wanted);
          return (
            manifests.includes(chosen) &&
            (wanted.platform === undefined || platformMatches(wanted.platform, chosen.platform)) &&
            (wanted.flavor === undefined || flavorMatches(wanted.flavor, chosen))
          );
        } catch (error) {
          return error instanceof OcibootError && (error.code === "NOT_FOUND" || error.code === "AMBIGUOUS");
        }
      }),
      { numRuns: 2000 },
    );
  });
});
