import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import {
  DEFAULT_FILE_NAMES,
  GARDENLINUX_MEDIA_TYPES,
  IRONCORE_LEGACY_MEDIA_TYPES,
  IRONCORE_MEDIA_TYPES,
  LAYER_ROLES,
  OCIBOOT_RELEASE_MEDIA_TYPES,
  ONMETAL_MEDIA_TYPES,
  ROLES,
  dialectOfManifest,
  isBootConfigMediaType,
  parseBootConfig,
  planBootFiles,
  roleOfLayer,
  safeFileName,
  type Role,
} from "../../src/oci/dialects.ts";
import { parseManifest, type ImageManifest } from "../../src/oci/manifest.ts";
import { Limits } from "../../src/oci/mediatypes.ts";
import {
  DOCKER_MANIFEST,
  GARDENLINUX_MANIFEST,
  IRONCORE_LEGACY_MANIFEST,
  IRONCORE_MANIFEST,
  ONMETAL_SEED_COMMAND_LINE,
  ONMETAL_SEED_CONFIG_DIGEST,
  ONMETAL_SEED_CONFIG_JSON,
  ONMETAL_SEED_INITRAMFS_DIGEST,
  ONMETAL_SEED_MANIFEST_JSON,
  ONMETAL_SEED_ROOTFS_DIGEST,
  ONMETAL_SEED_VMLINUZ_DIGEST,
  ORAS_ARTIFACT_MANIFEST,
  bytesOf,
  digestOf,
  encoder,
  labelDigest,
} from "./fixtures/manifests.ts";

function manifestFrom(document: unknown): ImageManifest {
  const parsed = typeof document === "string" ? parseManifest(encoder.encode(document)) : parseManifest(bytesOf(document));
  if (parsed.kind !== "manifest") throw new Error("expected a manifest");
  return parsed.manifest;
}

function layer(mediaType: string, label: string, title?: string): Descriptor {
  const descriptor: Descriptor = { mediaType, digest: labelDigest(label) as Descriptor["digest"], size: 1 };
  if (title !== undefined) descriptor.annotations = { "org.opencontainers.image.title": title };
  return descriptor;
}

const EMPTY_CONFIG = layer("application/vnd.oci.empty.v1+json", "empty");

describe("media type tables (docs/formats.md#boot-image-dialects)", () => {
  // Spelled out literally so a typo in the constants cannot hide in both places.
  const table: Array<[string, Role]> = [
    ["application/vnd.onmetal.image.rootfs.v1alpha1.rootfs", "rootfs"],
    ["application/vnd.onmetal.image.initramfs.v1alpha1.initramfs", "initrd"],
    ["application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz", "kernel"],
    ["application/vnd.ironcore.image.rootfs", "rootfs"],
    ["application/vnd.ironcore.image.initramfs", "initrd"],
    ["application/vnd.ironcore.image.kernel", "kernel"],
    ["application/vnd.ironcore.image.squashfs", "squashfs"],
    ["application/vnd.ironcore.image.uki", "uki"],
    ["application/vnd.ironcore.image.iso", "iso"],
    ["application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", "rootfs"],
    ["application/vnd.ironcore.image.initramfs.v1alpha1.initramfs", "initrd"],
    ["application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz", "kernel"],
    ["application/vnd.ironcore.image.squashfs.v1alpha1.squashfs", "squashfs"],
    ["application/io.gardenlinux.kernel", "kernel"],
    ["application/io.gardenlinux.initrd", "initrd"],
    ["application/io.gardenlinux.cmdline", "cmdline"],
    ["application/io.gardenlinux.squashfs", "squashfs"],
    ["application/io.gardenlinux.uki", "uki"],
    ["application/vnd.ociboot.executable.v1", "executable"],
  ];
  it.each(table)("%s is the %s role", (mediaType, role) => {
    expect(roleOfLayer({ mediaType })).toBe(role);
  });

  it("has no other entries", () => {
    expect([...LAYER_ROLES.entries()].sort()).toEqual([...table].sort());
  });

  it.each([
    "application/io.gardenlinux.image.archive.format.raw",
    "application/io.gardenlinux.image.archive.format.tar",
    "application/io.gardenlinux.manifest",
    "application/io.gardenlinux.release",
    "application/io.gardenlinux.log",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/octet-stream",
    "application/vnd.onmetal.image.config.v1alpha1+json",
    "application/vnd.ironcore.image.kernel+gzip",
    "APPLICATION/IO.GARDENLINUX.KERNEL",
  ])("%s has no role", (mediaType) => {
    expect(roleOfLayer({ mediaType })).toBeUndefined();
  });

  it("does not guess roles from titles", () => {
    expect(roleOfLayer(layer("application/octet-stream", "k", "vmlinuz"))).toBeUndefined();
  });

  it("exports the media types other code writes", () => {
    expect(ONMETAL_MEDIA_TYPES).toEqual({
      config: "application/vnd.onmetal.image.config.v1alpha1+json",
      rootfs: "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
      initramfs: "application/vnd.onmetal.image.initramfs.v1alpha1.initramfs",
      vmlinuz: "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz",
    });
    expect(IRONCORE_MEDIA_TYPES.config).toBe("application/vnd.ironcore.image.config.v1+json");
    expect(IRONCORE_LEGACY_MEDIA_TYPES.config).toBe("application/vnd.ironcore.image.config.v1alpha1+json");
    expect(GARDENLINUX_MEDIA_TYPES.config).toBe("application/vnd.unknown.config.v1+json");
  });

  it.each([
    ["application/vnd.onmetal.image.config.v1alpha1+json", true],
    ["application/vnd.ironcore.image.config.v1+json", true],
    ["application/vnd.ironcore.image.config.v1alpha1+json", true],
    ["application/vnd.unknown.config.v1+json", false],
    ["application/vnd.oci.image.config.v1+json", false],
  ])("config %s carries a command line: %s", (mediaType, expected) => {
    expect(isBootConfigMediaType(mediaType)).toBe(expected);
  });

  it("names a default file for every role", () => {
    expect(Object.keys(DEFAULT_FILE_NAMES).sort()).toEqual([...ROLES].sort());
    expect(DEFAULT_FILE_NAMES).toEqual({
      kernel: "vmlinuz",
      initrd: "initrd",
      rootfs: "rootfs",
      squashfs: "root.squashfs",
      uki: "uki.efi",
      iso: "image.iso",
      cmdline: "cmdline",
      executable: "ociboot",
    });
  });
});

