import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeKey, publishSignature, signedLayer, type TestKey } from "../harness/cosign.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { ociboot, ocibootUnderDeno } from "./ociboot-binary.ts";

let registry: RunningRegistry;
let work: string;
let release: TestKey;
let other: TestKey;
let reference: string;
let digest: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-e2e-trust-"));
  registry = await startRegistry();
  [release, other] = await Promise.all([makeKey(work, "rsa-4096", "release"), makeKey(work, "p-256", "other")]);
  const layout = join(work, "layout");
  const written = await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: "kernel ".repeat(1000) }, initrd: { bytes: "initrd" }, rootfs: { bytes: "rootfs" }, commandLine: "console=ttyS0", tag: "1" })],
  });
  digest = written.manifests[0]?.descriptor.digest as string;
  reference = (await publishWithSkopeo(layout, "1", registry, "gardenlinux/gardenlinux")).reference;
  await publishSignature(work, registry, "gardenlinux/gardenlinux", digest, [await signedLayer(release, "ghcr.io/gardenlinux/gardenlinux", digest, work)]);
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("signatures with the built binary and under Deno", () => {
  it("fetch --key with the binary; verify --key online and offline under Deno", async () => {
    const out = join(work, "boot");
    const fetched = await ociboot(["fetch", reference, "--key", release.certificate, "-o", out, "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer.fingerprint).toBe(release.fingerprint);

    const online = await ocibootUnderDeno(["verify", reference, "--dir", out, "--key", release.certificate, "--json"]);
    expect(online.code, online.stderr).toBe(0);
    expect(JSON.parse(online.stdout).signers[0].fingerprint).toBe(release.fingerprint);
    const whole = await ocibootUnderDeno(["verify", reference, "--key", release.certificate]);
    expect(whole.code, whole.stderr).toBe(0);
    const refused = await ocibootUnderDeno(["verify", reference, "--key", other.publicKey]);
    expect(refused.code).toBe(11);
    expect(refused.stderr).toContain(other.fingerprint);
    const offline = await ocibootUnderDeno(["verify", `${registry.host}/gardenlinux/gardenlinux@${digest}`, "--dir", out, "--key", release.certificate]);
    expect(offline.code, offline.stderr).toBe(0);
  }, 180_000);

  it("sign with --password-stdin for an encrypted PKCS#8 key, with the binary", async () => {
    const { runOk } = await import("../harness/commands.ts");
    const encrypted = join(work, "encrypted.pem");
    await runOk("openssl", ["pkcs8", "-topk8", "-in", other.privateKey, "-out", encrypted, "-passout", "pass:s3cret"]);
    const signed = await ociboot(["sign", reference, "--key", encrypted, "--password-stdin"], { input: "s3cret\n" });
    expect(signed.code, signed.stderr).toBe(0);
    const fetched = await ociboot(["fetch", reference, "--key", other.publicKey, "-o", join(work, "boot-other"), "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer).toMatchObject({ fingerprint: other.fingerprint, layer: 1 });
  });

  it("bench: what checking the signature adds to a fetch (figure in docs/trust.md)", async () => {
    const runs = 7;
    const plain: number[] = [];
    const signed: number[] = [];
    for (let run = 0; run < runs; run++) {
      for (const [times, extra] of [[plain, []], [signed, ["--key", release.certificate]]] as const) {
        const started = performance.now();
        const result = await ociboot(["fetch", reference, "-o", join(work, `bench-${run}-${extra.length}`), "--quiet", ...extra]);
        times.push(performance.now() - started);
        expect(result.code, result.stderr).toBe(0);
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
    console.log(`fetch of a small image, median of ${runs}: ${median(plain).toFixed(0)} ms without --key, ${median(signed).toFixed(0)} ms with --key (RSA-4096 certificate): +${(median(signed) - median(plain)).toFixed(0)} ms`);
  }, 180_000);
});
