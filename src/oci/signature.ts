import { createHash, createPublicKey, type KeyObject, verify, X509Certificate } from "node:crypto";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "./descriptor.ts";
import { parseDigest, sha256DigestOf } from "./digest.ts";
import { decodeJsonObject, type ImageManifest, parseManifest } from "./manifest.ts";

/**
 * cosign's key-based signatures (docs/trust.md): keys, the legacy `sha256-<hex>.sig` manifest and
 * the simple-signing payload. Pure: bytes in, verdicts out.
 */

/** The media type of one cosign signature layer (its blob is the signed payload). */
export const SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";
/** Note the spelling: the signature is a `dev.cosignproject.cosign/…` annotation, the others `dev.sigstore.cosign/…`. */
export const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
export const SIMPLE_SIGNING_TYPE = "cosign container image signature";

/**
 * Caps on a signature manifest: one layer per signer (re-signing appends), so even a busy image
 * has a handful; a manifest that is large or has many layers is hostile or broken.
 */
export const SignatureLimits = {
  manifestBytes: 256 * 1024,
  layers: 64,
  payloadBytes: 64 * 1024,
  signatureBase64Chars: 8 * 1024,
  keyFileBytes: 64 * 1024,
} as const;

export type KeyAlgorithm = "rsa" | "ecdsa-p256" | "ecdsa-p384" | "ed25519";

/** A public key the user trusts, with the fingerprint users compare: sha256 of its SPKI DER. */
export interface TrustedKey {
  key: KeyObject;
  algorithm: KeyAlgorithm;
  /** `sha256:<hex>` of the SubjectPublicKeyInfo DER. */
  fingerprint: string;
  /** Where the key came from (a file name), for messages. */
  source: string;
}

/** The tag cosign's legacy scheme keeps a manifest's signatures under: `sha256-<hex>.sig`. */
export function signatureTagFor(digest: string, suffix: ".sig" | ".att" | ".sbom" = ".sig"): string {
  const { algorithm, hex } = parseDigest(digest);
  return `${algorithm}-${hex}${suffix}`;
}

/** Tags of cosign's tag scheme (signatures, attestations, SBOMs) that belong to a manifest. */
export function cosignTagsFor(digest: string): string[] {
  return [signatureTagFor(digest, ".sig"), signatureTagFor(digest, ".att"), signatureTagFor(digest, ".sbom")];
}

/**
 * Loads a trusted public key from PEM: a `PUBLIC KEY` (cosign.pub) or an X.509 `CERTIFICATE`
 * (Garden Linux publishes its keys as certificates; only the key inside is used: no chain, no
 * validity dates, as cosign does with `--key` on a certificate file).
 *
 * @throws OcibootError USAGE for anything else, naming the source.
 */
export function loadTrustedKey(pem: Uint8Array | string, source: string): TrustedKey {
  const text = typeof pem === "string" ? pem : new TextDecoder().decode(pem);
  if (text.length > SignatureLimits.keyFileBytes) {
    throw new OcibootError("USAGE", `Cannot load key ${source}: larger than ${SignatureLimits.keyFileBytes} bytes`);
  }
  let key: KeyObject;
  try {
    if (text.includes("-----BEGIN CERTIFICATE-----")) key = new X509Certificate(text).publicKey;
    else if (text.includes("-----BEGIN PUBLIC KEY-----") || text.includes("-----BEGIN RSA PUBLIC KEY-----")) key = createPublicKey(text);
    else throw new Error("expected a PEM PUBLIC KEY or CERTIFICATE");
  } catch (error) {
    throw new OcibootError("USAGE", `Cannot load key ${source}: ${(error as Error).message}`, { cause: error });
  }
  return trustedKeyOf(key, source);
}

/** A KeyObject as a trusted key; refuses key types cosign does not sign with. */
export function trustedKeyOf(key: KeyObject, source: string): TrustedKey {
  const algorithm = algorithmOf(key);
  if (algorithm === undefined) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    throw new OcibootError("USAGE", `Cannot load key ${source}: ${key.asymmetricKeyType}${curve ? ` ${curve}` : ""} keys are not supported (RSA, ECDSA P-256/P-384, Ed25519 are)`);
  }
  return { key, algorithm, fingerprint: keyFingerprint(key), source };
}

/** `sha256:<hex>` of a public key's SubjectPublicKeyInfo DER, as `openssl pkey -pubin -outform DER | sha256sum` gives it. */
export function keyFingerprint(key: KeyObject): string {
  const der = key.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

function algorithmOf(key: KeyObject): KeyAlgorithm | undefined {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return "rsa";
    case "ed25519":
      return "ed25519";
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === "prime256v1" || curve === "P-256") return "ecdsa-p256";
      if (curve === "secp384r1" || curve === "P-384") return "ecdsa-p384";
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * True when `signature` is `key`'s signature over exactly `payload` (sigstore's defaults): RSA
 * PKCS#1 v1.5 with SHA-256; ECDSA with SHA-256 (P-384 also SHA-384), DER or raw `r‖s`; pure Ed25519.
 */
