import { isReferrerLister, type ReadableStore } from "../content/store.ts";
import { BUNDLE_MEDIA_TYPE, checkBundle, MAX_BUNDLE_BYTES } from "../oci/bundle.ts";
import { readVerified } from "../content/verify.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseManifest } from "../oci/manifest.ts";
import { checkSignedAnnotations, type SignedSelection } from "../oci/signed-annotations.ts";
import {
  checkSignatureLayer,
  describeVerdict,
  parseSignatureManifest,
  type SignatureLayer,
  SignatureLimits,
  signatureTagFor,
  type TrustedKey,
} from "../oci/signature.ts";
import { isIndexMediaType, isManifestMediaType, MediaType } from "../oci/mediatypes.ts";
import { isDigest } from "../oci/digest.ts";
import type { KeylessTrust } from "../oci/keyless.ts";
import { readManifestBytes } from "./graph-walk.ts";
import { type ManifestSelection, resolveManifest, type ResolvedManifest } from "./resolve.ts";

/** Who signed what, once a signature verified (`--json` reports it). */
export interface VerifiedSigner {
  /** `sha256:<hex>` of the signing key's SPKI DER (for a keyless signature: the certificate's key). */
  fingerprint: string;
  /** The key file given with `--key` (for a keyless signature: the `--trusted-root` file). */
  key: string;
  /** A keyless signature's certificate identity (its SAN) and OIDC issuer, as verified. */
  identity?: string;
  issuer?: string;
  /** The digest the signature is over: the manifest, or the index where that is what was signed. */
  signedDigest: string;
  /** Where the signature was found (`<store>:sha256-<hex>.sig`). */
  signature: string;
  /** The position of the verifying layer in the signature manifest. */
  layer: number;
}

/** The signature material that verified, kept to re-check offline. */
export interface SignatureMaterial {
  /** The tag a `.sig` manifest was found under (`sha256-<hex>.sig`). */
  tag?: string;
  /** A bundle's referrer manifest, as its subject's referrers list it. */
  referrer?: Descriptor;
  manifest: { descriptor: Descriptor; bytes: Uint8Array };
  payloads: Array<{ descriptor: Descriptor; bytes: Uint8Array }>;
}

export interface SignatureVerification {
  signer: VerifiedSigner;
  material: SignatureMaterial;
}

/**
 * What is trusted: a signature by one of these keys, or (keyless) a bundle whose certificate the
 * trusted root vouches for, issued to the given identity. Either one is enough (docs/keyless.md).
 */
export interface TrustAnchors {
  keys: readonly TrustedKey[];
  keyless?: KeylessTrust;
}

/** What `--key` (and the keyless options) ask of an operation. */
export interface TrustOptions extends TrustAnchors {
  /** See {@link SignatureLookupOptions.name}. */
  name?: string;
}

export interface SignatureLookupOptions {
  /**
   * Also look for `<name>:sha256-<hex>.sig`: in a layout, tags are full references
   * (`org.opencontainers.image.ref.name`), so a signature copied there with its image carries the image's name.
   */
  name?: string;
  signal?: AbortSignal;
}

/** What was tried for one signed digest, for the message when nothing verified. */
interface Attempt {
  digest: string;
  where: string;
  found: string;
}

/**
 * Finds and checks cosign signatures of `digest` in a store, by cosign's legacy tag
 * `sha256-<hex>.sig`. Any one layer that a trusted key verified is enough.
 *
 * @throws OcibootError SIGNATURE saying what was tried and found.
 */
export async function verifyDigestSignature(
  store: ReadableStore,
  digest: string,
  trust: TrustAnchors,
  options: SignatureLookupOptions = {},
): Promise<SignatureVerification> {
  const attempts: Attempt[] = [];
  const verified = await tryDigest(store, digest, trust, options, attempts);
  if (verified) return verified;
  throw signatureError(digest, trust, attempts);
}

