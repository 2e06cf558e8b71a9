import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkSignedAnnotations } from "../../src/oci/signed-annotations.ts";
import { checkSignatureLayer, loadTrustedKey, parseSignatureManifest, signatureMatches, SIMPLE_SIGNING_MEDIA_TYPE, type SignatureLayer } from "../../src/oci/signature.ts";
import { isOcibootError } from "../../src/errors.ts";

const digest = `sha256:${"a".repeat(64)}`;
const payload = Buffer.from(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`);
const describePayload = (bytes: Uint8Array) => ({ mediaType: SIMPLE_SIGNING_MEDIA_TYPE, digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}` as never, size: bytes.byteLength });

function p256() {
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { pair, trusted: loadTrustedKey(pair.publicKey.export({ type: "spki", format: "pem" }) as string, "p256.pub") };
}

describe("keys and signature bytes", () => {
  it("fingerprints the SPKI DER and accepts DER and raw r||s ECDSA signatures", () => {
    const { pair, trusted } = p256();
    expect(trusted.fingerprint).toBe(`sha256:${createHash("sha256").update(pair.publicKey.export({ type: "spki", format: "der" })).digest("hex")}`);
    expect(signatureMatches(trusted, payload, sign("sha256", payload, pair.privateKey))).toBe(true);
    expect(signatureMatches(trusted, payload, sign("sha256", payload, { key: pair.privateKey, dsaEncoding: "ieee-p1363" }))).toBe(true);
    expect(signatureMatches(trusted, Buffer.concat([payload, Buffer.from(" ")]), sign("sha256", payload, pair.privateKey))).toBe(false);
    expect(signatureMatches(trusted, payload, new Uint8Array([1, 2, 3]))).toBe(false);
  });

  it("refuses keys cosign does not sign with", () => {
    const pair = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
    expect(() => loadTrustedKey(pair.publicKey.export({ type: "spki", format: "pem" }) as string, "k1.pub")).toThrow(/not supported/);
    expect(() => loadTrustedKey("-----BEGIN PRIVATE KEY-----\n", "x")).toThrow(/Cannot load key x/);
  });
});

describe("checkSignatureLayer: cosign's order", () => {
  const { pair, trusted } = p256();
  const layer = (bytes: Uint8Array, signature: Uint8Array | undefined): SignatureLayer => ({ position: 0, payload: describePayload(bytes), signature });

  it("checks the payload digest before the signature, the signature before the JSON, then type and digest", () => {
    const good = sign("sha256", payload, pair.privateKey);
    expect(checkSignatureLayer(layer(payload, good), payload, [trusted], digest)).toMatchObject({ ok: true });
    expect(checkSignatureLayer(layer(payload, good), Buffer.from(payload).fill(32, 0, 1), [trusted], digest)).toMatchObject({ reason: "payload-digest" });
    expect(checkSignatureLayer(layer(payload, undefined), payload, [trusted], digest)).toMatchObject({ reason: "bad-signature-encoding" });
    expect(checkSignatureLayer(layer(payload, good), payload, [trusted], `sha256:${"b".repeat(64)}`)).toMatchObject({ reason: "another-digest" });
    const notJson = Buffer.from("not json");
    expect(checkSignatureLayer(layer(notJson, sign("sha256", notJson, pair.privateKey)), notJson, [trusted], digest)).toMatchObject({ reason: "payload-json" });
    // An unsigned document is never parsed: bad JSON with a bad signature is "another key", not "not JSON".
    expect(checkSignatureLayer(layer(notJson, good), notJson, [trusted], digest)).toMatchObject({ reason: "another-key" });
    const otherType = Buffer.from(payload.toString().replace("cosign container image signature", "x"));
    expect(checkSignatureLayer(layer(otherType, sign("sha256", otherType, pair.privateKey)), otherType, [trusted], digest)).toMatchObject({ reason: "payload-type" });
  });
});

describe("parseSignatureManifest", () => {
  const manifest = (layers: number, padding = "") =>
    Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"c".repeat(64)}`, size: 2 },
      layers: Array.from({ length: layers }, () => ({ ...describePayload(payload), annotations: { "dev.cosignproject.cosign/signature": "AAAA", padding } })),
    }));
  it("reads every simple-signing layer, within the caps", () => {
    expect(parseSignatureManifest(manifest(3), "x")).toHaveLength(3);
    for (const bytes of [manifest(65), manifest(1, "x".repeat(300_000)), manifest(0)]) {
      let caught: unknown;
      try {
        parseSignatureManifest(bytes, "x");
      } catch (error) {
        caught = error;
      }
      expect(isOcibootError(caught, "SIGNATURE")).toBe(true);
    }
  });
});

describe("checkSignedAnnotations (Garden Linux's unsigned index)", () => {
  const signed = { cname: "metal-amd64-1592.1", architecture: "amd64", version: "1592.1" };
  const entry = (annotations: Record<string, string>, architecture = "amd64") => ({ mediaType: "m", digest: digest as never, size: 1, annotations, platform: { os: "gardenlinux", architecture, "os.version": "1592.1" } });
  it("agrees when everything present matches, and names each disagreement", () => {
    expect(checkSignedAnnotations(signed, entry({ cname: "metal-amd64-1592.1" }), { flavor: "metal", platform: { os: "linux", architecture: "x86_64" }, tag: "1592.1" })).toEqual([]);
    expect(checkSignedAnnotations(signed, entry({ cname: "kvm-amd64-1592.1" }), {})).toHaveLength(1);
    expect(checkSignedAnnotations(signed, entry({}, "arm64"), {})).toHaveLength(1);
    expect(checkSignedAnnotations(signed, entry({}), { flavor: "kvm" })).toHaveLength(1);
    expect(checkSignedAnnotations(signed, entry({}), { tag: "1443.3" })).toHaveLength(1);
    expect(checkSignedAnnotations(signed, entry({}), { tag: "latest" })).toEqual([]);
  });
});
