import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { makeKey, publishBundleReferrer, type TestKey } from "../harness/cosign.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { fakeSigstore, type FakeSigstore } from "../harness/sigstore.ts";
import { runInProcess } from "./cli-context.ts";

const ID = "https://github.com/org/os/.github/workflows/release.yml@refs/tags/v1";
const ISSUER = "https://token.actions.githubusercontent.com";

let registry: RunningRegistry;
let work: string;
let sigstore: FakeSigstore;
let key: TestKey;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-keyless-"));
  registry = await startRegistry();
  await mkdir(join(work, "docker"));
  await writeFile(join(work, "docker", "config.json"), "{}");
  let stranger: FakeSigstore;
  [sigstore, stranger, key] = await Promise.all([fakeSigstore(), fakeSigstore(), makeKey(work, "p-256", "p256")]);
  await writeFile(join(work, "trusted_root.json"), sigstore.trustedRoot);
  await writeFile(join(work, "other_root.json"), stranger.trustedRoot);
}, 60_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work, env: { DOCKER_CONFIG: join(work, "docker") } });
const keyless = (identity = ID, issuer = ISSUER, root = "trusted_root.json") => ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer, "--trusted-root", root];

let count = 0;
/** A boot image in the registry with a keyless bundle attached as its referrer (made by `bundle`, or for the image's own digest). */
async function signedImage(repository: string, bundle?: (digest: string) => Promise<string>, target: RunningRegistry = registry) {
  const layout = join(work, `image-${++count}`);
  const written = await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: `kernel ${count}` }, initrd: { bytes: "initrd" }, rootfs: { bytes: "rootfs" }, commandLine: "console=ttyS0", tag: "1" })],
  });
  const { reference } = await publishWithSkopeo(layout, "1", target, repository);
  const manifest = written.manifests[0]?.descriptor as { mediaType: string; digest: string; size: number };
  const descriptor = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
  const json = bundle ? await bundle(descriptor.digest) : await sigstore.bundle({ identity: ID, issuer: ISSUER, statementDigest: descriptor.digest });
  if (json !== "") await publishBundleReferrer(work, target, repository, descriptor, json);
  return { reference, digest: descriptor.digest };
}

async function expectRefused(argv: string[], output: string, message: RegExp) {
  const refused = await cli(...argv);
  expect(refused.code, refused.stderr).toBe(11);
  expect(refused.stderr).toMatch(message);
  expect(existsSync(join(work, output))).toBe(false);
  expect((await readdir(work)).filter((name) => name.startsWith(output))).toEqual([]);
  return refused.stderr;
}

