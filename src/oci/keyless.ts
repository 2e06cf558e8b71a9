import { bundleFromJSON, type Bundle } from "@sigstore/bundle";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { toSignedEntity, toTrustMaterial, type TrustMaterial, Verifier } from "@sigstore/verify";
import { OcibootError } from "../errors.ts";
import { IN_TOTO_PAYLOAD_TYPE, statementProblem } from "./bundle.ts";
import { decodeJsonObject } from "./manifest.ts";
import { fillVerifyDigestDefault } from "./node-verify-default.ts";
import { keyFingerprint } from "./signature.ts";

/**
 * Keyless (Fulcio certificate) Sigstore bundles, verified offline against a `trusted_root.json`
 * (docs/keyless.md). `@sigstore/verify` checks the certificate chain to a Fulcio CA of the trusted
 * root, the SCTs against its CT logs, the transparency-log entry (inclusion proof or signed entry
 * timestamp) and RFC 3161 timestamps against its logs and TSAs, and the envelope's signature with
 * the certificate's key; the identity, the issuer and the signed digest are compared here.
 * Pure: bytes in, verdicts out.
 */

/** A trusted root lists a few CAs, logs and TSAs; the public-good one is about 10 KiB. */
export const MAX_TRUSTED_ROOT_BYTES = 1024 * 1024;

/** Who must have signed: the certificate's SAN (exactly, or matching a whole-string pattern) and OIDC issuer. */
export interface KeylessPolicy {
  identity?: string;
  identityPattern?: RegExp;
  issuer: string;
}

/** A trusted root and the identity it must vouch for: what `--trusted-root` and `--certificate-*` ask. */
export interface KeylessTrust {
  policy: KeylessPolicy;
  /** The trusted root file, for messages. */
  source: string;
  material: TrustMaterial;
}

export type KeylessVerdict =
  | { ok: true; identity: string; issuer: string; fingerprint: string }
  | { ok: false; reason: string };

/**
 * Loads a `trusted_root.json` (Sigstore's TrustedRoot, as `cosign verify --trusted-root` reads it).
 *
 * @throws OcibootError USAGE when it is not one, naming the source.
 */
export function loadTrustedRoot(bytes: Uint8Array, source: string, policy: KeylessPolicy): KeylessTrust {
  fillVerifyDigestDefault();
  try {
    if (bytes.byteLength > MAX_TRUSTED_ROOT_BYTES) throw new Error(`larger than ${MAX_TRUSTED_ROOT_BYTES} bytes`);
    const document = decodeJsonObject(bytes, "trusted root");
    const mediaType = document["mediaType"];
    if (typeof mediaType !== "string" || !mediaType.startsWith("application/vnd.dev.sigstore.trustedroot")) {
      throw new Error(`mediaType is ${JSON.stringify(mediaType)}, not a Sigstore trusted root`);
    }
    const root = TrustedRoot.fromJSON(document);
    if (root.certificateAuthorities.length === 0) throw new Error("it lists no certificate authority (Fulcio)");
    return { policy, source, material: toTrustMaterial(root) };
  } catch (error) {
    throw new OcibootError("USAGE", `Cannot load trusted root ${source}: ${(error as Error).message}`, { cause: error });
  }
}

/** True when the bundle's verification material is a certificate (a keyless signature), not a key hint. */
export function isCertificateBundle(bundleBytes: Uint8Array): boolean {
  try {
    const material = decodeJsonObject(bundleBytes, "bundle")["verificationMaterial"];
    return typeof material === "object" && material !== null && ("certificate" in material || "x509CertificateChain" in material);
  } catch {
    return false;
  }
}

/**
 * Checks a keyless bundle for `signedDigest`: the Sigstore checks above, then the certificate's
 * identity and issuer against the policy, then the DSSE statement's subject against the digest.
 * Message-signature bundles are refused: they sign a blob, and cosign signs images with DSSE.
 */
export function checkKeylessBundle(bundleBytes: Uint8Array, trust: KeylessTrust, signedDigest: string): KeylessVerdict {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(decodeJsonObject(bundleBytes, "bundle"));
  } catch (error) {
    return { ok: false, reason: `not a valid Sigstore bundle: ${(error as Error).message}` };
  }
  if (bundle.content.$case !== "dsseEnvelope") return { ok: false, reason: "a message-signature bundle (signs a blob; cosign signs images with a DSSE envelope)" };
  const materialCase = bundle.verificationMaterial.content.$case;
  if (materialCase !== "certificate" && materialCase !== "x509CertificateChain") return { ok: false, reason: "a key-based bundle (no certificate)" };
  let signer;
  try {
    signer = new Verifier(trust.material).verify(toSignedEntity(bundle));
  } catch (error) {
    const { code, cause } = error as { code?: unknown; cause?: unknown };
    const detail = cause instanceof Error ? `: ${cause.message}` : "";
    return { ok: false, reason: `${typeof code === "string" ? `${code}: ` : ""}${(error as Error).message}${detail} (against ${trust.source})` };
  }
  const identity = signer.identity?.subjectAlternativeName ?? "";
  const issuer = signer.identity?.extensions?.issuer ?? "";
  const seen = `certificate identity ${JSON.stringify(identity)}, issuer ${JSON.stringify(issuer)}`;
  const { policy } = trust;
  const identityOk = policy.identity !== undefined ? identity === policy.identity : policy.identityPattern?.test(identity) === true;
  if (!identityOk) {
    const expected = policy.identity !== undefined ? `is not ${JSON.stringify(policy.identity)}` : `does not match /${policy.identityPattern?.source}/`;
    return { ok: false, reason: `${seen}: the identity ${expected}` };
  }
  if (issuer !== policy.issuer) return { ok: false, reason: `${seen}: the issuer is not ${JSON.stringify(policy.issuer)}` };
  const envelope = bundle.content.dsseEnvelope;
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) return { ok: false, reason: `the envelope's payloadType is ${JSON.stringify(envelope.payloadType)}` };
  const problem = statementProblem(new Uint8Array(envelope.payload), signedDigest);
  if (problem !== undefined) return { ok: false, reason: `${seen}: ${problem}` };
  return { ok: true, identity, issuer, fingerprint: keyFingerprint(signer.key) };
}

/**
 * A `--certificate-identity-regexp` as a pattern over the whole SAN: cosign's Go regexp matches
 * anywhere in the string, so `^…$` is forced here, lest `@example.com` accept `x@example.com.evil`.
 *
 * @throws OcibootError USAGE when it does not compile.
 */
export function identityPattern(text: string): RegExp {
  try {
    return new RegExp(`^(?:${text})$`, "u");
  } catch (error) {
    throw new OcibootError("USAGE", `Cannot use --certificate-identity-regexp ${JSON.stringify(text)}: ${(error as Error).message}`, { cause: error });
  }
}
