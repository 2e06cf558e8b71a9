import { join } from "node:path";
import { readBoundedFile, writeFileAtomically } from "../content/fs-util.ts";
import { MemoryStore } from "../content/memory.ts";
import type { ReadableStore, ReferrerLister } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { decodeJsonObject } from "../oci/manifest.ts";
import { parseDescriptor } from "../oci/descriptor.ts";
import { encodeBase64 } from "../oci/signature.ts";
import { readManifestBytes } from "./graph-walk.ts";
import type { ResolvedManifest } from "./resolve.ts";
import type { SignatureMaterial } from "./signature.ts";

/**
 * The signature material `fetch --key` keeps beside the boot files, so the folder can be checked
 * again with no registry (docs/trust.md): one JSON file (one write, one fsync) holding the `.sig`
 * manifest and its payloads (or a bundle's referrer and bundle) and the index the manifest was chosen
 * from; the image config is in fetch's own record (`ociboot-fetch.json`). Every blob in it is checked
 * against its digest when read back.
 */
export const SIGNATURES_FILE = "signatures.json";
const MATERIAL_TYPE = "application/vnd.ociboot.signature-material.v1+json";
/** The `.sig` manifest and its payloads are capped; an index may be 4 MiB. */
const MAX_MATERIAL_FILE_BYTES = 16 * 1024 * 1024;

interface MaterialFile {
  mediaType: typeof MATERIAL_TYPE;
  /** The tag a `.sig` manifest was found under, and its descriptor (or a bundle's referrer manifest). */
  tag?: string;
  signature: Descriptor;
  /** A bundle's referrer manifest (with its artifactType), found again as a referrer of its subject. */
  referrers?: Descriptor[];
  /** The index whose entry selected the manifest, when there was one. */
  index?: Descriptor;
  /** Every blob by digest, base64. */
  blobs: Record<string, string>;
}

/** Saves verified signature material (and what offline checks need besides) as `file`. */
export async function saveSignatureMaterial(
  source: ReadableStore,
  file: string,
  material: SignatureMaterial,
  resolved: ResolvedManifest,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const { signal } = options;
  const blobs: Record<string, string> = {};
  const keep = (digest: string, bytes: Uint8Array) => void (blobs[digest] = encodeBase64(bytes));
  keep(material.manifest.descriptor.digest, material.manifest.bytes);
  for (const payload of material.payloads) keep(payload.descriptor.digest, payload.bytes);
  const index = resolved.indexes.at(-1);
  const reads: Array<Promise<void>> = [];
  if (index !== undefined) reads.push(readManifestBytes(source, index, signal).then((bytes) => keep(index.digest, bytes)));
  await Promise.all(reads);
  const document: MaterialFile = { mediaType: MATERIAL_TYPE, signature: material.manifest.descriptor, blobs };
  if (material.tag !== undefined) document.tag = material.tag;
  if (material.referrer !== undefined) document.referrers = [material.referrer];
  if (index !== undefined) document.index = { mediaType: index.mediaType, digest: index.digest, size: index.size };
  await writeFileAtomically(file, new TextEncoder().encode(`${JSON.stringify(document)}\n`));
}

/** The saved material as a read-only store; every read is verified against the digest asked for. */
function materialStore(document: MaterialFile, description: string): { store: ReadableStore & ReferrerLister; index?: Descriptor } {
  const memory = new MemoryStore();
  for (const data of Object.values(document.blobs)) {
    const bytes = decodeBase64Unbounded(data);
    if (bytes !== undefined) memory.add("application/octet-stream", bytes);
  }
  const store: ReadableStore & ReferrerLister = {
    description,
    referrers: async () => document.referrers ?? [],
    resolve: async (reference) => {
      if (document.tag !== undefined && reference === document.tag) return document.signature;
      if (reference === INDEX_TAG && document.index !== undefined) return document.index;
      throw new OcibootError("NOT_FOUND", `Cannot resolve ${reference}: not in ${description}`);
    },
    fetch: (descriptor, options) => memory.fetch(descriptor, options),
    exists: (descriptor) => memory.exists(descriptor),
  };
  return document.index !== undefined ? { store, index: document.index } : { store };
}

const INDEX_TAG = "index";

function decodeBase64Unbounded(text: string): Uint8Array | undefined {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** The signature material saved in a fetched folder, as a read-only store (an empty one when there is none). */
export async function readMaterial(directory: string): Promise<{ store: ReadableStore & ReferrerLister; index?: Descriptor }> {
  const path = join(directory, SIGNATURES_FILE);
  const bytes = await readBoundedFile(path, MAX_MATERIAL_FILE_BYTES);
  const empty: MaterialFile = { mediaType: MATERIAL_TYPE, signature: { mediaType: "", digest: "" as Descriptor["digest"], size: 0 }, blobs: {} };
  if (bytes === undefined) return materialStore(empty, path);
  let document: MaterialFile;
  try {
    const parsed = decodeJsonObject(bytes, SIGNATURES_FILE);
    const signature = parseDescriptor(parsed["signature"], "signature");
    const index = parsed["index"] === undefined ? undefined : parseDescriptor(parsed["index"], "index");
    const blobs = parsed["blobs"];
    const referrers = Array.isArray(parsed["referrers"]) ? parsed["referrers"].slice(0, 16).map((entry, position) => parseDescriptor(entry, `referrers[${position}]`)) : undefined;
    if (typeof blobs !== "object" || blobs === null || Array.isArray(blobs)) throw new Error("no blobs");
    document = { mediaType: MATERIAL_TYPE, signature, blobs: blobs as Record<string, string>, ...(index ? { index } : {}), ...(referrers ? { referrers } : {}) };
    if (typeof parsed["tag"] === "string") document.tag = parsed["tag"];
  } catch (error) {
    throw new OcibootError("SIGNATURE", `Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  return materialStore(document, path);
}