describe("dialectOfManifest", () => {
  it.each([
    ["onmetal seed", manifestFrom(ONMETAL_SEED_MANIFEST_JSON), "onmetal"],
    ["ironcore", manifestFrom(IRONCORE_MANIFEST), "ironcore"],
    ["legacy ironcore", manifestFrom(IRONCORE_LEGACY_MANIFEST), "ironcore"],
    ["Garden Linux", manifestFrom(GARDENLINUX_MANIFEST), "gardenlinux"],
    ["oras artifact", manifestFrom(ORAS_ARTIFACT_MANIFEST), "artifact"],
    ["container image", manifestFrom(DOCKER_MANIFEST), "artifact"],
    [
      "Garden Linux extras only",
      { config: EMPTY_CONFIG, layers: [layer("application/io.gardenlinux.log", "log")] },
      "gardenlinux",
    ],
    ["onmetal layers, foreign config", { config: EMPTY_CONFIG, layers: [layer(ONMETAL_MEDIA_TYPES.vmlinuz, "k")] }, "onmetal"],
    ["ironcore layers, foreign config", { config: EMPTY_CONFIG, layers: [layer(IRONCORE_MEDIA_TYPES.uki, "u")] }, "ironcore"],
    ["no layers", { config: EMPTY_CONFIG, layers: [] }, "artifact"],
    ["ociboot release", { config: EMPTY_CONFIG, layers: [layer(OCIBOOT_RELEASE_MEDIA_TYPES.executable, "x")] }, "artifact"],
  ])("%s → %s", (_name, manifest, expected) => {
    expect(dialectOfManifest(manifest)).toBe(expected);
  });
});

