import { createPrivateKey, randomBytes, scryptSync } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { secretbox } from "@noble/ciphers/salsa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";
import { makeKey, publishSignature, signedLayer, type TestKey } from "../harness/cosign.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let registry: RunningRegistry;
let work: string;
let rsa: TestKey;
let p256: TestKey;
let ed25519: TestKey;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-sign-"));
  registry = await startRegistry();
  await mkdir(join(work, "docker"));
  await writeFile(join(work, "docker", "config.json"), "{}");
  [rsa, p256, ed25519] = await Promise.all([makeKey(work, "rsa-4096", "rsa"), makeKey(work, "p-256", "p256"), makeKey(work, "ed25519", "ed")]);
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const cli = (argv: string[], env: Record<string, string> = {}) => runInProcess(argv, { cwd: work, env: { DOCKER_CONFIG: join(work, "docker"), ...env } });

let count = 0;
async function publishImage(repository: string): Promise<{ reference: string; digest: string }> {
  const layout = join(work, `image-${++count}`);
  const written = await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: `kernel ${count}` }, initrd: { bytes: "initrd" }, rootfs: { bytes: "rootfs" }, tag: "1" })],
  });
  const { reference } = await publishWithSkopeo(layout, "1", registry, repository);
  return { reference, digest: written.manifests[0]?.descriptor.digest as string };
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
interface SigManifest {
  layers: Array<{ digest: string; annotations: Record<string, string> }>;
}
async function signatureManifest(repository: string, digest: string): Promise<SigManifest> {
  const response = await fetch(`${registry.url}/v2/${repository}/manifests/sha256-${digest.slice(7)}.sig`, { headers: { accept: OCI_MANIFEST } });
  expect(response.status).toBe(200);
  return (await response.json()) as SigManifest;
}

/** The signature of one layer checked by openssl alone, against the payload the registry serves. */
async function opensslVerifies(repository: string, layer: SigManifest["layers"][number], key: TestKey): Promise<boolean> {
  const payload = Buffer.from(await (await fetch(`${registry.url}/v2/${repository}/blobs/${layer.digest}`)).arrayBuffer());
  const directory = await mkdtemp(join(work, "check-"));
  await writeFile(join(directory, "payload"), payload);
  await writeFile(join(directory, "signature"), Buffer.from(layer.annotations["dev.cosignproject.cosign/signature"] ?? "", "base64"));
  const args =
    key.kind === "ed25519"
      ? ["pkeyutl", "-verify", "-pubin", "-inkey", key.publicKey, "-rawin", "-in", join(directory, "payload"), "-sigfile", join(directory, "signature")]
      : ["dgst", "-sha256", "-verify", key.publicKey, "-signature", join(directory, "signature"), join(directory, "payload")];
  const result = await run("openssl", args);
  return result.code === 0;
}

