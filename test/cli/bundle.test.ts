import { verify } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE_TYPE, dssePae, makeKey, publishBundle, type TestKey } from "../harness/cosign.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let registry: RunningRegistry;
let work: string;
let p256: TestKey;
let ed25519: TestKey;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-bundle-"));
  registry = await startRegistry();
  await mkdir(join(work, "docker"));
  await writeFile(join(work, "docker", "config.json"), "{}");
  [p256, ed25519] = await Promise.all([makeKey(work, "p-256", "p256"), makeKey(work, "ed25519", "ed")]);
}, 60_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work, env: { DOCKER_CONFIG: join(work, "docker") } });

let count = 0;
async function publishImage(repository: string) {
  const layout = join(work, `image-${++count}`);
  const written = await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: `kernel ${count}` }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, commandLine: "quiet", tag: "1" })],
  });
  const { reference } = await publishWithSkopeo(layout, "1", registry, repository);
  const descriptor = written.manifests[0]?.descriptor as { mediaType: string; digest: string; size: number };
  return { reference, descriptor: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size } };
}

describe("Sigstore bundle v0.3 referrers (key-based)", () => {
  it("accepts a bundle signed over the DSSE PAE, found through the referrers fallback tag; re-checks it offline", async () => {
    const image = await publishImage("bundle/ok");
    await publishBundle(work, registry, "bundle/ok", image.descriptor, p256);
    const fetched = await cli("fetch", image.reference, "--key", p256.publicKey, "-o", "out-ok", "--json");
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer).toMatchObject({ fingerprint: p256.fingerprint, signedDigest: image.descriptor.digest });
    expect(JSON.parse(fetched.stdout).signer.signature).toContain("referrer");
    const offline = await cli("verify", "--dir", "out-ok", "--key", p256.publicKey);
    expect(offline.code, offline.stderr).toBe(0);
    expect((await cli("verify", "--dir", "out-ok", "--key", ed25519.publicKey)).code).toBe(11);
  });

  it("refuses a bundle whose statement names another digest, and one by another key", async () => {
    const image = await publishImage("bundle/other");
    const other = await publishImage("bundle/elsewhere");
    await publishBundle(work, registry, "bundle/other", image.descriptor, p256, other.descriptor.digest);
    const refused = await cli("fetch", image.reference, "--key", p256.publicKey, "-o", "out-other");
    expect(refused.code).toBe(11);
    expect(refused.stderr).toMatch(/signature names another digest/);
    const wrongKey = await cli("fetch", image.reference, "--key", ed25519.publicKey, "-o", "out-wrong");
    expect(wrongKey.code).toBe(11);
    expect(wrongKey.stderr).toMatch(/bundle: signed by another key/);
  });

  it("sign --bundle writes a referrer whose DSSE signature node:crypto verifies, and fetch --key accepts it", async () => {
    const image = await publishImage("bundle/sign");
    const signed = await cli("sign", image.reference, "--key", ed25519.privateKey, "--bundle", "--json");
    expect(signed.code, signed.stderr).toBe(0);
    const index = (await (await fetch(`${registry.url}/v2/bundle/sign/manifests/sha256-${image.descriptor.digest.slice(7)}`, { headers: { accept: "application/vnd.oci.image.index.v1+json" } })).json()) as { manifests: Array<{ digest: string; artifactType?: string }> };
    expect(index.manifests).toEqual([expect.objectContaining({ artifactType: BUNDLE_TYPE })]);
    const manifest = (await (await fetch(`${registry.url}/v2/bundle/sign/manifests/${index.manifests[0]?.digest}`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } })).json()) as { layers: Array<{ digest: string }>; subject: { digest: string } };
    expect(manifest.subject.digest).toBe(image.descriptor.digest);
    const bundle = (await (await fetch(`${registry.url}/v2/bundle/sign/blobs/${manifest.layers[0]?.digest}`)).json()) as { dsseEnvelope: { payload: string; payloadType: string; signatures: Array<{ sig: string }> } };
    const statement = Buffer.from(bundle.dsseEnvelope.payload, "base64");
    const publicKey = await readFile(ed25519.publicKey, "utf8");
    expect(verify(null, dssePae(bundle.dsseEnvelope.payloadType, statement), publicKey, Buffer.from(bundle.dsseEnvelope.signatures[0]?.sig ?? "", "base64"))).toBe(true);
    expect(JSON.parse(statement.toString()).subject[0].digest.sha256).toBe(image.descriptor.digest.slice(7));
    const fetched = await cli("fetch", image.reference, "--key", ed25519.publicKey, "-o", "out-signed");
    expect(fetched.code, fetched.stderr).toBe(0);
  });
});
