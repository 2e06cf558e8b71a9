/**
 * Boot-image dialects as data (docs/formats.md#boot-image-dialects): which layer media type plays which role,
 * which config types mark which dialect, and how a manifest becomes a list of files.
 */
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "./descriptor.ts";
import { decodeJsonObject, type ImageManifest } from "./manifest.ts";
import { Annotation, Limits, MediaType } from "./mediatypes.ts";

/**
 * What a boot file is for; ociboot works in roles, dialects only name them differently.
 * `executable` is ociboot's own release executable (docs/releases.md), so a rescue shell can
 * fetch the next ociboot the way it fetches a kernel.
 */
export type Role = "kernel" | "initrd" | "rootfs" | "squashfs" | "uki" | "iso" | "cmdline" | "executable";

/** Every role, in the order files are usually listed. */
export const ROLES: readonly Role[] = ["kernel", "initrd", "rootfs", "squashfs", "uki", "iso", "cmdline", "executable"];

/** The dialect a manifest is written in; `artifact` is any other OCI artifact (§1d). */
export type Dialect = "onmetal" | "ironcore" | "gardenlinux" | "artifact";

/** File names used for a role's layer when fetching into a directory. */
export const DEFAULT_FILE_NAMES: Readonly<Record<Role, string>> = {
  kernel: "vmlinuz",
  initrd: "initrd",
  rootfs: "rootfs",
  squashfs: "root.squashfs",
  uki: "uki.efi",
  iso: "image.iso",
  cmdline: "cmdline",
  executable: "ociboot",
};

/** ociboot's release artifact (docs/releases.md): one manifest per platform, the executable its only layer. */
export const OCIBOOT_RELEASE_MEDIA_TYPES = {
  artifact: "application/vnd.ociboot.release.v1",
  executable: "application/vnd.ociboot.executable.v1",
} as const;

/** onmetal v1alpha1 (onmetal-image ≤ v0.1.1, the Garden Linux `_oci` feature), docs/formats.md#onmetal-v1alpha1. */
export const ONMETAL_MEDIA_TYPES = {
  config: "application/vnd.onmetal.image.config.v1alpha1+json",
  rootfs: "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
  initramfs: "application/vnd.onmetal.image.initramfs.v1alpha1.initramfs",
  vmlinuz: "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz",
} as const;

/** ironcore-image today, docs/formats.md#ironcore. */
export const IRONCORE_MEDIA_TYPES = {
  config: "application/vnd.ironcore.image.config.v1+json",
  rootfs: "application/vnd.ironcore.image.rootfs",
  initramfs: "application/vnd.ironcore.image.initramfs",
  kernel: "application/vnd.ironcore.image.kernel",
  squashfs: "application/vnd.ironcore.image.squashfs",
  uki: "application/vnd.ironcore.image.uki",
  iso: "application/vnd.ironcore.image.iso",
} as const;

/** ironcore-image's earlier v1alpha1 media types, still read (docs/formats.md#ironcore). */
export const IRONCORE_LEGACY_MEDIA_TYPES = {
  config: "application/vnd.ironcore.image.config.v1alpha1+json",
  rootfs: "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs",
  initramfs: "application/vnd.ironcore.image.initramfs.v1alpha1.initramfs",
  vmlinuz: "application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz",
  squashfs: "application/vnd.ironcore.image.squashfs.v1alpha1.squashfs",
} as const;

/** Garden Linux `gl-oci` (ghcr.io/gardenlinux/gardenlinux), docs/formats.md#garden-linux-gl-oci. Read only. */
export const GARDENLINUX_MEDIA_TYPES = {
  config: "application/vnd.unknown.config.v1+json",
  kernel: "application/io.gardenlinux.kernel",
  initrd: "application/io.gardenlinux.initrd",
  cmdline: "application/io.gardenlinux.cmdline",
  squashfs: "application/io.gardenlinux.squashfs",
  uki: "application/io.gardenlinux.uki",
} as const;