/**
 * Checks that a trusted key signed what `resolved` names: the manifest, or else an index walked
 * through to reach it (cosign signs an index when asked to sign its digest). When the manifest
 * itself was signed but came through an unsigned index (Garden Linux signs only its flavor
 * manifests), its own annotations must agree with the index entry and the user's selection, so
 * that a mirror cannot point the entry at another validly signed manifest.
 *
 * @throws OcibootError SIGNATURE saying what was tried and found.
 */
export async function verifyResolvedSignature(
  store: ReadableStore,
  resolved: ResolvedManifest,
  trust: TrustAnchors,
  selection: SignedSelection,
  options: SignatureLookupOptions = {},
): Promise<SignatureVerification> {
  const attempts: Attempt[] = [];
  const manifestSigned = await tryDigest(store, resolved.descriptor.digest, trust, options, attempts);
  if (manifestSigned) {
    if (resolved.indexes.length > 0) {
      const problems = checkSignedAnnotations(resolved.manifest.annotations ?? {}, resolved.descriptor, selection);
      if (problems.length > 0) {
        throw new OcibootError(
          "SIGNATURE",
          `Cannot trust ${resolved.descriptor.digest}: it is signed by ${manifestSigned.signer.fingerprint}, but ${problems.join("; ")} (the index is unsigned; its entry may have been moved to another signed manifest)`,
          { details: { digest: resolved.descriptor.digest, problems, signer: manifestSigned.signer } },
        );
      }
    }
    return manifestSigned;
  }
  // Innermost index first: the closest signed container of the selected manifest.
  for (const index of [...resolved.indexes].reverse()) {
    const indexSigned = await tryDigest(store, index.digest, trust, options, attempts);
    if (indexSigned) return indexSigned;
  }
  throw signatureError(resolved.descriptor.digest, trust, attempts);
}

/**
 * Checks a whole image before it is copied or pulled: the root signed by a trusted key, or, for
 * an index nobody signed, every manifest it lists (buildx attestation entries aside), each by its
 * own `.sig` (docs/trust.md).
 *
 * @returns the signers, one for the root or one per listed manifest.
 * @throws OcibootError SIGNATURE saying what was tried and found.
 */
export async function verifyImageSignature(
  store: ReadableStore,
  root: Descriptor,
  trust: TrustAnchors,
  options: SignatureLookupOptions = {},
): Promise<VerifiedSigner[]> {
  const attempts: Attempt[] = [];
  const signed = await tryDigest(store, root.digest, trust, options, attempts);
  if (signed) return [signed.signer];
  if (!isIndexMediaType(root.mediaType)) throw signatureError(root.digest, trust, attempts);
  const parsed = parseManifest(await readManifestBytes(store, root, options.signal), root.mediaType);
  if (parsed.kind !== "index") throw signatureError(root.digest, trust, attempts);
  const signers: VerifiedSigner[] = [];
  for (const entry of parsed.index.manifests) {
    if (entry.annotations?.["vnd.docker.reference.type"] === "attestation-manifest") continue;
    const entrySigned = await tryDigest(store, entry.digest, trust, options, attempts);
    if (!entrySigned) throw signatureError(root.digest, trust, attempts);
    signers.push(entrySigned.signer);
  }
  if (signers.length === 0) throw signatureError(root.digest, trust, attempts);
  return signers;
}

/** Resolves `reference` and checks its whole image's signature (see {@link verifyImageSignature}). */
export async function verifyStoredImageSignature(
  store: ReadableStore,
  reference: string,
  trust: TrustOptions,
  signal?: AbortSignal,
): Promise<{ root: Descriptor; signers: VerifiedSigner[] }> {
  const root = await store.resolve(reference);
  return { root, signers: await verifyImageSignature(store, root, trust, signatureLookup(trust, signal)) };
}

