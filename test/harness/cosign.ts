import { createHash } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runOk } from "./commands.ts";
import { skopeoRegistryFlags, writeOciLayout, type LayerSpec, type ManifestSpec, type RegistryEndpoint } from "./images.ts";

/**
 * cosign-compatible signatures made without ociboot: keys and signatures by the `openssl` CLI,
 * manifests by the layout writer, pushed by skopeo. The payload is written out by hand here, byte
 * for byte as cosign (Go) writes it, so ociboot's own payload code is never the reference.
 */

export type KeyKind = "rsa-4096" | "p-256" | "p-384" | "ed25519";

export interface TestKey {
  kind: KeyKind;
  privateKey: string;
  publicKey: string;
  /** A self-signed X.509 certificate around the same key (as Garden Linux publishes its keys). */
  certificate: string;
  /** `sha256:<hex>` of the SPKI DER, from openssl's own DER output. */
  fingerprint: string;
}

const GENPKEY_ARGS: Record<KeyKind, string[]> = {
  "rsa-4096": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
  "p-256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
  "p-384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
  ed25519: ["-algorithm", "ED25519"],
};

export async function makeKey(directory: string, kind: KeyKind, name: string = kind): Promise<TestKey> {
  const privateKey = join(directory, `${name}.key`);
  const publicKey = join(directory, `${name}.pub`);
  const certificate = join(directory, `${name}.crt`);
  const der = join(directory, `${name}.pub.der`);
  await runOk("openssl", ["genpkey", ...GENPKEY_ARGS[kind], "-out", privateKey]);
  await runOk("openssl", ["pkey", "-in", privateKey, "-pubout", "-out", publicKey]);
  await runOk("openssl", ["pkey", "-in", privateKey, "-pubout", "-outform", "DER", "-out", der]);
  await runOk("openssl", ["req", "-x509", "-new", "-key", privateKey, "-subj", `/CN=${name}`, "-days", "30", "-out", certificate]);
  const fingerprint = `sha256:${createHash("sha256").update(await readFile(der)).digest("hex")}`;
  return { kind, privateKey, publicKey, certificate, fingerprint };
}