export function signatureMatches(key: TrustedKey, payload: Uint8Array, signature: Uint8Array): boolean {
  try {
    switch (key.algorithm) {
      case "ed25519":
        return verify(null, payload, key.key, signature);
      case "rsa":
        return verify("sha256", payload, key.key, signature);
      case "ecdsa-p256":
      case "ecdsa-p384": {
        const hashes = key.algorithm === "ecdsa-p384" ? ["sha256", "sha384"] : ["sha256"];
        const rawLength = key.algorithm === "ecdsa-p384" ? 96 : 64;
        return hashes.some(
          (hash) =>
            verify(hash, payload, { key: key.key, dsaEncoding: "der" }, signature) ||
            (signature.byteLength === rawLength && verify(hash, payload, { key: key.key, dsaEncoding: "ieee-p1363" }, signature)),
        );
      }
    }
  } catch {
    // A malformed signature (bad DER, wrong length) is simply not a match.
    return false;
  }
}

// RFC 4648 §4, padded, as Go's base64.StdEncoding writes it (cosign's signature annotation).
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64 to bytes, or undefined. */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length === 0 || text.length > SignatureLimits.signatureBase64Chars || !BASE64.test(text)) return undefined;
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let position = 0; position < binary.length; position++) bytes[position] = binary.charCodeAt(position);
  return bytes;
}

export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** One signature layer of a `.sig` manifest. */
export interface SignatureLayer {
  /** Position in the manifest, for messages. */
  position: number;
  /** The payload blob's descriptor: its digest is checked against the bytes read. */
  payload: Descriptor;
  /** The decoded signature, or undefined when the annotation is missing or not base64. */
  signature: Uint8Array | undefined;
}

/**
 * Parses a cosign `.sig` manifest, bounded: at most {@link SignatureLimits} bytes and layers;
 * layers of other media types are skipped (cosign writes only simple-signing layers there).
 *
 * @throws OcibootError SIGNATURE when the manifest is over a cap, not a manifest, or has no signature layer.
 */
export function parseSignatureManifest(bytes: Uint8Array, where: string): SignatureLayer[] {
  if (bytes.byteLength > SignatureLimits.manifestBytes) {
    throw new OcibootError("SIGNATURE", `Cannot read signatures at ${where}: the manifest has ${bytes.byteLength} bytes, over the cap of ${SignatureLimits.manifestBytes}`);
  }
  let manifest: ImageManifest;
  try {
    const parsed = parseManifest(bytes);
    if (parsed.kind !== "manifest") throw new Error("an index, not a manifest");
    manifest = parsed.manifest;
  } catch (error) {
    throw new OcibootError("SIGNATURE", `Cannot read signatures at ${where}: ${(error as Error).message}`, { cause: error });
  }
  if (manifest.layers.length > SignatureLimits.layers) {
    throw new OcibootError("SIGNATURE", `Cannot read signatures at ${where}: ${manifest.layers.length} layers, over the cap of ${SignatureLimits.layers}`);
  }
  const layers = manifest.layers.flatMap((payload, position): SignatureLayer[] => {
    if (payload.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) return [];
    const encoded = payload.annotations?.[SIGNATURE_ANNOTATION];
    return [{ position, payload, signature: encoded === undefined ? undefined : decodeBase64(encoded) }];
  });
  if (layers.length === 0) throw new OcibootError("SIGNATURE", `Cannot read signatures at ${where}: no ${SIMPLE_SIGNING_MEDIA_TYPE} layer`);
  return layers;
}

/** Why one signature layer did not verify, in the words users see. */
export type LayerVerdict =
  | { ok: true; key: TrustedKey }
  | { ok: false; reason: "payload-digest" | "payload-too-large" | "bad-signature-encoding" | "another-key" | "payload-json" | "payload-type" | "another-digest"; detail?: string };

/**
 * Checks one signature layer in cosign's order, and nothing is believed before it is checked:
 * the payload hashes to its descriptor → a trusted key signed exactly those bytes → only then
 * is the JSON parsed → `critical.type` → `critical.image.docker-manifest-digest` is `signedDigest`.
 * `docker-reference` is ignored, as cosign does (a mirror keeps a valid signature under another name).
 */
