import type { OciLayoutStore } from "../content/layout.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { decodeJsonObject, parseManifest } from "../oci/manifest.ts";
import { Limits } from "../oci/mediatypes.ts";
import { resolveLocalImage } from "./store-ops.ts";

/** What `inspect` shows of one image manifest: onmetal-image's `{descriptor, manifest, config}`. */
export interface InspectedManifest {
  descriptor: Descriptor;
  /** The manifest JSON as stored (its own key order), verified against its digest. */
  manifest: Record<string, unknown>;
  /** The config JSON as stored, verified. */
  config: Record<string, unknown>;
}

/** What `inspect` shows of an index: the index itself and each of its manifests. */
export interface InspectedIndex {
  descriptor: Descriptor;
  index: Record<string, unknown>;
  manifests: InspectedManifest[];
}

export type InspectResult = { kind: "manifest"; image: InspectedManifest } | { kind: "index"; image: InspectedIndex };

/** Reads a local image (manifest or index) by name, digest or ID; every blob read is verified. */
export async function inspectImage(store: OciLayoutStore, name: string): Promise<InspectResult> {
  const descriptor = await resolveLocalImage(store, name);
  const bytes = await store.readBlob(descriptor);
  const parsed = parseManifest(bytes);
  if (parsed.kind === "manifest") {
    return { kind: "manifest", image: await inspectManifest(store, descriptor, bytes, parsed.manifest.config) };
  }
  const manifests: InspectedManifest[] = [];
  for (const child of parsed.index.manifests) {
    const childBytes = await store.readBlob(child);
    const childParsed = parseManifest(childBytes);
    if (childParsed.kind !== "manifest") {
      throw new OcibootError("UNSUPPORTED", `Cannot inspect ${name}: nested index ${child.digest} inside an index`);
    }
    manifests.push(await inspectManifest(store, child, childBytes, childParsed.manifest.config));
  }
  return { kind: "index", image: { descriptor, index: decodeJsonObject(bytes, "index"), manifests } };
}

async function inspectManifest(store: OciLayoutStore, descriptor: Descriptor, bytes: Uint8Array, config: Descriptor): Promise<InspectedManifest> {
  const configBytes = await store.readBlob(config, Limits.configBytes);
  return { descriptor, manifest: decodeJsonObject(bytes, "manifest"), config: decodeJsonObject(configBytes, "config") };
}
