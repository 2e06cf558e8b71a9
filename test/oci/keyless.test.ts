import { beforeAll, describe, expect, it } from "vitest";
import { checkKeylessBundle, identityPattern, loadTrustedRoot, type KeylessPolicy } from "../../src/oci/keyless.ts";
import { fakeSigstore, type FakeSigstore } from "../harness/sigstore.ts";

const DIGEST = `sha256:${"ab".repeat(32)}`;
const OTHER = `sha256:${"cd".repeat(32)}`;
const ID = "https://github.com/org/os/.github/workflows/release.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

let sigstore: FakeSigstore;
let stranger: FakeSigstore;
beforeAll(async () => {
  [sigstore, stranger] = await Promise.all([fakeSigstore(), fakeSigstore()]);
}, 30_000);

const bytes = (text: string) => new TextEncoder().encode(text);
const trust = (policy: KeylessPolicy, root = sigstore.trustedRoot) => loadTrustedRoot(bytes(root), "trusted_root.json", policy);

describe("keyless bundles against a trusted root", () => {
  it("accepts the right identity and issuer and reports them", async () => {
    const bundle = bytes(await sigstore.bundle({ identity: ID, issuer: ISSUER, statementDigest: DIGEST }));
    const verdict = checkKeylessBundle(bundle, trust({ identity: ID, issuer: ISSUER }), DIGEST);
    expect(verdict).toMatchObject({ ok: true, identity: ID, issuer: ISSUER, fingerprint: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(checkKeylessBundle(bundle, trust({ identityPattern: identityPattern("https://github\\.com/org/os/.*"), issuer: ISSUER }), DIGEST).ok).toBe(true);
  });

  it("refuses another identity, another issuer, a regexp that matches only part, another digest, another CA", async () => {
    const bundle = bytes(await sigstore.bundle({ identity: ID, issuer: ISSUER, statementDigest: DIGEST }));
    const wrongId = checkKeylessBundle(bundle, trust({ identity: "https://github.com/evil/os", issuer: ISSUER }), DIGEST);
    expect(wrongId).toMatchObject({ ok: false, reason: expect.stringContaining(`certificate identity "${ID}"`) });
    const wrongIssuer = checkKeylessBundle(bundle, trust({ identity: ID, issuer: "https://accounts.google.com" }), DIGEST);
    expect(wrongIssuer).toMatchObject({ ok: false, reason: expect.stringContaining("the issuer is not") });
    expect(checkKeylessBundle(bundle, trust({ identityPattern: identityPattern("refs/heads/main"), issuer: ISSUER }), DIGEST).ok).toBe(false);
    expect(checkKeylessBundle(bundle, trust({ identity: ID, issuer: ISSUER }), OTHER)).toMatchObject({ ok: false, reason: expect.stringContaining("signature names another digest") });
    const foreign = checkKeylessBundle(bundle, trust({ identity: ID, issuer: ISSUER }, stranger.trustedRoot), DIGEST);
    expect(foreign).toMatchObject({ ok: false, reason: expect.stringContaining("CERTIFICATE_ERROR") });
  });

  it("refuses a tampered envelope or log entry", async () => {
    const bundle = JSON.parse(await sigstore.bundle({ identity: ID, issuer: ISSUER, statementDigest: DIGEST }));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString());
    statement.subject[0].digest.sha256 = OTHER.slice(7);
    const payloadSwapped = { ...bundle, dsseEnvelope: { ...bundle.dsseEnvelope, payload: Buffer.from(JSON.stringify(statement)).toString("base64") } };
    expect(checkKeylessBundle(bytes(JSON.stringify(payloadSwapped)), trust({ identity: ID, issuer: ISSUER }), OTHER)).toMatchObject({ ok: false, reason: expect.stringContaining("TLOG_BODY_ERROR") });
    const entry = bundle.verificationMaterial.tlogEntries[0];
    const timeMoved = structuredClone(bundle);
    timeMoved.verificationMaterial.tlogEntries[0] = { ...entry, integratedTime: String(Number(entry.integratedTime) + 1) };
    expect(checkKeylessBundle(bytes(JSON.stringify(timeMoved)), trust({ identity: ID, issuer: ISSUER }), DIGEST)).toMatchObject({ ok: false, reason: expect.stringContaining("TLOG_INCLUSION_PROMISE_ERROR") });
    const noLog = structuredClone(bundle);
    noLog.verificationMaterial.tlogEntries = [];
    expect(checkKeylessBundle(bytes(JSON.stringify(noLog)), trust({ identity: ID, issuer: ISSUER }), DIGEST)).toMatchObject({ ok: false, reason: expect.stringContaining("TIMESTAMP_ERROR") });
  });

  it("refuses a file that is not a trusted root", () => {
    expect(() => loadTrustedRoot(bytes("{}"), "x.json", { identity: ID, issuer: ISSUER })).toThrow(/Cannot load trusted root x.json/);
  });
});
