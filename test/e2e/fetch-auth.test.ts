import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeDockerConfig } from "../harness/docker-config.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot } from "./ociboot-binary.ts";

const KERNEL = "a kernel behind a login";

async function publish(work: string, registry: RunningRegistry): Promise<string> {
  const layout = join(work, `layout-${registry.host.replace(/\W/g, "-")}`);
  await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: KERNEL }, initrd: { bytes: "initrd" }, rootfs: { bytes: "rootfs" }, commandLine: "quiet" })],
  });
  return (await publishWithSkopeo(layout, "v1", registry, "private/os")).reference;
}

describe("fetch from registries that need credentials and TLS", () => {
  let work: string;
  let basic: RunningRegistry;
  let tokenTls: RunningRegistry;
  let basicReference: string;
  let tokenReference: string;
  let dockerConfigDirectory: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-auth-"));
    [basic, tokenTls] = await Promise.all([startRegistry({ auth: "basic" }), startRegistry({ auth: "token", tls: true })]);
    [basicReference, tokenReference] = await Promise.all([publish(work, basic), publish(work, tokenTls)]);
    dockerConfigDirectory = join(work, "docker");
    await writeDockerConfig(dockerConfigDirectory, [basic, tokenTls]);
  });
  afterAll(async () => {
    await Promise.all([basic?.stop(), tokenTls?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("fails with the authentication exit code without credentials", async () => {
    const result = await ociboot(["fetch", basicReference, "-o", join(work, "anonymous")]);
    expect(result.code).toBe(4);
  });

  it("uses --username with --password-stdin", async () => {
    const { username, password } = basic.credentials!;
    const out = join(work, "stdin");
    const result = await ociboot(["fetch", basicReference, "-o", out, "--username", username, "--password-stdin"], { input: `${password}\n` });
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe(KERNEL);
  });

  it("uses --authfile", async () => {
    const out = join(work, "authfile");
    const result = await ociboot(["fetch", basicReference, "-o", out, "--authfile", join(dockerConfigDirectory, "config.json")]);
    expect(result.code, result.stderr).toBe(0);
  });

  it("refuses a wrong password with the authentication exit code", async () => {
    const result = await ociboot(["fetch", basicReference, "-o", join(work, "wrong"), "-u", basic.credentials!.username, "--password-stdin"], { input: "nope" });
    expect(result.code).toBe(4);
  });

  it("fetches over TLS with a bearer token, trusting the CA given by --ca-file", async () => {
    const out = join(work, "token");
    const result = await ociboot(["fetch", tokenReference, "-o", out, "--ca-file", tokenTls.caFile!], { env: { DOCKER_CONFIG: dockerConfigDirectory } });
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe(KERNEL);
    expect(tokenTls.tokenServer!.requests.some((request) => request.username === tokenTls.credentials!.username)).toBe(true);
  });

  it("fails with the network/TLS exit code when the CA is not trusted", async () => {
    const result = await ociboot(["fetch", tokenReference, "-o", join(work, "untrusted")], { env: { DOCKER_CONFIG: dockerConfigDirectory } });
    expect(result.code).toBe(7);
    expect(result.stderr).toMatch(/certificate|TLS/i);
  });
});