/** Resolves `reference` to one manifest as fetch does and checks its signature (see {@link verifyResolvedSignature}). */
export async function verifyStoredManifestSignature(
  store: ReadableStore,
  reference: string,
  selection: ManifestSelection,
  trust: TrustOptions,
  signal?: AbortSignal,
): Promise<{ digest: string; signer: VerifiedSigner }> {
  const resolved = await resolveManifest(store, reference, selection, signal);
  const signed: SignedSelection = { ...selection, ...(isDigest(reference) ? {} : { tag: reference }) };
  const { signer } = await verifyResolvedSignature(store, resolved, trust, signed, signatureLookup(trust, signal));
  return { digest: resolved.descriptor.digest, signer };
}

/** The lookup options for a trust requirement. */
export function signatureLookup(trust: TrustOptions, signal: AbortSignal | undefined): SignatureLookupOptions {
  return { ...(trust.name !== undefined ? { name: trust.name } : {}), ...(signal ? { signal } : {}) };
}

/**
 * One signed digest: cosign's legacy `.sig` tag first (one request; what cosign v2 and Garden
 * Linux write), then Sigstore bundles among the referrers (cosign v3).
 */
async function tryDigest(
  store: ReadableStore,
  digest: string,
  trust: TrustAnchors,
  options: SignatureLookupOptions,
  attempts: Attempt[],
): Promise<SignatureVerification | undefined> {
  const legacy: Attempt[] = [];
  // Keyless signatures live in bundles only: without a key, the `.sig` tag could not verify anyway.
  const fromTag = trust.keys.length > 0 ? await trySignatureTag(store, digest, trust.keys, options, legacy) : undefined;
  if (fromTag) return fromTag;
  const bundles: Attempt[] = [];
  const fromBundle = await tryBundles(store, digest, trust, options, bundles);
  if (fromBundle) return fromBundle;
  if (legacy.length === 0) {
    attempts.push(...(bundles.length > 0 ? bundles : [{ digest, where: `${store.description} referrers of ${digest}`, found: "no Sigstore bundle" }]));
    return undefined;
  }
  const tagMissing = legacy.length === 1 && legacy[0]?.found === "no signature";
  if (tagMissing && bundles.length === 0) {
    attempts.push({ digest, where: `${legacy[0]?.where} or in referrers`, found: "no signature" });
  } else {
    attempts.push(...legacy.filter((attempt) => !(tagMissing && bundles.length > 0 && attempt === legacy[0])), ...bundles);
  }
  return undefined;
}

/** Referrer manifests read at most per signed digest, looking for bundles. */
const MAX_BUNDLE_REFERRERS = 16;

async function tryBundles(
  store: ReadableStore,
  digest: string,
  trust: TrustAnchors,
  options: SignatureLookupOptions,
  attempts: Attempt[],
): Promise<SignatureVerification | undefined> {
  if (!isReferrerLister(store)) return undefined;
  const subject: Descriptor = { mediaType: MediaType.ociManifest, digest: digest as Descriptor["digest"], size: 0 };
  let referrers: Descriptor[];
  try {
    referrers = await store.referrers(subject);
  } catch (error) {
    if (isOcibootError(error) && ["NOT_FOUND", "UNSUPPORTED"].includes(error.code)) return undefined;
    throw error;
  }
  // GHCR's fallback index may list a bundle as application/vnd.oci.empty.v1+json: each manifest is read, not the index trusted.
  const candidates = referrers.filter((referrer) => referrer.artifactType === undefined || referrer.artifactType === BUNDLE_MEDIA_TYPE || referrer.artifactType === MediaType.ociEmpty);
  for (const referrer of candidates.slice(0, MAX_BUNDLE_REFERRERS)) {
    if (!isManifestMediaType(referrer.mediaType) || referrer.size > SignatureLimits.manifestBytes) continue;
    const descriptor: Descriptor = { mediaType: referrer.mediaType, digest: referrer.digest, size: referrer.size };
    const where = `${store.description} referrer ${referrer.digest}`;
    const bytes = await readBounded(store, descriptor, SignatureLimits.manifestBytes, options.signal);
    const parsed = parseManifest(bytes, descriptor.mediaType);
    if (parsed.kind !== "manifest" || parsed.manifest.subject?.digest !== digest) continue;
    const layer = parsed.manifest.layers[0];
    const isBundle = parsed.manifest.artifactType === BUNDLE_MEDIA_TYPE || layer?.mediaType === BUNDLE_MEDIA_TYPE;
    if (!isBundle || layer === undefined || layer.mediaType !== BUNDLE_MEDIA_TYPE || layer.size > MAX_BUNDLE_BYTES) continue;
    let bundle: Uint8Array;
    try {
      bundle = await readBounded(store, layer, MAX_BUNDLE_BYTES, options.signal);
    } catch (error) {
      if (!isOcibootError(error) || !["NOT_FOUND", "INTEGRITY", "UNSAFE_CONTENT"].includes(error.code)) throw error;
      attempts.push({ digest, where, found: "the bundle is missing or does not match its digest" });
      continue;
    }
    const verdict = await checkAnyBundle(bundle, trust, digest);
    if (!verdict.ok) {
      attempts.push({ digest, where, found: `bundle: ${verdict.reason}` });
      continue;
    }
    const signer: VerifiedSigner = { ...verdict.signer, signedDigest: digest, signature: where, layer: 0 };
    return { signer, material: { manifest: { descriptor, bytes }, payloads: [{ descriptor: layer, bytes: bundle }], referrer: { ...descriptor, artifactType: BUNDLE_MEDIA_TYPE } } };
  }
  return undefined;
}

