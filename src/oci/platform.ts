import { OcibootError } from "../errors.ts";
import type { Descriptor, Platform } from "./descriptor.ts";
import { GardenLinuxAnnotation, isBootConfigMediaType } from "./dialects.ts";
import type { ImageIndex } from "./manifest.ts";

export type { Platform } from "./descriptor.ts";

/**
 * What to pick from an index: a platform, a Garden Linux flavor, or both. `hostPlatform` is the
 * machine's own platform, used when the user named no platform: as a filter without a flavor, and
 * with a flavor only to choose among several entries the flavor matches, so that a cname naming
 * exactly one entry selects it on any machine.
 */
export interface IndexSelection {
  platform?: Platform;
  flavor?: string;
  hostPlatform?: Platform;
}

/** The `os` Garden Linux puts into the platform of its index entries (docs/formats.md#garden-linux-gl-oci). */
export const GARDENLINUX_OS = "gardenlinux";

const PLATFORM_COMPONENT = /^[A-Za-z0-9_.-]+$/;
// buildx adds provenance/SBOM entries to indexes; they are never what anyone wants to boot.
const DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type";
const ATTESTATION_MANIFEST = "attestation-manifest";

/**
 * Parses `os/arch[/variant]` as given to `--platform` (`linux/amd64`, `linux/arm/v7`,
 * `gardenlinux/arm64`); the architecture is normalised ({@link normalizeArchitecture}).
 *
 * @throws OcibootError USAGE for anything else.
 */
export function parsePlatform(text: string): Platform {
  const parts = typeof text === "string" ? text.split("/") : [];
  if (parts.length < 2 || parts.length > 3 || !parts.every((part) => PLATFORM_COMPONENT.test(part))) {
    const shown = typeof text === "string" ? JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text) : "";
    throw new OcibootError("USAGE", `Cannot parse platform ${shown}: expected os/arch[/variant], for example linux/amd64`);
  }
  const [os = "", architecture = "", variant] = parts;
  return normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

/** Formats a platform as `os/arch[/variant]`. */
export function formatPlatform(platform: Platform): string {
  const base = `${platform.os}/${platform.architecture}`;
  return platform.variant === undefined || platform.variant === "" ? base : `${base}/${platform.variant}`;
}

/**
 * Normalises an architecture and its variant to the names OCI indexes use (Go's GOARCH, as
 * containerd's platforms package does): `x86_64` → `amd64`, `aarch64` → `arm64` (variant v8
 * dropped as the default), `armhf` → `arm` v7, `armel` → `arm` v6, `i386` → `386`, Debian's
 * `ppc64el` → `ppc64le`. Plain `arm` means v7.
 */
export function normalizeArchitecture(architecture: string, variant?: string): { architecture: string; variant?: string } {
  const arch = architecture.toLowerCase();
  let wantedVariant = variant?.toLowerCase();
  let normalised = arch;
  switch (arch) {
    case "x86_64":
    case "x86-64":
    case "amd64":
      normalised = "amd64";
      if (wantedVariant === "v1") wantedVariant = undefined;
      break;
    case "i386":
    case "i686":
    case "386":
      normalised = "386";
      break;
    case "aarch64":
    case "arm64":
      normalised = "arm64";
      if (wantedVariant === "8" || wantedVariant === "v8" || wantedVariant === "v8.0") wantedVariant = undefined;
      break;
    case "armhf":
      normalised = "arm";
      wantedVariant = "v7";
      break;
    case "armel":
      normalised = "arm";
      wantedVariant = "v6";
      break;
    case "arm":
      if (wantedVariant === undefined || wantedVariant === "" || wantedVariant === "7") wantedVariant = "v7";
      else if (/^[5-8]$/.test(wantedVariant)) wantedVariant = `v${wantedVariant}`;
      break;
    case "ppc64el":
      normalised = "ppc64le";
      break;
  }
  return wantedVariant === undefined || wantedVariant === "" ? { architecture: normalised } : { architecture: normalised, variant: wantedVariant };
}