describe("keyless Sigstore bundles (Fulcio certificate, Rekor entry), verified offline against a trusted root", () => {
  it("accepts the right identity and issuer: fetch writes the files and reports the signer; verify agrees, online and offline", async () => {
    // A registry of its own, stopped below for the offline check.
    const own = await startRegistry();
    let stopped = false;
    onTestFinished(async () => {
      if (!stopped) await own.stop();
    });
    const image = await signedImage("keyless/ok", undefined, own);
    const fetched = await cli("fetch", image.reference, ...keyless(), "-o", "ok", "--json");
    expect(fetched.code, fetched.stderr).toBe(0);
    const report = JSON.parse(fetched.stdout);
    expect(report.signer).toMatchObject({ identity: ID, issuer: ISSUER, key: "trusted_root.json", signedDigest: image.digest, fingerprint: expect.stringMatching(/^sha256:/) });
    expect(await readFile(join(work, "ok", "vmlinuz"), "utf8")).toBe(`kernel ${count}`);
    expect(await readdir(join(work, "ok"))).toContain("signatures.json");

    const online = await cli("verify", image.reference, ...keyless(), "--json");
    expect(online.code, online.stderr).toBe(0);
    expect(JSON.parse(online.stdout).signers).toEqual([expect.objectContaining({ identity: ID, issuer: ISSUER })]);
    const human = await cli("verify", image.reference, ...keyless());
    expect(human.stdout).toContain(`SIGNED  ${image.digest} by ${ID} (issuer ${ISSUER}`);

    // Offline: the bundle saved beside the files, the trusted root from the command line.
    await own.stop();
    stopped = true;
    {
      const offline = await cli("verify", "--dir", "ok", ...keyless(), "--json");
      expect(offline.code, offline.stderr).toBe(0);
      expect(JSON.parse(offline.stdout).signers).toEqual([expect.objectContaining({ identity: ID, issuer: ISSUER, signedDigest: image.digest })]);
      const pinned = await cli("verify", `${image.reference.replace(/:1$/, "")}@${image.digest}`, "--dir", "ok", ...keyless());
      expect(pinned.code, pinned.stderr).toBe(0);
      const wrongOffline = await cli("verify", "--dir", "ok", ...keyless("https://github.com/evil/os/.github/workflows/x.yml@refs/heads/main"));
      expect(wrongOffline.code).toBe(11);
      expect(wrongOffline.stderr).toContain(`certificate identity "${ID}"`);
    }
  });

  it("refuses another identity, another issuer and a trusted root without the CA, naming what it found; nothing is written", async () => {
    const image = await signedImage("keyless/policy");
    const wrongId = await expectRefused(["fetch", image.reference, ...keyless("https://github.com/evil/os/.github/workflows/release.yml@refs/tags/v1"), "-o", "wrong-id"], "wrong-id", /certificate identity ".*org\/os.*", issuer ".*": the identity is not/);
    expect(wrongId).toContain("keyless, wanted: identity \"https://github.com/evil/os");
    await expectRefused(["fetch", image.reference, ...keyless(ID, "https://accounts.google.com"), "-o", "wrong-issuer"], "wrong-issuer", new RegExp(`issuer "${ISSUER}": the issuer is not "https://accounts.google.com"`));
    await expectRefused(["fetch", image.reference, ...keyless(ID, ISSUER, "other_root.json"), "-o", "wrong-root"], "wrong-root", /CERTIFICATE_ERROR: Failed to verify certificate chain.*other_root\.json/);
    // The regexp covers the whole SAN: a match of a part is not enough.
    await expectRefused(["fetch", image.reference, "--certificate-identity-regexp", "refs/tags/v1", "--certificate-oidc-issuer", ISSUER, "--trusted-root", "trusted_root.json", "-o", "partial-re"], "partial-re", /the identity does not match/);
    const regexp = await cli("fetch", image.reference, "--certificate-identity-regexp", "https://github\\.com/org/os/.*", "--certificate-oidc-issuer", ISSUER, "--trusted-root", "trusted_root.json", "-o", "re-ok");
    expect(regexp.code, regexp.stderr).toBe(0);
  });

  it("refuses a tampered bundle and a bundle for another digest; nothing is written", async () => {
    const tampered = await signedImage("keyless/tampered", async (digest) => {
      const bundle = JSON.parse(await sigstore.bundle({ identity: ID, issuer: ISSUER, statementDigest: digest }));
      const signature = Buffer.from(bundle.dsseEnvelope.signatures[0].sig, "base64");
      signature.writeUInt8(signature.readUInt8(signature.length - 1) ^ 1, signature.length - 1);
      bundle.dsseEnvelope.signatures[0].sig = signature.toString("base64");
      return JSON.stringify(bundle);
    });
    await expectRefused(["fetch", tampered.reference, ...keyless(), "-o", "tampered"], "tampered", /keyless: TLOG_BODY_ERROR|SIGNATURE_ERROR/);
    const other = await signedImage("keyless/other-digest", async () => sigstore.bundle({ identity: ID, issuer: ISSUER, statementDigest: `sha256:${"0".repeat(64)}` }));
    await expectRefused(["fetch", other.reference, ...keyless(), "-o", "other-digest"], "other-digest", /signature names another digest/);
    const unsigned = await signedImage("keyless/unsigned", async () => "");
    await expectRefused(["fetch", unsigned.reference, ...keyless(), "-o", "unsigned"], "unsigned", /referrers of sha256:[0-9a-f]{64}: no Sigstore bundle/);
  });

  it("--key and keyless together: either is enough; keyless options must be complete (exit 2)", async () => {
    const image = await signedImage("keyless/either");
    const both = await cli("fetch", image.reference, "--key", key.publicKey, ...keyless(), "-o", "both", "--json");
    expect(both.code, both.stderr).toBe(0);
    expect(JSON.parse(both.stdout).signer).toMatchObject({ identity: ID });
    const neither = await expectRefused(["fetch", image.reference, "--key", key.publicKey, ...keyless(ID, "https://accounts.google.com"), "-o", "neither"], "neither", /trusted keys: sha256:/);
    expect(neither).toContain("keyless, wanted: identity");
    const incomplete = await cli("fetch", image.reference, "--certificate-identity", ID, "--trusted-root", "trusted_root.json", "-o", "incomplete");
    expect(incomplete.code).toBe(2);
    expect(incomplete.stderr).toMatch(/--certificate-oidc-issuer/);
    const notARoot = await cli("fetch", image.reference, ...keyless(ID, ISSUER, "p256.pub"), "-o", "not-a-root");
    expect(notARoot.code).toBe(2);
    expect(existsSync(join(work, "not-a-root"))).toBe(false);
  });

  it("copy checks before the destination changes; fetch and verify from oci:DIR and oci-archive: find the bundle there", async () => {
    const image = await signedImage("keyless/copy");
    await expectRefused(["copy", image.reference, "oci-archive:refused-copy.tar", "--with-referrers", ...keyless(ID, "https://accounts.google.com")], "refused-copy", /the issuer is not/);
    for (const destination of ["oci:copied:os:1", "oci-archive:copied.tar:os:1"]) {
      const copied = await cli("copy", image.reference, destination, "--with-referrers", ...keyless(), "--json");
      expect(copied.code, copied.stderr).toBe(0);
      expect(JSON.parse(copied.stdout).signers).toEqual([expect.objectContaining({ identity: ID, signedDigest: image.digest })]);
      const output = `from-${destination.split(":")[0]}`;
      const fetched = await cli("fetch", destination, ...keyless(), "-o", output, "--json");
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(JSON.parse(fetched.stdout).signer).toMatchObject({ identity: ID, issuer: ISSUER, signedDigest: image.digest });
      const verified = await cli("verify", destination, ...keyless());
      expect(verified.code, verified.stderr).toBe(0);
      await expectRefused(["fetch", destination, ...keyless("someone@example.com"), "-o", `${output}-refused`], `${output}-refused`, /the identity is not "someone@example.com"/);
    }
  });

  it("pull checks before the store changes", async () => {
    const image = await signedImage("keyless/pull");
    await expectRefused(["--store-path", "store-refused", "pull", image.reference, ...keyless("someone@example.com")], "store-refused", /the identity is not "someone@example.com"/);
    const pulled = await cli("--store-path", "store", "pull", image.reference, ...keyless(), "--json");
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(JSON.parse(pulled.stdout).signers).toEqual([expect.objectContaining({ identity: ID, issuer: ISSUER, signedDigest: image.digest })]);
  });
});
