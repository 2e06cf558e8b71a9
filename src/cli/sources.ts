import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { OciLayoutStore } from "../content/layout.ts";
import { refNameOf } from "../content/layout-index.ts";
import type { ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Platform } from "../oci/descriptor.ts";
import { subjectOf } from "../oci/artifact.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType } from "../oci/mediatypes.ts";
import { platformFromNode } from "../oci/platform.ts";
import { importArchive } from "../ops/import.ts";
import { parseReference, referenceTarget } from "../oci/reference.ts";
import type { CliContext } from "./context.ts";
import type { GlobalOptions } from "./global-options.ts";
import { resolvePath, temporaryBase } from "./paths.ts";
import { loadRegistryClient } from "./registry-loader.ts";
import { registryOptionsFrom } from "./registry-options.ts";

/** Where content comes from, as written on the command line (skopeo's transport prefixes). */
export type Location =
  | { kind: "registry"; reference: string }
  | { kind: "layout"; path: string; reference?: string }
  | { kind: "archive"; path: string; reference?: string };

/** A store opened from a location, with the reference to resolve in it. */
export interface OpenedSource {
  store: ReadableStore;
  reference: string;
  close(): Promise<void>;
}

/**
 * Parses `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` or a registry reference. As with skopeo, the
 * path ends at the first colon, so REF may itself contain colons (`oci:./store:ghcr.io/a/b:1.0`).
 */
export function parseLocation(text: string): Location {
  for (const [prefix, kind] of [["oci:", "layout"], ["oci-archive:", "archive"]] as const) {
    if (!text.startsWith(prefix)) continue;
    const rest = text.slice(prefix.length);
    const colon = rest.indexOf(":");
    const path = colon < 0 ? rest : rest.slice(0, colon);
    const reference = colon < 0 ? undefined : rest.slice(colon + 1);
    if (path.length === 0) throw new OcibootError("USAGE", `Cannot use ${text}: the ${prefix} location needs a path`);
    return reference ? { kind, path, reference } : { kind, path };
  }
  if (text.startsWith("docker://")) return { kind: "registry", reference: text.slice("docker://".length) };
  return { kind: "registry", reference: text };
}

/** Opens the store a location names. */
export async function openSource(text: string, global: GlobalOptions, context: CliContext): Promise<OpenedSource> {
  const location = parseLocation(text);
  switch (location.kind) {
    case "layout": {
      const store = new OciLayoutStore(resolvePath(context, location.path));
      return { store, reference: location.reference ?? (await onlyImageIn(store, text)), close: async () => undefined };
    }
    case "archive": {
      const { store, close } = await openArchive(location.path, context);
      try {
        return { store, reference: location.reference ?? (await onlyImageIn(store, text)), close };
      } catch (error) {
        await close();
        throw error;
      }
    }
    case "registry": {
      const reference = parseReference(location.reference);
      const options = await registryOptionsFrom(global, context);
      const { closeRegistryConnections, openRepository } = await loadRegistryClient();
      return {
        store: openRepository(reference, options),
        reference: referenceTarget(reference),
        close: () => closeRegistryConnections(options),
      };
    }
  }
}

/**
 * An archive is read in one streaming pass into a temporary store (every blob verified on the
 * way in), which is removed again on close. `$OCIBOOT_TMPDIR` or `$TMPDIR` says where it goes.
 */
export async function openArchive(path: string, context: CliContext): Promise<{ store: OciLayoutStore; close(): Promise<void> }> {
  const directory = await mkdtemp(join(temporaryBase(context), "ociboot-archive-"));
  const close = () => rm(directory, { recursive: true, force: true });
  try {
    const store = new OciLayoutStore(directory);
    await importArchive(store, resolvePath(context, path));
    return { store, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * With no REF, a layout holding exactly one image means that image. Its referrers (entries whose
 * `subject` is another entry, as `copy --with-referrers` and `oras attach` add them) come along
 * and do not count as images of their own.
 */
async function onlyImageIn(store: OciLayoutStore, text: string): Promise<string> {
  const digests = await withoutReferrers(store, [...new Set((await store.entries()).map((entry) => entry.digest))]);
  if (digests.length === 1) return digests[0] as string;
  if (digests.length === 0) throw new OcibootError("NOT_FOUND", `Cannot use ${text}: the store holds no image`);
  throw new OcibootError("AMBIGUOUS", `Cannot use ${text}: the store holds ${digests.length} images; name one as ${text}:REF`);
}

/** cosign's tag scheme (`sha256-<hex>.sig`, `.att`, `.sbom`, or a full reference ending so): not images of their own. */
const COSIGN_TAG = /(?:^|:)sha256-[0-9a-f]{64}\.(?:sig|att|sbom)$/;

async function withoutReferrers(store: OciLayoutStore, digests: string[]): Promise<string[]> {
  if (digests.length < 2) return digests;
  const listed = new Set(digests);
  const images: string[] = [];
  for (const entry of await store.entries()) {
    if (COSIGN_TAG.test(refNameOf(entry) ?? "")) continue;
    if (!listed.delete(entry.digest)) continue;
    const isManifest = isManifestMediaType(entry.mediaType) || isIndexMediaType(entry.mediaType);
    const subject = isManifest ? subjectOf(parseManifest(await store.readBlob(entry), entry.mediaType)) : undefined;
    if (subject === undefined || !digests.includes(subject.digest)) images.push(entry.digest);
  }
  return images;
}

/**
 * This machine's architecture, the default choice from a multi-arch index. The os is always
 * linux: a boot image is fetched for the machine it will boot, even from a Mac.
 */
export function defaultPlatform(): Platform {
  return platformFromNode(process.arch, "linux");
}