/** cosign's simple-signing payload for `digest`, as cosign v2 writes it (compact, no newline). */
export function cosignPayload(dockerReference: string, digest: string): Buffer {
  return Buffer.from(
    `{"critical":{"identity":{"docker-reference":"${dockerReference}"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
  );
}

/** Signs bytes with the openssl CLI: RSA PKCS#1 v1.5 / ECDSA DER over SHA-256; Ed25519 pure. */
export async function signWithOpenssl(key: TestKey, payload: Uint8Array, directory: string): Promise<Buffer> {
  const work = await mkdtemp(join(directory, "sign-"));
  const input = join(work, "payload");
  const output = join(work, "signature");
  await writeFile(input, payload);
  if (key.kind === "ed25519") await runOk("openssl", ["pkeyutl", "-sign", "-inkey", key.privateKey, "-rawin", "-in", input, "-out", output]);
  else await runOk("openssl", ["dgst", "-sha256", "-sign", key.privateKey, "-out", output, input]);
  return readFile(output);
}

/** One layer of a `.sig` manifest: the payload and the annotation exactly as given (may be broken on purpose). */
export interface SignatureLayerInput {
  payload: Uint8Array | string;
  signatureBase64: string;
  /** Declare this payload digest instead of the real one (a "tampered payload" test serves other bytes). */
  annotations?: Record<string, string>;
}

export const SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";

/** The `.sig` manifest cosign writes for `digest`, tagged `sha256-<hex>.sig` in the layout. */
export function signatureManifest(digest: string, layers: readonly SignatureLayerInput[]): ManifestSpec {
  const hex = digest.slice("sha256:".length);
  return {
    tag: `sha256-${hex}.sig`,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      bytes: '{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}',
    },
    layers: layers.map(
      (layer): LayerSpec => ({
        mediaType: SIMPLE_SIGNING,
        bytes: layer.payload,
        annotations: { "dev.cosignproject.cosign/signature": layer.signatureBase64, ...layer.annotations },
      }),
    ),
  };
}

/** A signature layer by `key` over cosign's payload for `digest`. */
export async function signedLayer(key: TestKey, repository: string, digest: string, directory: string): Promise<SignatureLayerInput> {
  const payload = cosignPayload(repository, digest);
  const signature = await signWithOpenssl(key, payload, directory);
  return { payload, signatureBase64: signature.toString("base64") };
}

/** Writes a `.sig` manifest into a fresh layout and pushes it with skopeo to `REPO:sha256-<hex>.sig`. */
export async function publishSignature(
  directory: string,
  registry: RegistryEndpoint,
  repository: string,
  digest: string,
  layers: readonly SignatureLayerInput[],
): Promise<string> {
  const layout = await mkdtemp(join(directory, "sig-layout-"));
  const spec = signatureManifest(digest, layers);
  await writeOciLayout(layout, { manifests: [spec] });
  const tag = spec.tag as string;
  await runOk("skopeo", ["copy", "--preserve-digests", "--quiet", ...skopeoRegistryFlags("dest", registry), `oci:${layout}:${tag}`, `docker://${registry.host}/${repository}:${tag}`]);
  return `${registry.host}/${repository}:${tag}`;
}

/** Adds a `.sig` manifest to an existing OCI layout (skopeo copies it in under the tag). */
export async function addSignatureToLayout(directory: string, layoutDirectory: string, digest: string, layers: readonly SignatureLayerInput[], tagPrefix = ""): Promise<void> {
  const layout = await mkdtemp(join(directory, "sig-layout-"));
  const spec = signatureManifest(digest, layers);
  await writeOciLayout(layout, { manifests: [spec] });
  const tag = spec.tag as string;
  await runOk("skopeo", ["copy", "--preserve-digests", "--quiet", `oci:${layout}:${tag}`, `oci:${layoutDirectory}:${tagPrefix}${tag}`]);
}

/**
 * Pushes a `.sig` manifest whose single layer is repeated `count` times: skopeo uploads the blobs
 * once (one layer), then the long manifest goes up by a plain HTTP PUT (skopeo would take minutes
 * walking thousands of layers).
 */
export async function publishRepeatedSignature(
  directory: string,
  registry: RegistryEndpoint & { url: string },
  repository: string,
  digest: string,
  layer: SignatureLayerInput,
  count: number,
): Promise<void> {
  await publishSignature(directory, registry, repository, digest, [layer]);
  const tag = `sha256-${digest.slice("sha256:".length)}.sig`;
  const manifestType = "application/vnd.oci.image.manifest.v1+json";
  const url = `${registry.url}/v2/${repository}/manifests/${tag}`;
  const current = await fetch(url, { headers: { accept: manifestType } });
  const manifest = (await current.json()) as { layers: unknown[] };
  manifest.layers = Array.from({ length: count }, () => manifest.layers[0]);
  const put = await fetch(url, { method: "PUT", headers: { "content-type": manifestType }, body: JSON.stringify(manifest) });
  if (put.status !== 201) throw new Error(`PUT ${url}: ${put.status} ${await put.text()}`);
}

export const BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";

/** DSSE PAE, written out here from the DSSE spec so the test does not lean on ociboot's. */
export function dssePae(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `), payload]);
}

/**
 * Publishes a cosign v3 style key-based bundle for `subject` as a referrer: the bundle signed with
 * openssl over the PAE, the artifact manifest and the `sha256-<hex>` fallback index (distribution 2.8
 * has no referrers API) pushed by skopeo.
 */
export async function publishBundle(
  directory: string,
  registry: RegistryEndpoint & { url: string },
  repository: string,
  subject: { mediaType: string; digest: string; size: number },
  key: TestKey,
  statementDigest: string = subject.digest,
): Promise<void> {
  const statement = Buffer.from(JSON.stringify({
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: `${registry.host}/${repository}`, digest: { sha256: statementDigest.slice(7) } }],
    predicateType: "https://sigstore.dev/cosign/sign/v1",
    predicate: {},
  }));
  const signature = await signWithOpenssl(key, dssePae("application/vnd.in-toto+json", statement), directory);
  const bundle = JSON.stringify({
    mediaType: BUNDLE_TYPE,
    verificationMaterial: { publicKey: { hint: "" } },
    dsseEnvelope: { payload: statement.toString("base64"), payloadType: "application/vnd.in-toto+json", signatures: [{ sig: signature.toString("base64") }] },
  });
  await publishBundleReferrer(directory, registry, repository, subject, bundle);
}

/**
 * Attaches `bundle` (JSON) to `subject` as cosign v3 does: the artifact manifest pushed by skopeo and
 * listed in the `sha256-<hex>` fallback index (distribution 2.8 has no referrers API).
 */
export async function publishBundleReferrer(
  directory: string,
  registry: RegistryEndpoint & { url: string },
  repository: string,
  subject: { mediaType: string; digest: string; size: number },
  bundle: string,
): Promise<void> {
  const layout = await mkdtemp(join(directory, "bundle-layout-"));
  const tag = `sha256-${subject.digest.slice(7)}`;
  const written = await writeOciLayout(layout, {
    manifests: [{
      tag: "bundle",
      config: { mediaType: "application/vnd.oci.empty.v1+json", bytes: "{}" },
      layers: [{ mediaType: BUNDLE_TYPE, bytes: bundle }],
      artifactType: BUNDLE_TYPE,
      subject: subject as ManifestSpec["subject"] & object,
      annotations: { "dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1" },
    }],
  });
  // skopeo pushes the artifact; the fallback index (which skopeo 1.9 will not copy unchanged) goes up by a plain PUT.
  await runOk("skopeo", ["copy", "--preserve-digests", "--quiet", ...skopeoRegistryFlags("dest", registry), `oci:${layout}:bundle`, `docker://${registry.host}/${repository}:bundle-${subject.digest.slice(7, 19)}`]);
  const referrer = written.manifests[0]?.descriptor;
  const index = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [{ ...referrer, artifactType: BUNDLE_TYPE }] };
  const put = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    headers: { "content-type": "application/vnd.oci.image.index.v1+json" },
    body: JSON.stringify(index),
  });
  if (put.status !== 201) throw new Error(`PUT fallback index: ${put.status} ${await put.text()}`);
}
