import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOk } from "../harness/commands.ts";
import { pullWithPodman, unpackWithUmoci } from "../harness/container-tools.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot, ocibootUnderDeno } from "./ociboot-binary.ts";

const OS_RELEASE = 'NAME="Garden Linux"\nVERSION="1592.1"\nID=gardenlinux\n';
const LOG = "I: Configuring package\n".repeat(50_000);
const MANIFEST = "bash 5.2.15-2\nsystemd 252.17-1\n";

let work: string;
let registry: RunningRegistry;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-e2e-info-image-"));
  await writeFile(join(work, "metal.os-release"), OS_RELEASE);
  await writeFile(join(work, "metal.log"), LOG);
  await writeFile(join(work, "metal.manifest"), MANIFEST);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function infoImage(store: string, tag: string, extra: string[] = [], env: Record<string, string> = {}) {
  return ociboot(
    ["--store-path", store, "info-image", "--os-release", "metal.os-release", "--build-log", "metal.log", "--package-manifest", "metal.manifest", "--tag", tag, ...extra],
    { cwd: work, env },
  );
}

describe("ociboot info-image", () => {
  let reference: string;
  let digest: string;

  beforeAll(async () => {
    reference = `${registry.host}/gardenlinux/info:1592.1`;
    const built = await infoImage(join(work, "store"), reference, ["--platform", "linux/amd64"]);
    expect(built.code, built.stderr).toBe(0);
    const hex = new RegExp(`^Successfully built ${reference.replace(/[.]/g, "\\.")} ([0-9a-f]{64})\\n$`).exec(built.stdout)?.[1];
    expect(hex, built.stdout).toBeDefined();
    digest = `sha256:${hex}`;
    const pushed = await ociboot(["--store-path", join(work, "store"), "push", reference]);
    expect(pushed.code, pushed.stderr).toBe(0);
  });

  it("builds the same digest from the same files in another store", async () => {
    const again = await infoImage(join(work, "other-store"), reference, ["--platform", "linux/amd64"]);
    expect(again.stdout).toBe(`Successfully built ${reference} ${digest.slice("sha256:".length)}\n`);
  });

  it("writes the same tar, so the same config and diff_id, from the sources under Deno (whose gzip bytes differ)", async () => {
    const args = ["info-image", "--os-release", "metal.os-release", "--build-log", "metal.log", "--package-manifest", "metal.manifest", "--tag", reference, "--platform", "linux/amd64"];
    const underDeno = await ocibootUnderDeno(["--store-path", join(work, "deno-store"), ...args], { cwd: work });
    expect(underDeno.code, underDeno.stderr).toBe(0);
    const configOf = async (store: string) => (JSON.parse((await ociboot(["--store-path", store, "inspect", reference])).stdout) as { manifest: { config: unknown } }).manifest.config;
    expect(await configOf(join(work, "deno-store"))).toEqual(await configOf(join(work, "store")));
  }, 60_000);

  it("pushes a real container image: plain skopeo inspect reads its os, architecture and labels", async () => {
    const inspected = JSON.parse((await runOk("skopeo", ["inspect", "--tls-verify=false", "--no-creds", `docker://${reference}`])).stdout) as Record<string, unknown>;
    expect(inspected).toMatchObject({
      Digest: digest,
      Os: "linux",
      Architecture: "amd64",
      Labels: { "org.opencontainers.image.title": "Garden Linux", "org.opencontainers.image.version": "1592.1" },
    });
    expect(inspected["Layers"]).toHaveLength(1);
  });

  it("unpacks with umoci into the three files at their documented paths", async () => {
    const unpacked = await unpackWithUmoci(registry, "gardenlinux/info", "1592.1");
    try {
      expect(await unpacked.readFile("etc/os-release")).toBe(OS_RELEASE);
      expect(await unpacked.readFile("usr/share/gardenlinux/build.log")).toBe(LOG);
      expect(await unpacked.readFile("usr/share/gardenlinux/packages.manifest")).toBe(MANIFEST);
    } finally {
      await unpacked.remove();
    }
  });

  it("is pulled by podman", async () => {
    const { inspect } = await pullWithPodman(registry, reference);
    expect(inspect).toMatchObject({ Digest: digest, Os: "linux", Architecture: "amd64" });
  });

  it("refuses a missing file with a clear message and exit 3", async () => {
    const failed = await ociboot(
      ["--store-path", join(work, "store-missing"), "info-image", "--os-release", "metal.os-release", "--build-log", "nope.log", "--package-manifest", "metal.manifest", "--tag", "localhost/x:1"],
      { cwd: work },
    );
    expect(failed.code).toBe(3);
    expect(failed.stderr).toContain(`Cannot read the build log ${join(work, "nope.log")}`);
  });
});
