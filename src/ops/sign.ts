import { sign } from "node:crypto";
import type { ReadableStore, WritableStore } from "../content/store.ts";
import { readVerified } from "../content/verify.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { sha256DigestOf } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { MediaType } from "../oci/mediatypes.ts";
import {
  encodeSignatureManifest,
  parseSignatureManifest,
  SIGNATURE_ANNOTATION,
  signatureConfigBytes,
  signatureLayerDescriptor,
  SignatureLimits,
  signatureTagFor,
  simpleSigningPayload,
} from "../oci/signature.ts";
import type { SigningKey } from "./signing-key.ts";
import { EMPTY_DESCRIPTOR, EMPTY_JSON_BYTES } from "../oci/artifact.ts";
import { BUNDLE_MEDIA_TYPE, cosignStatement, encodeBundleManifest, encodeKeyBundle, IN_TOTO_PAYLOAD_TYPE, preAuthenticationEncoding } from "../oci/bundle.ts";

export interface SignImageOptions {
  /** `critical.identity.docker-reference` of the payload: the repository, as cosign writes it. */
  dockerReference: string;
  /** cosign's `-a key=value` claims, in the payload's `optional`. */
  annotations?: Record<string, string>;
  /** In a layout, a `.sig` copied in may be tagged under the image's name (`NAME:sha256-<hex>.sig`). */
  name?: string;
  signal?: AbortSignal;
}

export interface SignReport {
  digest: string;
  /** Where the signature went: `sha256-<hex>.sig` (or the name it was found under); for a bundle, the referrer's digest. */
  tag: string;
  fingerprint: string;
  /** Layers of the `.sig` manifest now (one per signature; others' kept). */
  layers: number;
  /** False when this very signature was already there. */
  added: boolean;
}

/**
 * Signs the manifest `reference` names with cosign's legacy scheme: the simple-signing payload
 * for its digest, signed, appended as a layer to the `sha256-<hex>.sig` manifest (a new one when
 * there is none). Layers of other signers are kept as they are; blobs go up before the manifest
 * and the manifest before the tag, so a reader never sees a signature whose payload is missing.
 */
export async function signImage(store: ReadableStore & WritableStore, reference: string, key: SigningKey, options: SignImageOptions): Promise<SignReport> {
  const resolved = await store.resolve(reference);
  const digest = resolved.digest;
  const payload = simpleSigningPayload(options.dockerReference, digest, options.annotations);
  const layer = signatureLayerDescriptor(payload, signPayload(key, payload));
  const baseTag = signatureTagFor(digest);
  const existing = await existingSignature(store, [baseTag, ...(options.name !== undefined ? [`${options.name}:${baseTag}`] : [])], options.signal);
  const tag = existing?.tag ?? baseTag;
  const layers = existing?.layers ?? [];
  const already = layers.some(
    (other) => other.digest === layer.digest && other.annotations?.[SIGNATURE_ANNOTATION] === layer.annotations?.[SIGNATURE_ANNOTATION],
  );
  if (!already) layers.push(layer);
  if (layers.length > SignatureLimits.layers) {
    throw new OcibootError("SIGNATURE", `Cannot sign ${digest}: ${tag} already holds ${layers.length - 1} signatures, the most ociboot reads`);
  }
  const signal = options.signal ? { signal: options.signal } : {};
  await store.push({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }, bytesStream(payload), signal);
  const configBytes = signatureConfigBytes(layers);
  const config: Descriptor = { mediaType: MediaType.ociConfig, digest: sha256DigestOf(configBytes), size: configBytes.byteLength };
  await store.push(config, bytesStream(configBytes), signal);
  const manifestBytes = encodeSignatureManifest(config, layers);
  const manifest: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256DigestOf(manifestBytes), size: manifestBytes.byteLength };
  await store.push(manifest, bytesStream(manifestBytes), signal);
  await store.tag(manifest, tag);
  return { digest, tag, fingerprint: key.publicKey.fingerprint, layers: layers.length, added: !already };
}

/**
 * Signs the manifest `reference` names as cosign v3 does by default: a Sigstore bundle v0.3 (a
 * DSSE envelope over an in-toto statement naming the digest, signed with the key; no log, no
 * certificate) in an OCI 1.1 artifact whose `subject` is the manifest. A registry without the
 * referrers API lists it in the `sha256-<hex>` fallback index; a layout as an untagged entry.
 */
export async function signImageBundle(store: ReadableStore & WritableStore, reference: string, key: SigningKey, options: SignImageOptions): Promise<SignReport> {
  const resolved = await store.resolve(reference);
  const subject: Descriptor = { mediaType: resolved.mediaType, digest: resolved.digest, size: resolved.size };
  const statement = cosignStatement(options.dockerReference, subject.digest);
  const bundleBytes = encodeKeyBundle(statement, signPayload(key, preAuthenticationEncoding(IN_TOTO_PAYLOAD_TYPE, statement)), key.publicKey);
  const bundle: Descriptor = { mediaType: BUNDLE_MEDIA_TYPE, digest: sha256DigestOf(bundleBytes), size: bundleBytes.byteLength };
  const signal = options.signal ? { signal: options.signal } : {};
  await store.push(bundle, bytesStream(bundleBytes), signal);
  await store.push({ mediaType: EMPTY_DESCRIPTOR.mediaType, digest: EMPTY_DESCRIPTOR.digest, size: EMPTY_DESCRIPTOR.size }, bytesStream(EMPTY_JSON_BYTES), signal);
  const manifestBytes = encodeBundleManifest(bundle, subject);
  const manifest: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256DigestOf(manifestBytes), size: manifestBytes.byteLength, artifactType: BUNDLE_MEDIA_TYPE };
  await store.push(manifest, bytesStream(manifestBytes), signal);
  return { digest: subject.digest, tag: manifest.digest, fingerprint: key.publicKey.fingerprint, layers: 1, added: true };
}

async function existingSignature(store: ReadableStore, names: readonly string[], signal: AbortSignal | undefined): Promise<{ tag: string; layers: Descriptor[] } | undefined> {
  for (const name of names) {
    let descriptor: Descriptor;
    try {
      descriptor = await store.resolve(name);
    } catch (error) {
      if (isOcibootError(error) && ["NOT_FOUND", "INVALID_REFERENCE", "USAGE"].includes(error.code)) continue;
      throw error;
    }
    const content = await store.fetch(descriptor, signal ? { signal } : {});
    const bytes = await readVerified(content.stream, descriptor, SignatureLimits.manifestBytes);
    // Checked against the caps first; then every layer is kept, whatever its type.
    parseSignatureManifest(bytes, `${store.description}:${name}`);
    const parsed = parseManifest(bytes, descriptor.mediaType);
    return parsed.kind === "manifest" ? { tag: name, layers: [...parsed.manifest.layers] } : undefined;
  }
  return undefined;
}

function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new Blob([bytes]).stream();
}

/** Signs bytes as cosign does: RSA PKCS#1 v1.5 / ECDSA DER over SHA-256, Ed25519 pure. */
export function signPayload(key: SigningKey, payload: Uint8Array): Uint8Array {
  return key.publicKey.algorithm === "ed25519" ? sign(null, payload, key.key) : sign("sha256", payload, { key: key.key, dsaEncoding: "der" });
}
