import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeKey, publishSignature, signedLayer, type TestKey } from "../harness/cosign.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let origin: RunningRegistry;
let airgapped: RunningRegistry;
let work: string;
let signer: TestKey;
let stranger: TestKey;
let digest: string;
let reference: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-trust-transfer-"));
  [origin, airgapped] = await Promise.all([startRegistry(), startRegistry()]);
  await mkdir(join(work, "docker"));
  await writeFile(join(work, "docker", "config.json"), "{}");
  [signer, stranger] = await Promise.all([makeKey(work, "rsa-4096", "release"), makeKey(work, "ed25519", "stranger")]);
  const layout = join(work, "layout");
  const written = await writeOciLayout(layout, {
    manifests: [
      makeBootImage({ dialect: "onmetal", kernel: { bytes: "signed kernel" }, initrd: { bytes: "signed initrd" }, rootfs: { bytes: "signed rootfs" }, commandLine: "console=ttyS0", tag: "1" }),
      makeBootImage({ dialect: "onmetal", kernel: { bytes: "unsigned kernel" }, initrd: { bytes: "unsigned initrd" }, rootfs: { bytes: "unsigned rootfs" }, tag: "unsigned" }),
    ],
  });
  digest = written.manifests[0]?.descriptor.digest as string;
  reference = (await publishWithSkopeo(layout, "1", origin, "os/metal")).reference;
  await publishWithSkopeo(layout, "unsigned", origin, "os/unsigned");
  await publishSignature(work, origin, "os/metal", digest, [await signedLayer(signer, "ghcr.io/gardenlinux/gardenlinux", digest, work)]);
}, 120_000);
afterAll(async () => {
  await origin?.stop();
  await airgapped?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work, env: { DOCKER_CONFIG: join(work, "docker") } });

describe("across the air gap: registry → archive → second registry, verified on each side", () => {
  it("copies the image with its .sig into an archive, checked before the archive is started", async () => {
    const copied = await cli("copy", reference, "oci-archive:air.tar", "--with-referrers", "--key", signer.certificate, "--json");
    expect(copied.code, copied.stderr).toBe(0);
    const report = JSON.parse(copied.stdout);
    expect(report.signers).toEqual([expect.objectContaining({ fingerprint: signer.fingerprint, signedDigest: digest })]);
    expect(report.referrers.map((referrer: { digest: string }) => referrer.digest)).toHaveLength(1);

    const refused = await cli("copy", reference, "oci-archive:refused.tar", "--key", stranger.publicKey);
    expect(refused.code).toBe(11);
    expect(refused.stderr).toContain(stranger.fingerprint);
    expect((await readdir(work)).filter((name) => name.startsWith("refused"))).toEqual([]);
  });

  it("fetches and verifies from the archive with the key", async () => {
    const fetched = await cli("fetch", "oci-archive:air.tar", "--key", signer.certificate, "-o", "from-archive", "--json");
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer.fingerprint).toBe(signer.fingerprint);
    const verified = await cli("verify", `oci-archive:air.tar:${digest}`, "--key", signer.certificate, "--json");
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout).signers[0].fingerprint).toBe(signer.fingerprint);
    expect((await cli("verify", `oci-archive:air.tar:${digest}`, "--key", stranger.publicKey)).code).toBe(11);
  });

  it("copies from the archive into the second registry, and the signature holds there", async () => {
    const target = `${airgapped.host}/mirror/metal:1`;
    const copied = await cli("copy", "oci-archive:air.tar", target, "--with-referrers", "--key", signer.certificate);
    expect(copied.code, copied.stderr).toBe(0);
    const fetched = await cli("fetch", target, "--key", signer.certificate, "-o", "from-mirror", "--json");
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer.signature).toContain(`${airgapped.host}/mirror/metal:sha256-${digest.slice(7)}.sig`);
    const verified = await cli("verify", target, "--key", signer.certificate);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain(`SIGNED  ${digest} by ${signer.fingerprint}`);
  });

  it("leaves a destination registry and store untouched when the source is unsigned", async () => {
    const copied = await cli("copy", `${origin.host}/os/unsigned:unsigned`, `${airgapped.host}/unsigned/os:1`, "--key", signer.certificate);
    expect(copied.code).toBe(11);
    expect((await fetch(`${airgapped.url}/v2/unsigned/os/tags/list`)).status).toBe(404);

    const pulled = await cli("--store-path", "store-refused", "pull", `${origin.host}/os/unsigned:unsigned`, "--key", signer.certificate);
    expect(pulled.code).toBe(11);
    expect(existsSync(join(work, "store-refused"))).toBe(false);
    const accepted = await cli("--store-path", "store", "pull", reference, "--key", signer.certificate);
    expect(accepted.code, accepted.stderr).toBe(0);
  });
});

describe("offline: a fetched folder re-checked with the registry stopped", () => {
  it("verifies manifest, files and signature from the folder alone", async () => {
    const fetched = await cli("fetch", reference, "--key", signer.certificate, "-o", "offline");
    expect(fetched.code, fetched.stderr).toBe(0);
    await origin.stop();

    const byFolder = await cli("verify", "--dir", "offline", "--key", signer.certificate, "--json");
    expect(byFolder.code, byFolder.stderr).toBe(0);
    const report = JSON.parse(byFolder.stdout);
    expect(report).toMatchObject({ digest, ok: true, signers: [expect.objectContaining({ fingerprint: signer.fingerprint })] });
    expect(report.items.map((item: { name: string }) => item.name).sort()).toEqual(["cmdline", "initrd", "manifest.json", "rootfs", "vmlinuz"]);

    const pinned = await cli("verify", `${origin.host}/os/metal@${digest}`, "--dir", "offline", "--key", signer.certificate);
    expect(pinned.code, pinned.stderr).toBe(0);
    const otherPin = await cli("verify", `${origin.host}/os/metal@sha256:${"0".repeat(64)}`, "--dir", "offline", "--key", signer.certificate);
    expect(otherPin.code).toBe(5);
    expect((await cli("verify", "--dir", "offline", "--key", stranger.publicKey)).code).toBe(11);

    await writeFile(join(work, "offline", "cmdline"), "init=/bin/sh\n");
    const tampered = await cli("verify", "--dir", "offline", "--key", signer.certificate);
    expect(tampered.code).toBe(5);
    expect(tampered.stdout).toMatch(/FAILED {2}cmdline cmdline/);
  });
});