/** Annotations Garden Linux puts on layers, manifests and index entries (docs/formats.md#garden-linux-gl-oci). */
export const GardenLinuxAnnotation = {
  cname: "cname",
  architecture: "architecture",
  version: "version",
  featureSet: "feature_set",
  commit: "commit",
  layerArchitecture: "io.gardenlinux.image.layer.architecture",
} as const;

/** Garden Linux media types share this prefix; it identifies the dialect (docs/formats.md#garden-linux-gl-oci). */
const GARDENLINUX_MEDIA_TYPE_PREFIX = "application/io.gardenlinux.";

/** Layer media type → role, for every dialect. Only media types decide; titles never do. */
export const LAYER_ROLES: ReadonlyMap<string, Role> = new Map<string, Role>([
  [ONMETAL_MEDIA_TYPES.rootfs, "rootfs"],
  [ONMETAL_MEDIA_TYPES.initramfs, "initrd"],
  [ONMETAL_MEDIA_TYPES.vmlinuz, "kernel"],
  [IRONCORE_MEDIA_TYPES.rootfs, "rootfs"],
  [IRONCORE_MEDIA_TYPES.initramfs, "initrd"],
  [IRONCORE_MEDIA_TYPES.kernel, "kernel"],
  [IRONCORE_MEDIA_TYPES.squashfs, "squashfs"],
  [IRONCORE_MEDIA_TYPES.uki, "uki"],
  [IRONCORE_MEDIA_TYPES.iso, "iso"],
  [IRONCORE_LEGACY_MEDIA_TYPES.rootfs, "rootfs"],
  [IRONCORE_LEGACY_MEDIA_TYPES.initramfs, "initrd"],
  [IRONCORE_LEGACY_MEDIA_TYPES.vmlinuz, "kernel"],
  [IRONCORE_LEGACY_MEDIA_TYPES.squashfs, "squashfs"],
  [GARDENLINUX_MEDIA_TYPES.kernel, "kernel"],
  [GARDENLINUX_MEDIA_TYPES.initrd, "initrd"],
  [GARDENLINUX_MEDIA_TYPES.cmdline, "cmdline"],
  [GARDENLINUX_MEDIA_TYPES.squashfs, "squashfs"],
  [GARDENLINUX_MEDIA_TYPES.uki, "uki"],
  [OCIBOOT_RELEASE_MEDIA_TYPES.executable, "executable"],
]);

/** Config media type → dialect, for the dialects that carry the command line in their config. */
export const CONFIG_DIALECTS: ReadonlyMap<string, Dialect> = new Map<string, Dialect>([
  [ONMETAL_MEDIA_TYPES.config, "onmetal"],
  [IRONCORE_MEDIA_TYPES.config, "ironcore"],
  [IRONCORE_LEGACY_MEDIA_TYPES.config, "ironcore"],
]);

/** True when a config media type belongs to a boot-image dialect whose config holds `commandLine`. */
export function isBootConfigMediaType(mediaType: string): boolean {
  return CONFIG_DIALECTS.has(mediaType);
}

/** The role a layer plays, judged by its media type alone; undefined for anything else. */
export function roleOfLayer(descriptor: Pick<Descriptor, "mediaType">): Role | undefined {
  return LAYER_ROLES.get(descriptor.mediaType);
}

/**
 * The dialect of a manifest: by its config media type first (onmetal, ironcore), then by its
 * layers (any `application/io.gardenlinux.*` layer makes it Garden Linux; onmetal or ironcore
 * layer types under a foreign config still count), else `artifact`.
 */
export function dialectOfManifest(manifest: Pick<ImageManifest, "config" | "layers">): Dialect {
  const byConfig = CONFIG_DIALECTS.get(manifest.config.mediaType);
  if (byConfig !== undefined) return byConfig;
  const layerTypes = manifest.layers.map((layer) => layer.mediaType);
  if (layerTypes.some((type) => type.startsWith(GARDENLINUX_MEDIA_TYPE_PREFIX))) return "gardenlinux";
  if (layerTypes.some((type) => Object.values<string>(ONMETAL_MEDIA_TYPES).includes(type))) return "onmetal";
  if (layerTypes.some((type) => LAYER_ROLES.has(type) && type !== OCIBOOT_RELEASE_MEDIA_TYPES.executable)) return "ironcore";
  return "artifact";
}

