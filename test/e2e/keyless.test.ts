import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishBundleReferrer } from "../harness/cosign.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { fakeSigstore } from "../harness/sigstore.ts";
import { ociboot, ocibootUnderDeno } from "./ociboot-binary.ts";

const ID = "release@example.com";
const ISSUER = "https://accounts.example.com";

let registry: RunningRegistry;
let work: string;
let reference: string;
let digest: string;
let trustedRoot: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-e2e-keyless-"));
  registry = await startRegistry();
  const sigstore = await fakeSigstore();
  trustedRoot = join(work, "trusted_root.json");
  await writeFile(trustedRoot, sigstore.trustedRoot);
  const layout = join(work, "layout");
  const written = await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: "kernel ".repeat(1000) }, initrd: { bytes: "initrd" }, rootfs: { bytes: "rootfs" }, commandLine: "console=ttyS0", tag: "1" })],
  });
  const manifest = written.manifests[0]?.descriptor as { mediaType: string; digest: string; size: number };
  digest = manifest.digest;
  reference = (await publishWithSkopeo(layout, "1", registry, "os/keyless")).reference;
  const bundle = await sigstore.bundle({ identity: ID, issuer: ISSUER, statementDigest: digest });
  await publishBundleReferrer(work, registry, "os/keyless", { mediaType: manifest.mediaType, digest, size: manifest.size }, bundle);
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const keyless = (identity = ID) => ["--certificate-identity", identity, "--certificate-oidc-issuer", ISSUER, "--trusted-root", trustedRoot];

describe("keyless signatures with the built binary and under Deno", () => {
  it("fetch with the binary; verify online, offline and refused under Deno", async () => {
    const out = join(work, "boot");
    const fetched = await ociboot(["fetch", reference, ...keyless(), "-o", out, "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer).toMatchObject({ identity: ID, issuer: ISSUER, signedDigest: digest });

    const online = await ocibootUnderDeno(["verify", reference, ...keyless(), "--json"]);
    expect(online.code, online.stderr).toBe(0);
    expect(JSON.parse(online.stdout).signers[0]).toMatchObject({ identity: ID, issuer: ISSUER });
    const offline = await ocibootUnderDeno(["verify", "--dir", out, ...keyless()]);
    expect(offline.code, offline.stderr).toBe(0);
    const refused = await ocibootUnderDeno(["verify", "--dir", out, ...keyless("mallory@example.com")]);
    expect(refused.code).toBe(11);
    expect(refused.stderr).toContain(`certificate identity "${ID}"`);
  }, 180_000);
});