describe("ociboot sign", () => {
  it("writes a .sig that openssl verifies and fetch --key accepts", async () => {
    const image = await publishImage("sign/rsa");
    const signed = await cli(["sign", image.reference, "--key", rsa.privateKey, "--json"]);
    expect(signed.code, signed.stderr).toBe(0);
    expect(JSON.parse(signed.stdout)).toMatchObject({ digest: image.digest, fingerprint: rsa.fingerprint, layers: 1, added: true });
    const manifest = await signatureManifest("sign/rsa", image.digest);
    expect(manifest.layers).toHaveLength(1);
    expect(await opensslVerifies("sign/rsa", manifest.layers[0] as SigManifest["layers"][number], rsa)).toBe(true);
    const payload = await (await fetch(`${registry.url}/v2/sign/rsa/blobs/${manifest.layers[0]?.digest}`)).text();
    expect(JSON.parse(payload)).toEqual({
      critical: { identity: { "docker-reference": `${registry.host}/sign/rsa` }, image: { "docker-manifest-digest": image.digest }, type: "cosign container image signature" },
      optional: null,
    });
    expect((await cli(["fetch", image.reference, "--key", rsa.certificate, "-o", "out-rsa"])).code).toBe(0);
  });

  it("appends to another signer's .sig and keeps its layer; signing twice adds nothing", async () => {
    const image = await publishImage("sign/append");
    await publishSignature(work, registry, "sign/append", image.digest, [await signedLayer(p256, "elsewhere/os", image.digest, work)]);
    expect((await cli(["sign", image.reference, "--key", ed25519.privateKey])).code).toBe(0);
    const again = await cli(["sign", image.reference, "--key", ed25519.privateKey]);
    expect(again.stdout).toMatch(/^Already signed/);
    const manifest = await signatureManifest("sign/append", image.digest);
    expect(manifest.layers).toHaveLength(2);
    expect(await opensslVerifies("sign/append", manifest.layers[0] as SigManifest["layers"][number], p256)).toBe(true);
    expect(await opensslVerifies("sign/append", manifest.layers[1] as SigManifest["layers"][number], ed25519)).toBe(true);
    for (const key of [p256, ed25519]) expect((await cli(["fetch", image.reference, "--key", key.publicKey, "-o", `out-append-${key.kind}`])).code).toBe(0);
  });

  it("signs an image in an oci: layout", async () => {
    const layout = join(work, "store");
    await writeOciLayout(layout, { manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, tag: "example.com/os:1" })] });
    const signed = await cli(["sign", "oci:store:example.com/os:1", "--key", p256.privateKey]);
    expect(signed.code, signed.stderr).toBe(0);
    const fetched = await cli(["fetch", "oci:store:example.com/os:1", "--key", p256.publicKey, "-o", "out-layout", "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer.fingerprint).toBe(p256.fingerprint);
  });

  it("reads cosign's encrypted cosign.key with COSIGN_PASSWORD, and names a wrong password", async () => {
    // The envelope cosign writes (scrypt N=32768 r=8 p=1, NaCl secretbox around PKCS#8 DER), made here by hand.
    const der = createPrivateKey(await readFile(p256.privateKey, "utf8")).export({ type: "pkcs8", format: "der" });
    const salt = randomBytes(32);
    const nonce = randomBytes(24);
    const secret = scryptSync("hunter2", salt, 32, { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    const envelope = {
      kdf: { name: "scrypt", params: { N: 32768, r: 8, p: 1 }, salt: salt.toString("base64") },
      cipher: { name: "nacl/secretbox", nonce: nonce.toString("base64") },
      ciphertext: Buffer.from(secretbox(secret, nonce).seal(der)).toString("base64"),
    };
    const body = Buffer.from(JSON.stringify(envelope)).toString("base64").replace(/(.{64})/g, "$1\n");
    await writeFile(join(work, "cosign.key"), `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${body}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`);
    const image = await publishImage("sign/cosign-key");
    const wrong = await cli(["sign", image.reference, "--key", "cosign.key"], { COSIGN_PASSWORD: "wrong" });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/wrong password/);
    const signed = await cli(["sign", image.reference, "--key", "cosign.key", "--json"], { COSIGN_PASSWORD: "hunter2" });
    expect(signed.code, signed.stderr).toBe(0);
    expect(JSON.parse(signed.stdout).fingerprint).toBe(p256.fingerprint);
    const manifest = await signatureManifest("sign/cosign-key", image.digest);
    expect(await opensslVerifies("sign/cosign-key", manifest.layers[0] as SigManifest["layers"][number], p256)).toBe(true);
  });

  it("pack --sign-key signs the boot image in the archive; fetch, import and copy carry the signature", async () => {
    const build = join(work, "build");
    await mkdir(build, { recursive: true });
    const name = "metal-amd64-1592.1";
    for (const [suffix, text] of Object.entries({ vmlinuz: "packed kernel", initrd: "packed initrd", rootfs: "packed rootfs", "os-release": "ID=gardenlinux\n", manifest: "pkg 1\n", log: "log\n", cmdline: "console=ttyS0\n" })) {
      await writeFile(join(build, `${name}.${suffix}`), text);
    }
    const packed = await cli(["pack", "--from-build", build, "--name", name, "-o", "packed.tar", "--platform", "linux/amd64", "--sign-key", rsa.privateKey, "--json"]);
    expect(packed.code, packed.stderr).toBe(0);
    const report = JSON.parse(packed.stdout);
    expect(report.signature).toMatchObject({ fingerprint: rsa.fingerprint, digest: report.bootImage.digest });

    const fetched = await cli(["fetch", "oci-archive:packed.tar", "--key", rsa.certificate, "-o", "out-packed", "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer.signedDigest).toBe(report.bootImage.digest);

    expect((await cli(["--store-path", "imported", "import", "packed.tar"])).code).toBe(0);
    const fromStore = await cli(["fetch", `oci:imported:${report.bootImage.digest}`, "--key", rsa.certificate, "-o", "out-imported"]);
    expect(fromStore.code, fromStore.stderr).toBe(0);

    const target = `${registry.host}/packed/metal:1592.1`;
    expect((await cli(["copy", "oci-archive:packed.tar", target, "--with-referrers", "--key", rsa.certificate])).code).toBe(0);
    expect((await cli(["fetch", target, "--key", rsa.certificate, "-o", "out-packed-registry"])).code).toBe(0);
    expect((await cli(["fetch", target, "--key", p256.publicKey, "-o", "out-packed-refused"])).code).toBe(11);
  });
});