export function checkSignatureLayer(layer: SignatureLayer, payload: Uint8Array, keys: readonly TrustedKey[], signedDigest: string): LayerVerdict {
  if (payload.byteLength > SignatureLimits.payloadBytes) return { ok: false, reason: "payload-too-large" };
  if (payload.byteLength !== layer.payload.size || sha256DigestOf(payload) !== layer.payload.digest) return { ok: false, reason: "payload-digest" };
  if (layer.signature === undefined) return { ok: false, reason: "bad-signature-encoding" };
  const key = keys.find((candidate) => signatureMatches(candidate, payload, layer.signature as Uint8Array));
  if (key === undefined) return { ok: false, reason: "another-key" };
  const claimed = simpleSigningDigest(payload);
  if (claimed.kind === "invalid") return { ok: false, reason: "payload-json", detail: claimed.detail };
  if (claimed.kind === "type") return { ok: false, reason: "payload-type", detail: claimed.type };
  if (claimed.digest !== signedDigest) return { ok: false, reason: "another-digest", detail: claimed.digest };
  return { ok: true, key };
}

type PayloadClaim = { kind: "digest"; digest: string } | { kind: "type"; type: string } | { kind: "invalid"; detail: string };

function simpleSigningDigest(payload: Uint8Array): PayloadClaim {
  let document: Record<string, unknown>;
  try {
    document = decodeJsonObject(payload, "signature payload");
  } catch (error) {
    return { kind: "invalid", detail: (error as Error).message };
  }
  const critical = document["critical"];
  if (typeof critical !== "object" || critical === null || Array.isArray(critical)) return { kind: "invalid", detail: "no critical object" };
  const type = (critical as Record<string, unknown>)["type"];
  if (type !== SIMPLE_SIGNING_TYPE) return { kind: "type", type: String(type) };
  const image = (critical as Record<string, unknown>)["image"];
  const digest = typeof image === "object" && image !== null ? (image as Record<string, unknown>)["docker-manifest-digest"] : undefined;
  if (typeof digest !== "string") return { kind: "invalid", detail: "no critical.image.docker-manifest-digest" };
  return { kind: "digest", digest };
}

/**
 * The simple-signing payload cosign signs for a manifest, byte for byte as cosign (Go) writes
 * it: compact, keys in this order, no trailing newline.
 */
export function simpleSigningPayload(dockerReference: string, digest: string, optional?: Readonly<Record<string, string>>): Uint8Array {
  const document = {
    critical: { identity: { "docker-reference": dockerReference }, image: { "docker-manifest-digest": digest }, type: SIMPLE_SIGNING_TYPE },
    optional: optional === undefined || Object.keys(optional).length === 0 ? null : optional,
  };
  return new TextEncoder().encode(JSON.stringify(document).replace(/[<>&]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`));
}

/** Human words for a layer verdict. */
export function describeVerdict(verdict: Exclude<LayerVerdict, { ok: true }>): string {
  switch (verdict.reason) {
    case "payload-digest":
      return "the payload does not match its digest (tampered)";
    case "payload-too-large":
      return `the payload is over ${SignatureLimits.payloadBytes} bytes`;
    case "bad-signature-encoding":
      return `the ${SIGNATURE_ANNOTATION} annotation is missing or not base64`;
    case "another-key":
      return "signed by another key (or the signature is corrupt)";
    case "payload-json":
      return `the signed payload is not a cosign payload (${verdict.detail ?? ""})`;
    case "payload-type":
      return `the signed payload has critical.type ${JSON.stringify(verdict.detail)}`;
    case "another-digest":
      return `signature names another digest (${verdict.detail ?? ""})`;
  }
}

/** A signature layer to add to a `.sig` manifest: the payload's descriptor and the raw signature. */
export function signatureLayerDescriptor(payload: Uint8Array, signature: Uint8Array): Descriptor {
  return {
    mediaType: SIMPLE_SIGNING_MEDIA_TYPE,
    digest: sha256DigestOf(payload),
    size: payload.byteLength,
    annotations: { [SIGNATURE_ANNOTATION]: encodeBase64(signature) },
  };
}

/**
 * The config cosign writes for a `.sig` manifest (an OCI image config whose `diff_ids` are the
 * payload digests), so that tools treating the signature as an image find a valid one.
 */
export function signatureConfigBytes(layers: readonly Descriptor[]): Uint8Array {
  const config = {
    architecture: "",
    created: "0001-01-01T00:00:00Z",
    history: [{ created: "0001-01-01T00:00:00Z" }],
    os: "",
    rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.digest) },
    config: {},
  };
  return new TextEncoder().encode(JSON.stringify(config));
}

/** A `.sig` manifest over `config` and `layers`, in the field order go-containerregistry writes. */
export function encodeSignatureManifest(config: Descriptor, layers: readonly Descriptor[]): Uint8Array {
  const descriptor = (entry: Descriptor) => ({
    mediaType: entry.mediaType,
    size: entry.size,
    digest: entry.digest,
    ...(entry.annotations !== undefined ? { annotations: entry.annotations } : {}),
  });
  const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: descriptor(config), layers: layers.map(descriptor) };
  return new TextEncoder().encode(JSON.stringify(manifest));
}
