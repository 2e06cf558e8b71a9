import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { initializeCA, initializeCTLog, initializeTLog } from "@sigstore/mock";
import { dssePae } from "./cosign.ts";

/**
 * A fake Sigstore made in the test by `@sigstore/mock`: a Fulcio CA with a CT log that embeds SCTs,
 * and a Rekor log that returns inclusion proofs and signed entry timestamps. The trusted root and the
 * bundles are written out here as JSON from the published formats (Sigstore's protobuf-specs
 * TrustedRoot and Bundle v0.3, Rekor's dsse v0.0.1 entry), never by ociboot's code.
 */

export const FULCIO_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8";
const IN_TOTO = "application/vnd.in-toto+json";

export interface FakeSigstore {
  /** `trusted_root.json` naming this instance's CA, CT log and Rekor. */
  trustedRoot: string;
  /** A keyless bundle v0.3 for a DSSE statement naming `statementDigest`, certified for identity and issuer. */
  bundle(options: { identity: string; issuer: string; statementDigest: string }): Promise<string>;
}

const b64 = (bytes: ArrayBufferView) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
const ecKeyPair = () => generateKeyPairSync("ec", { namedCurve: "P-256" });

export async function fakeSigstore(): Promise<FakeSigstore> {
  // Whole seconds: certificate dates and log times have no sub-second part, so "issued before logged"
  // holds exactly. A little ahead: the mock's root certificate starts at the real "now" it is made.
  const clock = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2000);
  const ctKeys = ecKeyPair();
  const ctLog = await initializeCTLog(ctKeys, clock);
  const ca = await initializeCA(ecKeyPair(), ctLog, clock);
  const rekorKeys = ecKeyPair();
  const rekorUrl = "https://rekor.sigstore.test";
  const tlog = await initializeTLog(rekorUrl, rekorKeys, clock);
  const spki = (key: KeyObject) => key.export({ type: "spki", format: "der" });
  const validFor = { start: "2000-01-01T00:00:00Z" };
  const trustedRoot = JSON.stringify({
    mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [{
      baseUrl: rekorUrl,
      hashAlgorithm: "SHA2_256",
      publicKey: { rawBytes: b64(spki(rekorKeys.publicKey)), keyDetails: "PKIX_ECDSA_P256_SHA_256", validFor },
      logId: { keyId: b64(createHash("sha256").update(spki(rekorKeys.publicKey)).digest()) },
    }],
    certificateAuthorities: [{
      subject: { organization: "sigstore.mock", commonName: "sigstore" },
      uri: "https://fulcio.sigstore.test",
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
      validFor,
    }],
    ctlogs: [{
      baseUrl: "https://ctfe.sigstore.test",
      hashAlgorithm: "SHA2_256",
      publicKey: { rawBytes: b64(spki(ctKeys.publicKey)), keyDetails: "PKIX_ECDSA_P256_SHA_256", validFor },
      logId: { keyId: b64(ctLog.logID) },
    }],
    timestampAuthorities: [],
  });

  return {
    trustedRoot,
    async bundle({ identity, issuer, statementDigest }) {
      const signer = ecKeyPair();
      const issued = await ca.issueCertificate({
        publicKey: spki(signer.publicKey),
        subjectAltName: identity,
        extensions: [{ oid: FULCIO_ISSUER_V2_OID, value: issuer }],
      });
      const certificate = Buffer.from(issued.buffer, issued.byteOffset, issued.byteLength);
      const statement = Buffer.from(JSON.stringify({
        _type: "https://in-toto.io/Statement/v1",
        subject: [{ name: "image", digest: { sha256: statementDigest.replace(/^sha256:/, "") } }],
        predicateType: "https://sigstore.dev/cosign/sign/v1",
        predicate: {},
      }));
      const signature = sign("sha256", dssePae(IN_TOTO, statement), signer.privateKey);
      const envelope = { payload: b64(statement), payloadType: IN_TOTO, signatures: [{ sig: b64(signature), keyid: "" }] };
      const certificatePem = `-----BEGIN CERTIFICATE-----\n${b64(certificate).replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE-----\n`;
      const logged = await tlog.log({
        apiVersion: "0.0.1",
        kind: "dsse",
        spec: {
          envelopeHash: { algorithm: "sha256", value: createHash("sha256").update(JSON.stringify(envelope)).digest("hex") },
          payloadHash: { algorithm: "sha256", value: createHash("sha256").update(statement).digest("hex") },
          signatures: [{ signature: b64(signature), verifier: b64(Buffer.from(certificatePem)) }],
        },
      });
      const entry = Object.values(logged)[0] as unknown as {
        body: string;
        integratedTime: number;
        logID: string;
        logIndex: number;
        verification: { inclusionProof: { logIndex: number; treeSize: number; rootHash: string; hashes: string[]; checkpoint: string }; signedEntryTimestamp: string };
      };
      const proof = entry.verification.inclusionProof;
      return JSON.stringify({
        mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
        verificationMaterial: {
          certificate: { rawBytes: b64(certificate) },
          tlogEntries: [{
            logIndex: String(entry.logIndex),
            logId: { keyId: b64(Buffer.from(entry.logID, "hex")) },
            kindVersion: { kind: "dsse", version: "0.0.1" },
            integratedTime: String(entry.integratedTime),
            inclusionPromise: { signedEntryTimestamp: entry.verification.signedEntryTimestamp },
            inclusionProof: {
              logIndex: String(proof.logIndex),
              rootHash: b64(Buffer.from(proof.rootHash, "hex")),
              treeSize: String(proof.treeSize),
              hashes: proof.hashes,
              checkpoint: { envelope: proof.checkpoint },
            },
            canonicalizedBody: entry.body,
          }],
          timestampVerificationData: { rfc3161Timestamps: [] },
        },
        dsseEnvelope: envelope,
      });
    },
  };
}