/** One file to write when fetching a boot image. */
export interface BootFile {
  /** The role, when the layer's media type names one; absent for extra files taken by title. */
  role?: Role;
  descriptor: Descriptor;
  /** A safe, plain file name (see {@link safeFileName}). */
  name: string;
}

/** The files of a boot image and where its kernel command line comes from. */
export interface BootFilePlan {
  dialect: Dialect;
  files: BootFile[];
  /**
   * `config`: the config blob holds `commandLine` (onmetal, ironcore; see {@link parseBootConfig});
   * `layer`: a `cmdline` layer is among `files`; `none`: the image carries no command line.
   */
  commandLineFrom: "config" | "layer" | "none";
}

/**
 * Plans which layers of a manifest become which files. Layers with a role get the role's
 * default name ({@link DEFAULT_FILE_NAMES}); other layers with an
 * `org.opencontainers.image.title` annotation keep their title (as `oras pull` does);
 * layers with neither are skipped. Files are listed in layer order.
 *
 * @throws OcibootError INVALID_MANIFEST when a role appears twice or two layers would write the
 *   same file; UNSAFE_CONTENT when a title is not a plain file name.
 */
export function planBootFiles(manifest: Pick<ImageManifest, "config" | "layers">): BootFilePlan {
  const dialect = dialectOfManifest(manifest);
  const files: BootFile[] = [];
  const layerOfRole = new Map<Role, number>();
  // Compared case-folded: two names differing only in case collide on macOS and Windows.
  const layerOfName = new Map<string, { position: number; digest: string }>();

  manifest.layers.forEach((descriptor, position) => {
    const role = roleOfLayer(descriptor);
    let name: string;
    if (role !== undefined) {
      const earlier = layerOfRole.get(role);
      if (earlier !== undefined) {
        throw new OcibootError(
          "INVALID_MANIFEST",
          `Cannot plan boot files: layers[${earlier}] and layers[${position}] are both ${role} layers, so which one to use is ambiguous`,
        );
      }
      layerOfRole.set(role, position);
      name = DEFAULT_FILE_NAMES[role];
    } else {
      const title = descriptor.annotations?.[Annotation.title];
      if (title === undefined) return;
      name = safeFileName(title);
    }

    const key = name.toLowerCase();
    const clash = layerOfName.get(key);
    if (clash !== undefined) {
      // The same blob listed twice under one title is harmless: write it once.
      if (clash.digest === descriptor.digest && role === undefined) return;
      throw new OcibootError(
        "INVALID_MANIFEST",
        `Cannot plan boot files: layers[${clash.position}] and layers[${position}] would both be written as "${name}"`,
      );
    }
    layerOfName.set(key, { position, digest: descriptor.digest });
    files.push(role === undefined ? { descriptor, name } : { role, descriptor, name });
  });

  const commandLineFrom = layerOfRole.has("cmdline")
    ? "layer"
    : isBootConfigMediaType(manifest.config.mediaType)
      ? "config"
      : "none";
  return { dialect, files, commandLineFrom };
}

/**
 * True when fetch has files to write: a kernel, initrd, rootfs, squashfs, UKI or ISO layer, or an
 * artifact's titled files (as `oras pull` writes them: a referrer fetched by its own digest). A
 * command line alone boots nothing, and a layer with neither role nor title is never written.
 */
export function hasBootFiles(plan: BootFilePlan): boolean {
  return plan.files.some((file) => file.role !== "cmdline");
}

/**
 * The error for an image with nothing to boot, saying what it holds (a container image, an artifact
 * and its files, or nothing) and what would work instead, so that a script never boots an empty folder.
 */
