import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { skopeoRegistryFlags } from "../harness/images.ts";
import { runInProcess } from "./cli-context.ts";

const exec = promisify(execFile);

/**
 * The Garden Linux `_oci` README walk-through with ociboot in place of onmetal-image: build → the
 * store archived as `onmetal/` with `tar -cJf` → import → list → tag by 12-hex ID → push → inspect
 * → url → curl downloads the kernel.
 */
for (const auth of ["none", "token"] as const) {
  describe(`the seed walk-through against a real registry (auth: ${auth})`, () => {
    let registry: RunningRegistry;
    let work: string;
    const env: Record<string, string> = {};
    const kernel = randomBytes(1_500_000);

    beforeAll(async () => {
      registry = await startRegistry({ auth });
      work = await mkdtemp(join(tmpdir(), "ociboot-walkthrough-"));
      await mkdir(join(work, "docker"));
      const auths: Record<string, { auth: string }> = {};
      if (registry.credentials) {
        auths[registry.host] = { auth: Buffer.from(`${registry.credentials.username}:${registry.credentials.password}`).toString("base64") };
      }
      await writeFile(join(work, "docker", "config.json"), JSON.stringify({ auths }));
      env["DOCKER_CONFIG"] = join(work, "docker");
      await writeFile(join(work, "vmlinuz"), kernel);
      await writeFile(join(work, "initrd"), randomBytes(400_000));
      await writeFile(join(work, "rootfs.tar"), randomBytes(900_000));
    });
    afterAll(async () => {
      await registry.stop();
      await rm(work, { recursive: true, force: true });
    });

    const cli = (...argv: string[]) => runInProcess(argv, { cwd: work, env });

    it("build → tar -cJf onmetal/ → import → list → tag ID → push → inspect → url → curl", async () => {
      const built = await cli("--store-path", "built", "build", "--rootfs-file", "rootfs.tar", "--initramfs-file", "initrd", "--kernel-file", "vmlinuz", "--command-line", "console=ttyS0");
      const hex = /^Successfully built ([0-9a-f]{64})\n$/.exec(built.stdout)?.[1] ?? "";
      expect(hex).toHaveLength(64);
      await rename(join(work, "built"), join(work, "onmetal"));
      await mkdir(join(work, "onmetal", "ingest"));
      await exec("tar", ["-cJf", "gardenlinux.oci.tar.xz", "onmetal"], { cwd: work });
      await rm(join(work, "onmetal"), { recursive: true });

      expect((await cli("--store-path", "onmetal", "import", "gardenlinux.oci.tar.xz")).stdout).toBe(`Successfully imported ${hex}\n`);
      const id = hex.slice(0, 12);
      expect((await cli("--store-path", "onmetal", "list")).stdout).toBe(`REPOSITORY  TAG         IMAGE ID\n<none>      <none>      ${id}\n`);

      const reference = `${registry.host}/gardenlinux:today`;
      expect((await cli("--store-path", "onmetal", "tag", id, reference)).stdout).toBe(`Successfully tagged ${reference} with sha256:${hex}\n`);
      const pushed = await cli("--store-path", "onmetal", "push", reference);
      expect(pushed.stderr).toMatch(/^4 blobs to transfer, [\d.]+ MiB\n/);
      expect(pushed.stderr).toContain(`sha256:${hex.slice(0, 12)} `);
      expect(pushed.stdout).toBe(`Successfully pushed ${reference} ${hex}\n`);

      // The registry holds exactly the store's manifest bytes.
      const { stdout: raw } = await exec("skopeo", ["inspect", "--raw", ...skopeoFlags(registry), `docker://${reference}`]);
      const stored = await readFile(join(work, "onmetal", "blobs", "sha256", hex), "utf8");
      expect(raw).toBe(stored);
      const inspected = JSON.parse((await cli("--store-path", "onmetal", "inspect", reference)).stdout) as { manifest: unknown; config: unknown };
      expect(inspected.manifest).toEqual(JSON.parse(raw));
      expect(inspected.config).toEqual({ commandLine: "console=ttyS0" });

      const url = await cli("--store-path", "onmetal", "url", reference, "--layer", "kernel");
      expect(url.stderr).toBe("");
      const request = JSON.parse(url.stdout) as { headers?: { Authorization: string[] }; url: string };
      const kernelDigest = `sha256:${createHash("sha256").update(kernel).digest("hex")}`;
      expect(request.url).toBe(`${registry.url}/v2/gardenlinux/blobs/${kernelDigest}`);
      const curlArgs = ["-sSfL", "-o", join(work, "downloaded"), request.url];
      if (auth === "token") {
        expect(request.headers?.Authorization[0]).toMatch(/^Bearer \S+$/);
        curlArgs.unshift("-H", `Authorization: ${request.headers?.Authorization[0]}`);
      } else {
        expect(request.headers).toBeUndefined();
      }
      await exec("curl", curlArgs);
      expect(await readFile(join(work, "downloaded"))).toEqual(kernel);

      // And back: pull into a fresh store, every blob verified.
      expect((await cli("--store-path", "pulled", "pull", reference)).stdout).toBe(`Successfully pulled ${reference} ${hex}\n`);
      expect((await cli("--store-path", "pulled", "list")).stdout).toContain(`${registry.host}/gardenlinux today`);
    });
  });
}

function skopeoFlags(registry: RunningRegistry): string[] {
  return skopeoRegistryFlags("src", registry).map((flag) => flag.replace(/^--src-/, "--"));
}