/** Normalises os (lowercase; `macos` → `darwin`), architecture and variant; other fields are kept. */
export function normalizePlatform(platform: Platform): Platform {
  const { variant: _variant, ...rest } = platform;
  const os = platform.os.toLowerCase();
  return { ...rest, os: os === "macos" ? "darwin" : os, ...normalizeArchitecture(platform.architecture, platform.variant) };
}

const NODE_ARCHITECTURES: Readonly<Record<string, { architecture: string; variant?: string }>> = {
  x64: { architecture: "amd64" },
  ia32: { architecture: "386" },
  arm64: { architecture: "arm64" },
  // Node's prebuilt 32-bit ARM Linux binaries need ARMv7.
  arm: { architecture: "arm", variant: "v7" },
  ppc64: { architecture: "ppc64le" },
  s390x: { architecture: "s390x" },
  riscv64: { architecture: "riscv64" },
  loong64: { architecture: "loong64" },
  mips: { architecture: "mips" },
  mipsel: { architecture: "mipsle" },
};

const NODE_OPERATING_SYSTEMS: Readonly<Record<string, string>> = { win32: "windows", sunos: "solaris" };

/**
 * The platform of the running machine from Node's `process.arch` and `process.platform`,
 * passed in because the core does no I/O. Unknown values pass through unchanged.
 */
export function platformFromNode(arch: string, os: string): Platform {
  const platformOs = NODE_OPERATING_SYSTEMS[os] ?? os;
  // Node says "ppc64" for little-endian Linux too; only AIX runs big-endian ppc64.
  const mapped = arch === "ppc64" && platformOs === "aix" ? { architecture: "ppc64" } : NODE_ARCHITECTURES[arch];
  return normalizePlatform({ os: platformOs, ...(mapped ?? { architecture: arch }) });
}

/**
 * True when an index entry's platform satisfies the wanted one. Architectures compare
 * normalised; a variant is compared only when one is wanted. A wanted os of `linux` also
 * accepts `gardenlinux` entries: Garden Linux boot images are Linux systems that only label
 * themselves apart so container tools skip them (docs/formats.md#one-tag-for-boot-images-and-container-images).
 */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (candidate === undefined) return false;
  const want = normalizePlatform(wanted);
  const have = normalizePlatform(candidate);
  if (want.architecture !== have.architecture) return false;
  if (want.variant !== undefined && want.variant !== have.variant) return false;
  return want.os === have.os || (want.os === "linux" && have.os === GARDENLINUX_OS);
}

/**
 * True when an index entry's Garden Linux `cname` annotation names the flavor: the whole cname
 * (`kvm-gardener_prod-amd64-1443.3-c7a0ac9b`), the flavor with its architecture
 * (`kvm-gardener_prod-amd64`) or the flavor alone (`kvm-gardener_prod`). Anchoring on the architecture keeps `kvm` from also
 * matching `kvm-gardener_prod`. The `feature_set` annotation lists the expanded feature set,
 * which users do not type, so it is not matched.
 */
export function flavorMatches(flavor: string, entry: Descriptor): boolean {
  const cname = entry.annotations?.[GardenLinuxAnnotation.cname];
  if (cname === undefined) return false;
  if (cname === flavor) return true;
  const architecture = entry.annotations?.[GardenLinuxAnnotation.architecture] ?? entry.platform?.architecture;
  if (architecture === undefined) return false;
  const withArchitecture = flavor.endsWith(`-${architecture}`) ? flavor : `${flavor}-${architecture}`;
  return cname === withArchitecture || cname.startsWith(`${withArchitecture}-`);
}

/**
 * True when an index entry looks like a boot image rather than a container image: its os is
 * `gardenlinux`, it carries a Garden Linux `cname`, or its artifactType is a boot config type.
 */
