import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let registry: RunningRegistry;
let work: string;
const files: Record<string, Buffer> = {};

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "ociboot-push-pull-"));
  await mkdir(join(work, "docker"));
  await writeFile(join(work, "docker", "config.json"), "{}");
  for (const name of ["vmlinuz-amd64", "initrd-amd64", "vmlinuz-arm64", "initrd-arm64", "rootfs"]) {
    files[name] = randomBytes(200_000);
    await writeFile(join(work, name), files[name] ?? "");
  }
});
afterAll(async () => {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work, env: { DOCKER_CONFIG: join(work, "docker") } });
const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

describe("push and pull", () => {
  it("skips blobs the registry already has", async () => {
    const reference = `${registry.host}/skip:1`;
    await cli("--store-path", "s1", "build", "--rootfs-file", "rootfs", "--initramfs-file", "initrd-amd64", "--kernel-file", "vmlinuz-amd64", "--tag", reference);
    expect((await cli("--store-path", "s1", "push", reference)).code).toBe(0);
    const uploadsBefore = registry.requests().filter((request) => request.method === "POST").length;
    expect(uploadsBefore).toBe(4);
    await cli("--store-path", "s1", "tag", reference, `${registry.host}/skip:2`);
    const again = await cli("--store-path", "s1", "push", `${registry.host}/skip:2`);
    expect(again).toMatchObject({ code: 0, stderr: "" });
    expect(registry.requests().filter((request) => request.method === "POST")).toHaveLength(uploadsBefore);
  });

  it("pushes and pulls a multi-architecture index with its manifests; url picks a platform's layer", async () => {
    const reference = `${registry.host}/multi:1`;
    const spec = (arch: string) => `arch=${arch},kernel=vmlinuz-${arch},initramfs=initrd-${arch}`;
    const built = await cli("--store-path", "s2", "build", "--format", "ironcore", "--config", spec("amd64"), "--config", spec("arm64"), "--tag", reference);
    const hex = built.stdout.trim().split(" ").at(-1);
    expect((await cli("--store-path", "s2", "push", reference)).stdout).toBe(`Successfully pushed ${reference} ${hex}\n`);

    const pulled = await cli("--store-path", "s3", "pull", reference);
    expect(pulled.stdout).toBe(`Successfully pulled ${reference} ${hex}\n`);
    const inspected = JSON.parse((await cli("--store-path", "s3", "inspect", reference)).stdout) as { manifests: unknown[] };
    expect(inspected.manifests).toHaveLength(2);

    const url = JSON.parse((await cli("url", reference, "--layer", "kernel", "--platform", "linux/arm64")).stdout) as { url: string };
    expect(url.url).toBe(`${registry.url}/v2/multi/blobs/${sha256(files["vmlinuz-arm64"] ?? Buffer.alloc(0))}`);
    const manifestUrl = JSON.parse((await cli("url", reference)).stdout) as unknown;
    expect(manifestUrl).toEqual({
      headers: { Accept: ["application/vnd.oci.image.manifest.v1+json"] },
      url: `${registry.url}/v2/multi/manifests/1`,
    });
  });

  it("pulls only one platform of an index with --platform, tagged as the reference", async () => {
    const reference = `${registry.host}/multi-one:1`;
    const spec = (arch: string) => `arch=${arch},kernel=vmlinuz-${arch},initramfs=initrd-${arch}`;
    await cli("--store-path", "s6", "build", "--format", "ironcore", "--config", spec("amd64"), "--config", spec("arm64"), "--tag", reference);
    expect((await cli("--store-path", "s6", "push", reference)).code).toBe(0);

    const pulled = await cli("--store-path", "s7", "pull", reference, "--platform", "linux/arm64");
    expect(pulled.code, pulled.stderr).toBe(0);
    const inspected = JSON.parse((await cli("--store-path", "s7", "inspect", reference)).stdout) as {
      descriptor: { platform?: unknown };
      manifest: { layers?: Array<{ digest: string }>; manifests?: unknown };
    };
    expect(inspected.manifest.manifests).toBeUndefined();
    expect(inspected.descriptor.platform).toEqual({ architecture: "arm64", os: "linux" });
    const layers = (inspected.manifest.layers ?? []).map((layer) => layer.digest);
    expect(layers).toContain(sha256(files["vmlinuz-arm64"] ?? Buffer.alloc(0)));
    expect(layers).not.toContain(sha256(files["vmlinuz-amd64"] ?? Buffer.alloc(0)));
    expect(pulled.stdout).toMatch(new RegExp(`^Successfully pulled ${reference.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} [0-9a-f]{64}\n$`));
    // The other platform's kernel never came.
    const amd64Kernel = sha256(files["vmlinuz-amd64"] ?? Buffer.alloc(0)).slice("sha256:".length);
    expect(existsSync(join(work, "s7", "blobs", "sha256", amd64Kernel))).toBe(false);
    expect(existsSync(join(work, "s6", "blobs", "sha256", amd64Kernel))).toBe(true);

    const none = await cli("--store-path", "s8", "pull", reference, "--platform", "linux/s390x");
    expect(none.error).toMatchObject({ code: "NOT_FOUND" });
  });

  it("refuses a blob the registry corrupted and adds no entry for it", async () => {
    const reference = `${registry.host}/corrupt:1`;
    await cli("--store-path", "s4", "build", "--rootfs-file", "rootfs", "--initramfs-file", "initrd-amd64", "--kernel-file", "vmlinuz-arm64", "--tag", reference);
    await cli("--store-path", "s4", "push", reference);
    const kernel = files["vmlinuz-arm64"] ?? Buffer.alloc(0);
    const dataPath = registry.blobDataPath(sha256(kernel));
    const corrupted = Buffer.from(await readFile(dataPath));
    corrupted[5] = (corrupted[5] ?? 0) ^ 0xff;
    await writeFile(dataPath, corrupted);
    const pulled = await cli("--store-path", "s5", "pull", reference);
    expect(pulled.error).toMatchObject({ code: "INTEGRITY" });
    const index = await readFile(join(work, "s5", "index.json"), "utf8").catch(() => '{"manifests":[]}');
    expect((JSON.parse(index) as { manifests: unknown[] }).manifests).toEqual([]);
  });
});
