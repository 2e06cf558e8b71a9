import { createHash } from "node:crypto";
import type { Descriptor } from "./descriptor.ts";
import { parseDigest } from "./digest.ts";
import { decodeJsonObject } from "./manifest.ts";
import { EMPTY_DESCRIPTOR } from "./artifact.ts";
import { MediaType } from "./mediatypes.ts";
import { decodeBase64, encodeBase64, signatureMatches, type TrustedKey } from "./signature.ts";

/**
 * Sigstore bundles v0.3 as cosign v3 attaches them (an OCI 1.1 referrer of the signed manifest;
 * docs/trust.md): a DSSE envelope over an in-toto Statement whose subject is the signed digest.
 * Key-based only: the signature is checked with a trusted key; no certificate, log or timestamp.
 */
export const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1";
/** A bundle with a DSSE envelope and verification material is a few KiB. */
export const MAX_BUNDLE_BYTES = 256 * 1024;

/** DSSE's pre-authentication encoding: what is signed, never the payload alone. */
export function preAuthenticationEncoding(payloadType: string, payload: Uint8Array): Uint8Array {
  const encoder = new TextEncoder();
  const type = encoder.encode(payloadType);
  const head = encoder.encode(`DSSEv1 ${type.byteLength} ${payloadType} ${payload.byteLength} `);
  const out = new Uint8Array(head.byteLength + payload.byteLength);
  out.set(head, 0);
  out.set(payload, head.byteLength);
  return out;
}

export type BundleVerdict =
  | { ok: true; key: TrustedKey }
  | { ok: false; reason: string };

/**
 * Checks a bundle against the trusted keys and the digest that was resolved: the envelope's
 * signature over PAE(payloadType, payload) first; only a signed statement is parsed, and one of
 * its subjects must name `signedDigest`.
 */
export function checkBundle(bundleBytes: Uint8Array, keys: readonly TrustedKey[], signedDigest: string): BundleVerdict {
  let envelope: Record<string, unknown>;
  try {
    const bundle = decodeJsonObject(bundleBytes, "bundle");
    const dsse = bundle["dsseEnvelope"];
    if (typeof dsse !== "object" || dsse === null || Array.isArray(dsse)) return { ok: false, reason: "the bundle holds no DSSE envelope (a message signature is not supported)" };
    envelope = dsse as Record<string, unknown>;
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  const payloadType = envelope["payloadType"];
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) return { ok: false, reason: `the envelope's payloadType is ${JSON.stringify(payloadType)}` };
  const payload = typeof envelope["payload"] === "string" ? decodeBase64Any(envelope["payload"]) : undefined;
  if (payload === undefined) return { ok: false, reason: "the envelope's payload is not base64" };
  const pae = preAuthenticationEncoding(payloadType, payload);
  const signatures = Array.isArray(envelope["signatures"]) ? envelope["signatures"].slice(0, 16) : [];
  let key: TrustedKey | undefined;
  for (const entry of signatures) {
    const sig = typeof entry === "object" && entry !== null ? (entry as Record<string, unknown>)["sig"] : undefined;
    const bytes = typeof sig === "string" ? decodeBase64(sig) : undefined;
    if (bytes === undefined) continue;
    key = keys.find((candidate) => signatureMatches(candidate, pae, bytes));
    if (key) break;
  }
  if (key === undefined) return { ok: false, reason: "signed by another key (or the signature is corrupt)" };
  const problem = statementProblem(payload, signedDigest);
  return problem === undefined ? { ok: true, key } : { ok: false, reason: problem };
}

/**
 * Why a signed in-toto statement does not vouch for `signedDigest` (undefined when it does): it must
 * be a Statement v1 with a subject whose sha256 is the digest. Called only on verified bytes.
 */
export function statementProblem(payload: Uint8Array, signedDigest: string): string | undefined {
  let statement: Record<string, unknown>;
  try {
    statement = decodeJsonObject(payload, "in-toto statement");
  } catch (error) {
    return (error as Error).message;
  }
  if (statement["_type"] !== STATEMENT_TYPE) return `the statement's _type is ${JSON.stringify(statement["_type"])}`;
  const { hex } = parseDigest(signedDigest);
  const subjects = Array.isArray(statement["subject"]) ? statement["subject"] : [];
  const named = subjects.map((subject) => {
    const digest = typeof subject === "object" && subject !== null ? (subject as Record<string, unknown>)["digest"] : undefined;
    return typeof digest === "object" && digest !== null ? (digest as Record<string, unknown>)["sha256"] : undefined;
  });
  if (!named.includes(hex)) return `signature names another digest (statement subject ${named.map((value) => `sha256:${String(value)}`).join(", ") || "none"})`;
  return undefined;
}

/** Base64 of any length (DSSE payloads are larger than a signature). */
function decodeBase64Any(text: string): Uint8Array | undefined {
  if (text.length > MAX_BUNDLE_BYTES * 2 || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return undefined;
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let position = 0; position < binary.length; position++) bytes[position] = binary.charCodeAt(position);
  return bytes;
}

/** The in-toto statement cosign v3 signs for a manifest. */
export function cosignStatement(name: string, digest: string): Uint8Array {
  const { hex } = parseDigest(digest);
  return new TextEncoder().encode(
    JSON.stringify({ _type: STATEMENT_TYPE, subject: [{ name, digest: { sha256: hex } }], predicateType: COSIGN_SIGN_PREDICATE, predicate: {} }),
  );
}

/** A key-based bundle v0.3: the envelope, and the key's hint (base64 of the sha256 of its SPKI DER). */
export function encodeKeyBundle(statement: Uint8Array, signature: Uint8Array, key: TrustedKey): Uint8Array {
  const spki = key.key.export({ type: "spki", format: "der" });
  const bundle = {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint: createHash("sha256").update(spki).digest("base64") } },
    dsseEnvelope: { payload: encodeBase64(statement), payloadType: IN_TOTO_PAYLOAD_TYPE, signatures: [{ sig: encodeBase64(signature) }] },
  };
  return new TextEncoder().encode(JSON.stringify(bundle));
}

/** The referrer manifest that carries a bundle, as cosign v3 writes it. */
export function encodeBundleManifest(bundle: Descriptor, subject: Descriptor): Uint8Array {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: BUNDLE_MEDIA_TYPE,
    config: { mediaType: EMPTY_DESCRIPTOR.mediaType, digest: EMPTY_DESCRIPTOR.digest, size: EMPTY_DESCRIPTOR.size },
    layers: [{ mediaType: BUNDLE_MEDIA_TYPE, digest: bundle.digest, size: bundle.size }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { "dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE },
  };
  return new TextEncoder().encode(JSON.stringify(manifest));
}