export function isBootImageEntry(entry: Descriptor): boolean {
  return (
    entry.platform?.os.toLowerCase() === GARDENLINUX_OS ||
    entry.annotations?.[GardenLinuxAnnotation.cname] !== undefined ||
    (entry.artifactType !== undefined && isBootConfigMediaType(entry.artifactType))
  );
}

/**
 * Chooses one entry of an index.
 *
 * Entries are filtered by platform (see {@link platformMatches}) and flavor (see
 * {@link flavorMatches}) when given; buildx attestation entries never qualify. When boot-image
 * entries ({@link isBootImageEntry}) and other entries both remain, the boot images win: one
 * tag may hold a `linux/amd64` container image beside a `gardenlinux/amd64` boot image
 * (docs/formats.md#one-tag-for-boot-images-and-container-images), and ociboot fetches boot images. Entries with the same
 * digest count once.
 *
 * @throws OcibootError NOT_FOUND listing what the index offers; AMBIGUOUS listing the
 *   candidates and how to choose (`--platform`, `--flavor`).
 */
export function selectIndexEntry(index: Pick<ImageIndex, "manifests">, criteria: IndexSelection): Descriptor {
  const eligible = index.manifests.filter((entry) => entry.annotations?.[DOCKER_REFERENCE_TYPE] !== ATTESTATION_MANIFEST);
  const { flavor, hostPlatform } = criteria;
  const platform = criteria.platform ?? (flavor === undefined ? hostPlatform : undefined);
  let candidates = eligible.filter(
    (entry) => (platform === undefined || platformMatches(platform, entry.platform)) && (flavor === undefined || flavorMatches(flavor, entry)),
  );
  const bootImages = candidates.filter(isBootImageEntry);
  if (bootImages.length > 0) candidates = bootImages;
  candidates = candidates.filter((entry, position) => candidates.findIndex((other) => other.digest === entry.digest) === position);
  if (candidates.length > 1 && platform === undefined && hostPlatform !== undefined) {
    // A flavor without its architecture (`metal_pxe`) matches every architecture's entry: the host's wins.
    const onHost = candidates.filter((entry) => platformMatches(hostPlatform, entry.platform));
    if (onHost.length > 0) candidates = onHost;
  }

  const wanted = describeCriteria({ ...criteria, ...(platform === undefined ? {} : { platform }) });
  const [only, ...others] = candidates;
  if (only !== undefined && others.length === 0) return only;
  if (only === undefined) {
    const available = eligible.map(describeEntry);
    const offer = available.length === 0 ? "the index lists no manifests" : `available: ${available.join(", ")}`;
    throw new OcibootError("NOT_FOUND", `Cannot select a manifest from the index: nothing matches ${wanted}; ${offer}`, {
      details: { available },
    });
  }
  const choices = candidates.map(describeEntry);
  throw new OcibootError(
    "AMBIGUOUS",
    `Cannot select a manifest from the index: ${choices.length} entries match ${wanted}: ${choices.join(", ")}; ` +
      "choose one with --platform os/arch[/variant] or --flavor <cname>",
    { details: { choices } },
  );
}

function describeCriteria(criteria: IndexSelection): string {
  const parts: string[] = [];
  if (criteria.platform !== undefined) parts.push(`platform ${formatPlatform(normalizePlatform(criteria.platform))}`);
  if (criteria.flavor !== undefined) parts.push(`flavor ${JSON.stringify(criteria.flavor)}`);
  return parts.length === 0 ? "any platform" : parts.join(" and ");
}

function describeEntry(entry: Descriptor): string {
  const platform = entry.platform === undefined ? "no platform" : formatPlatform(entry.platform);
  const cname = entry.annotations?.[GardenLinuxAnnotation.cname];
  return cname === undefined ? `${platform} (${entry.digest.slice(0, 19)})` : `${platform} cname ${cname}`;
}