type BundleSigner = Pick<VerifiedSigner, "fingerprint" | "key" | "identity" | "issuer">;

/**
 * A bundle verified by a trusted key, or else, keyless, by its certificate: a key-based bundle with
 * `--key`, a certificate bundle against the trusted root. Both reasons are kept when neither verifies.
 */
async function checkAnyBundle(bundle: Uint8Array, trust: TrustAnchors, digest: string): Promise<{ ok: true; signer: BundleSigner } | { ok: false; reason: string }> {
  const reasons: string[] = [];
  if (trust.keys.length > 0) {
    const verdict = checkBundle(bundle, trust.keys, digest);
    if (verdict.ok) return { ok: true, signer: { fingerprint: verdict.key.fingerprint, key: verdict.key.source } };
    reasons.push(verdict.reason);
  }
  if (trust.keyless !== undefined) {
    // Loaded only when keyless trust was asked for: the Sigstore libraries are most of the bundle's size.
    const { checkKeylessBundle, isCertificateBundle } = await import("../oci/keyless.ts");
    if (reasons.length === 0 || isCertificateBundle(bundle)) {
      const verdict = checkKeylessBundle(bundle, trust.keyless, digest);
      if (verdict.ok) return { ok: true, signer: { fingerprint: verdict.fingerprint, key: trust.keyless.source, identity: verdict.identity, issuer: verdict.issuer } };
      reasons.push(`keyless: ${verdict.reason}`);
    }
  }
  return { ok: false, reason: reasons.join("; ") };
}