describe("planBootFiles on each dialect", () => {
  it("plans the onmetal seed image: rootfs, initrd, kernel; command line from config", () => {
    expect(planBootFiles(manifestFrom(ONMETAL_SEED_MANIFEST_JSON))).toEqual({
      dialect: "onmetal",
      commandLineFrom: "config",
      files: [
        {
          role: "rootfs",
          name: "rootfs",
          descriptor: { mediaType: ONMETAL_MEDIA_TYPES.rootfs, digest: ONMETAL_SEED_ROOTFS_DIGEST, size: 231536600 },
        },
        {
          role: "initrd",
          name: "initrd",
          descriptor: { mediaType: ONMETAL_MEDIA_TYPES.initramfs, digest: ONMETAL_SEED_INITRAMFS_DIGEST, size: 16583520 },
        },
        {
          role: "kernel",
          name: "vmlinuz",
          descriptor: { mediaType: ONMETAL_MEDIA_TYPES.vmlinuz, digest: ONMETAL_SEED_VMLINUZ_DIGEST, size: 13212832 },
        },
      ],
    });
  });

  it("plans an ironcore image with every role it knows", () => {
    const plan = planBootFiles(manifestFrom(IRONCORE_MANIFEST));
    expect(plan.dialect).toBe("ironcore");
    expect(plan.commandLineFrom).toBe("config");
    expect(plan.files.map((file) => [file.role, file.name])).toEqual([
      ["rootfs", "rootfs"],
      ["initrd", "initrd"],
      ["kernel", "vmlinuz"],
      ["squashfs", "root.squashfs"],
      ["uki", "uki.efi"],
      ["iso", "image.iso"],
    ]);
    expect(plan.files.map((file) => file.descriptor)).toEqual(IRONCORE_MANIFEST.layers);
  });

  it("plans a legacy ironcore image", () => {
    const plan = planBootFiles(manifestFrom(IRONCORE_LEGACY_MANIFEST));
    expect(plan.dialect).toBe("ironcore");
    expect(plan.commandLineFrom).toBe("config");
    expect(plan.files.map((file) => [file.role, file.name])).toEqual([
      ["rootfs", "rootfs"],
      ["initrd", "initrd"],
      ["kernel", "vmlinuz"],
      ["squashfs", "root.squashfs"],
    ]);
  });

  it("plans a Garden Linux image: roles by media type, everything else by title", () => {
    const plan = planBootFiles(manifestFrom(GARDENLINUX_MANIFEST));
    expect(plan.dialect).toBe("gardenlinux");
    expect(plan.commandLineFrom).toBe("layer");
    const cname = "kvm-gardener_prod-amd64-1443.3-c7a0ac9b";
    expect(plan.files.map((file) => [file.role, file.name])).toEqual([
      [undefined, `${cname}.raw`],
      [undefined, `${cname}.tar`],
      ["kernel", "vmlinuz"],
      ["initrd", "initrd"],
      ["cmdline", "cmdline"],
      ["squashfs", "root.squashfs"],
      ["uki", "uki.efi"],
      [undefined, `${cname}.manifest`],
      [undefined, `${cname}.release`],
      [undefined, `${cname}.log`],
    ]);
    expect(plan.files.every((file) => !("role" in file) || file.role !== undefined)).toBe(true);
    expect(plan.files[2]?.descriptor.digest).toBe(labelDigest(`${cname}.vmlinuz`));
  });

  it("plans an oras artifact by title and skips untitled layers", () => {
    const plan = planBootFiles(manifestFrom(ORAS_ARTIFACT_MANIFEST));
    expect(plan).toEqual({
      dialect: "artifact",
      commandLineFrom: "none",
      files: [
        { name: "bzImage", descriptor: ORAS_ARTIFACT_MANIFEST.layers[0] },
        { name: "initrd.img", descriptor: ORAS_ARTIFACT_MANIFEST.layers[1] },
      ],
    });
  });

  it("plans nothing for a container image", () => {
    expect(planBootFiles(manifestFrom(DOCKER_MANIFEST))).toEqual({ dialect: "artifact", commandLineFrom: "none", files: [] });
  });
});

describe("planBootFiles refusals", () => {
  it("refuses two layers of one role", () => {
    const manifest = {
      config: EMPTY_CONFIG,
      layers: [layer(IRONCORE_MEDIA_TYPES.kernel, "k1"), layer(ONMETAL_MEDIA_TYPES.rootfs, "r"), layer(GARDENLINUX_MEDIA_TYPES.kernel, "k2")],
    };
    expect(() => planBootFiles(manifest)).toThrowError(expect.objectContaining({ code: "INVALID_MANIFEST" }));
    expect(() => planBootFiles(manifest)).toThrowError("layers[0] and layers[2] are both kernel layers");
  });

  it.each([
    ["a title equal to a role's file name", [layer(IRONCORE_MEDIA_TYPES.kernel, "k"), layer("application/octet-stream", "x", "vmlinuz")]],
    ["a title differing only in case", [layer("a/b", "x", "Initrd"), layer(IRONCORE_MEDIA_TYPES.initramfs, "i")]],
    ["one title for two blobs", [layer("a/b", "x", "file"), layer("a/b", "y", "file")]],
  ])("refuses %s", (_name, layers) => {
    expect(() => planBootFiles({ config: EMPTY_CONFIG, layers })).toThrowError(expect.objectContaining({ code: "INVALID_MANIFEST" }));
    expect(() => planBootFiles({ config: EMPTY_CONFIG, layers })).toThrowError("would both be written as");
  });

  it("writes one blob listed twice under one title once", () => {
    const twice = layer("a/b", "same", "file");
    expect(planBootFiles({ config: EMPTY_CONFIG, layers: [twice, { ...twice }] }).files).toHaveLength(1);
  });

  it.each(["../etc/passwd", "/etc/passwd", "a/b", "a\\b", "..", ".", "", "a\u0000b", "line\nbreak"])(
    "refuses the unsafe title %j",
    (title) => {
      const manifest = { config: EMPTY_CONFIG, layers: [layer("application/octet-stream", "x", title)] };
      expect(() => planBootFiles(manifest)).toThrowError(expect.objectContaining({ code: "UNSAFE_CONTENT" }));
    },
  );

  it("ignores the title of a layer that has a role", () => {
    const plan = planBootFiles({ config: EMPTY_CONFIG, layers: [layer(IRONCORE_MEDIA_TYPES.kernel, "k", "../../evil")] });
    expect(plan.files.map((file) => file.name)).toEqual(["vmlinuz"]);
  });
});