export function noBootFilesError(action: string, reference: string, manifest: Pick<ImageManifest, "config" | "layers" | "artifactType">): OcibootError {
  const layerTypes = [...new Set(manifest.layers.map((layer) => layer.mediaType))];
  const titles = manifest.layers.flatMap((layer) => {
    const title = layer.annotations?.[Annotation.title];
    return title === undefined ? [] : [shorten(title)];
  });
  const isContainerImage = manifest.config.mediaType === MediaType.ociConfig || manifest.config.mediaType === MediaType.dockerConfig;
  let holds: string;
  if (manifest.layers.length === 0) {
    holds = `it has no layers at all (config ${manifest.config.mediaType})`;
  } else if (isContainerImage) {
    holds = `this is a container image (${manifest.layers.length} layer${manifest.layers.length === 1 ? "" : "s"} of ${layerTypes.join(", ")})`;
  } else {
    const type = manifest.artifactType ?? manifest.config.mediaType;
    holds = `it is an artifact of type ${type} holding ${layerTypes.join(", ")}${titles.length > 0 ? ` (${titles.join(", ")})` : ""}`;
  }
  return new OcibootError(
    "NO_BOOT_FILES",
    `Cannot ${action} ${reference}: the image has no boot files (no kernel, initrd, rootfs, squashfs, UKI or ISO layer); ${holds}. ` +
      "To move it whole use ociboot pull or ociboot copy; for files attached to a boot image use ociboot fetch REF --referrer TYPE",
    {
      details: {
        kind: manifest.layers.length === 0 ? "empty" : isContainerImage ? "container-image" : "artifact",
        configMediaType: manifest.config.mediaType,
        layerMediaTypes: layerTypes,
        titles,
      },
    },
  );
}

// Linux NAME_MAX; most file systems cap a name at 255 bytes.
const MAX_FILE_NAME_BYTES = 255;
// C0 controls and DEL: legal on Linux but they garble listings and terminals.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * Returns `title` when it is safe as a file name inside the output directory: a single plain
 * relative name without `/`, `\`, NUL or control characters, not `.` or `..`, and at most 255
 * UTF-8 bytes. Titles come from the registry and are untrusted (docs/formats.md#any-oci-artifact).
 *
 * @throws OcibootError UNSAFE_CONTENT for anything else.
 */
export function safeFileName(title: string): string {
  const reason = unsafeReason(title);
  if (reason !== undefined) {
    throw new OcibootError("UNSAFE_CONTENT", `Cannot use layer title ${JSON.stringify(shorten(title))} as a file name: ${reason}`);
  }
  return title;
}

function unsafeReason(title: string): string | undefined {
  if (typeof title !== "string" || title.length === 0) return "it is empty";
  if (title === "." || title === "..") return "it names a directory";
  if (title.includes("/") || title.includes("\\")) return "it contains a path separator";
  if (CONTROL_CHARACTER.test(title)) return "it contains a control character";
  if (new TextEncoder().encode(title).byteLength > MAX_FILE_NAME_BYTES) return `it is longer than ${MAX_FILE_NAME_BYTES} bytes`;
  return undefined;
}

/** What a boot-image config (onmetal, ironcore) says. */
export interface BootConfig {
  commandLine?: string;
}

/**
 * Parses an onmetal or ironcore config blob, `{"commandLine": "…"}`; onmetal-image omits the
 * key when the command line is empty (docs/formats.md#onmetal-v1alpha1). Other keys are ignored.
 *
 * @throws OcibootError UNSAFE_CONTENT above 4 MiB; INVALID_MANIFEST when the blob is not a JSON
 *   object or `commandLine` is not a string.
 */
export function parseBootConfig(bytes: Uint8Array): BootConfig {
  if (bytes.byteLength > Limits.configBytes) {
    throw new OcibootError(
      "UNSAFE_CONTENT",
      `Cannot parse boot config: ${bytes.byteLength} bytes exceed the limit of ${Limits.configBytes}`,
    );
  }
  const document = decodeJsonObject(bytes, "boot config");
  const commandLine = document["commandLine"];
  // Go's encoding/json leaves a string unset for null, so onmetal-image would read null as "".
  if (commandLine === undefined || commandLine === null) return {};
  if (typeof commandLine !== "string") {
    throw new OcibootError("INVALID_MANIFEST", "Cannot parse boot config: commandLine must be a string");
  }
  return { commandLine };
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