async function trySignatureTag(
  store: ReadableStore,
  digest: string,
  keys: readonly TrustedKey[],
  options: SignatureLookupOptions,
  attempts: Attempt[],
): Promise<SignatureVerification | undefined> {
  const tag = signatureTagFor(digest);
  const names = [tag, ...(options.name !== undefined ? [`${options.name}:${tag}`] : [])];
  const where = `${store.description}:${tag}`;
  let descriptor: Descriptor | undefined;
  for (const name of names) {
    try {
      descriptor = await store.resolve(name);
      break;
    } catch (error) {
      if (!isOcibootError(error) || !["NOT_FOUND", "INVALID_REFERENCE", "USAGE"].includes(error.code)) throw error;
    }
  }
  if (descriptor === undefined) {
    attempts.push({ digest, where, found: "no signature" });
    return undefined;
  }
  if (descriptor.size > SignatureLimits.manifestBytes) {
    throw new OcibootError("SIGNATURE", `Cannot read signatures at ${where}: the manifest has ${descriptor.size} bytes, over the cap of ${SignatureLimits.manifestBytes}`);
  }
  const manifestBytes = await readBounded(store, descriptor, SignatureLimits.manifestBytes, options.signal);
  const layers = parseSignatureManifest(manifestBytes, where);
  const payloads: SignatureMaterial["payloads"] = [];
  const verdicts: string[] = [];
  let signer: VerifiedSigner | undefined;
  for (const layer of layers) {
    const payload = await readPayload(store, layer, options.signal);
    if (payload === undefined) {
      verdicts.push(`layer ${layer.position}: the payload is missing or does not match its digest`);
      continue;
    }
    payloads.push({ descriptor: layer.payload, bytes: payload });
    const verdict = checkSignatureLayer(layer, payload, keys, digest);
    if (verdict.ok) {
      signer ??= { fingerprint: verdict.key.fingerprint, key: verdict.key.source, signedDigest: digest, signature: where, layer: layer.position };
    } else {
      verdicts.push(`layer ${layer.position}: ${describeVerdict(verdict)}`);
    }
  }
  if (signer === undefined) {
    attempts.push({ digest, where, found: `${layers.length} signature${layers.length === 1 ? "" : "s"}, none verified: ${verdicts.join("; ")}` });
    return undefined;
  }
  const manifest = { descriptor: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size }, bytes: manifestBytes };
  return { signer, material: { tag, manifest, payloads } };
}

/** A payload is read bounded and checked against its descriptor; a store that lacks it or serves other bytes gives undefined. */
async function readPayload(store: ReadableStore, layer: SignatureLayer, signal: AbortSignal | undefined): Promise<Uint8Array | undefined> {
  if (layer.payload.size > SignatureLimits.payloadBytes) return undefined;
  try {
    return await readBounded(store, layer.payload, SignatureLimits.payloadBytes, signal);
  } catch (error) {
    if (isOcibootError(error) && ["NOT_FOUND", "INTEGRITY", "UNSAFE_CONTENT"].includes(error.code)) return undefined;
    throw error;
  }
}

export async function readBounded(store: ReadableStore, descriptor: Descriptor, maxBytes: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
  const content = await store.fetch(descriptor, signal ? { signal } : {});
  return readVerified(content.stream, descriptor, maxBytes);
}

function signatureError(digest: string, trust: TrustAnchors, attempts: readonly Attempt[]): OcibootError {
  const trusted: string[] = [];
  if (trust.keys.length > 0) trusted.push(`trusted keys: ${trust.keys.map((key) => `${key.fingerprint} (${key.source})`).join(", ")}`);
  const keyless = trust.keyless === undefined ? undefined : describeKeyless(trust.keyless);
  if (keyless !== undefined) trusted.push(`keyless, wanted: ${keyless.text}`);
  const tried = attempts.map((attempt) => (attempt.found === "no signature" ? `no signature at ${attempt.where}` : `${attempt.where}: ${attempt.found}`));
  return new OcibootError("SIGNATURE", `Cannot verify a signature of ${digest}: ${tried.join("; ")}; ${trusted.join("; ")}`, {
    details: {
      digest,
      tried: attempts,
      keys: trust.keys.map((key) => ({ fingerprint: key.fingerprint, source: key.source })),
      ...(keyless !== undefined ? { keyless: keyless.details } : {}),
    },
  });
}

function describeKeyless(keyless: KeylessTrust): { text: string; details: Record<string, string> } {
  const { identity, identityPattern, issuer } = keyless.policy;
  const wanted = identity !== undefined ? { identity } : { identityRegexp: identityPattern?.source ?? "" };
  const shown = identity !== undefined ? `identity ${JSON.stringify(identity)}` : `identity matching /${identityPattern?.source}/`;
  return { text: `${shown}, issuer ${JSON.stringify(issuer)}, trusted root ${keyless.source}`, details: { ...wanted, issuer, trustedRoot: keyless.source } };
}