describe("safeFileName", () => {
  it.each(["vmlinuz", "kvm-gardener_prod-amd64-1443.3-c7a0ac9b.raw", "...", ".hidden", "a b", "ü".repeat(127), "x".repeat(255)])(
    "accepts %j",
    (title) => {
      expect(safeFileName(title)).toBe(title);
    },
  );

  it.each([
    ["", "empty"],
    [".", "directory"],
    ["..", "directory"],
    ["a/b", "path separator"],
    ["a\\b", "path separator"],
    ["/", "path separator"],
    ["a\u0000", "control character"],
    ["a\u007f", "control character"],
    ["x".repeat(256), "longer than 255 bytes"],
    ["ü".repeat(128), "longer than 255 bytes"],
  ])("refuses %j (%s)", (title, reason) => {
    expect(() => safeFileName(title)).toThrowError(expect.objectContaining({ code: "UNSAFE_CONTENT" }));
    expect(() => safeFileName(title)).toThrowError(reason);
  });

  it("returns only names that stay inside a directory", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), (title) => {
        let name: string;
        try {
          name = safeFileName(title);
        } catch (error) {
          return error instanceof OcibootError && error.code === "UNSAFE_CONTENT";
        }
        return name === title && !/[/\\\u0000]/.test(name) && name !== "." && name !== ".." && name.length > 0;
      }),
      { numRuns: 3000 },
    );
  });
});

describe("parseBootConfig", () => {
  it("reads the onmetal seed config", () => {
    const bytes = encoder.encode(ONMETAL_SEED_CONFIG_JSON);
    expect(bytes.byteLength).toBe(147);
    expect(digestOf(bytes)).toBe(ONMETAL_SEED_CONFIG_DIGEST);
    expect(parseBootConfig(bytes)).toEqual({ commandLine: ONMETAL_SEED_COMMAND_LINE });
  });

  it.each([
    ["{}", {}],
    ['{"commandLine":null}', {}],
    ['{"commandLine":""}', { commandLine: "" }],
    ['{"commandLine":"a \\u003c b \\u0026 c"}', { commandLine: "a < b & c" }],
    ['{"commandLine":"x","other":[1]}', { commandLine: "x" }],
  ])("reads %s", (text, expected) => {
    expect(parseBootConfig(encoder.encode(text))).toEqual(expected);
  });

  it.each([
    ['{"commandLine":1}', "commandLine must be a string"],
    ['{"commandLine":["a"]}', "commandLine must be a string"],
    ["[]", "not an object"],
    ["", "not valid JSON"],
  ])("refuses %j", (text, reason) => {
    expect(() => parseBootConfig(encoder.encode(text))).toThrowError(expect.objectContaining({ code: "INVALID_MANIFEST" }));
    expect(() => parseBootConfig(encoder.encode(text))).toThrowError(reason);
  });

  it("refuses more than 4 MiB", () => {
    expect(() => parseBootConfig(new Uint8Array(Limits.configBytes + 1))).toThrowError(expect.objectContaining({ code: "UNSAFE_CONTENT" }));
  });

  it("never throws anything but OcibootError", () => {
    const configLike = fc.record({ commandLine: fc.jsonValue() }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.oneof(fc.jsonValue(), configLike).map(bytesOf)), (bytes) => {
        try {
          parseBootConfig(bytes);
        } catch (error) {
          return error instanceof OcibootError;
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});

describe("planBootFiles never throws anything but OcibootError", () => {
  it("on arbitrary layer lists", () => {
    const mediaType = fc.constantFrom(...LAYER_ROLES.keys(), "application/octet-stream", "application/io.gardenlinux.log");
    const title = fc.option(fc.oneof(fc.constantFrom("vmlinuz", "initrd", "a", "A", "..", "x/y"), fc.string()), { nil: undefined });
    const layers = fc.array(
      fc.tuple(mediaType, fc.constantFrom("a", "b", "c"), title).map(([type, label, name]) => layer(type, label, name)),
      { maxLength: 8 },
    );
    fc.assert(
      fc.property(layers, (list) => {
        try {
          const plan = planBootFiles({ config: EMPTY_CONFIG, layers: list });
          const roles = plan.files.flatMap((file) => (file.role === undefined ? [] : [file.role]));
          const names = plan.files.map((file) => file.name.toLowerCase());
          return new Set(roles).size === roles.length && new Set(names).size === names.length;
        } catch (error) {
          return error instanceof OcibootError;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
