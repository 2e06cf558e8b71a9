import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOk } from "../harness/commands.ts";
import { makeBootImage, publishWithSkopeo, type WrittenLayout, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let registry: RunningRegistry;
let work: string;
let layout: WrittenLayout;
let source: string;

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work });
const PLATFORMS = [
  { os: "linux", architecture: "amd64" },
  { os: "linux", architecture: "arm64" },
  { os: "linux", architecture: "arm", variant: "v7" },
];

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "ociboot-copy-platform-"));
  const image = (name: string) => makeBootImage({ dialect: "onmetal", kernel: { bytes: `kernel ${name}` }, initrd: { bytes: `initrd ${name}` }, rootfs: { bytes: `rootfs ${name}` } });
  layout = await writeOciLayout(join(work, "layout"), {
    manifests: [image("amd64"), image("arm64"), { ...image("arm"), tag: "arm" }],
    indexes: [{ tag: "multi", manifests: PLATFORMS.map((platform, manifest) => ({ manifest, platform })), annotations: { "org.example.kept": "yes" } }],
  });
  source = (await publishWithSkopeo(layout.directory, "multi", registry, "os/multi")).reference;
  await publishWithSkopeo(layout.directory, "arm", registry, "os/single");
});
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface Index {
  annotations?: Record<string, string>;
  manifests: Array<{ digest: string; platform: { architecture: string } }>;
}

describe("copy --platform", () => {
  it("copies one platform of an index into a new index that lists only it, and says the digest changed", async () => {
    const target = `${registry.host}/copy/amd64:1`;
    const result = await cli("copy", source, target, "--platform", "linux/amd64");
    expect(result.code, result.stderr).toBe(0);
    const digest = (await cli("digest", target)).stdout.trim();
    expect(digest).not.toBe(layout.indexes[0]!.descriptor.digest);
    expect(result.stdout).toContain(`a new index ${digest} replaces ${layout.indexes[0]!.descriptor.digest}`);

    const index = JSON.parse((await cli("manifest", target)).stdout) as Index;
    expect(index.manifests.map((entry) => entry.digest)).toEqual([layout.manifests[0]!.descriptor.digest]);
    expect(index.annotations).toEqual({ "org.example.kept": "yes" });
    // skopeo, another client, reads the same index back, and the amd64 boot files are all there.
    const raw = await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${target}`]);
    expect(JSON.parse(raw.stdout)).toEqual(index);
    const fetched = await cli("fetch", target, "--platform", "linux/amd64", "-o", "boot-amd64");
    expect(fetched.code, fetched.stderr).toBe(0);
    // The other platforms' manifests were not copied.
    const arm64 = await cli("manifest", `${registry.host}/copy/amd64@${layout.manifests[1]!.descriptor.digest}`);
    expect(arm64.code).toBe(3);
  });

  it("copies two of three platforms into an archive, with a JSON report naming the source index", async () => {
    const result = await cli("copy", source, "oci-archive:two.oci.tar", "--platform", "linux/arm64", "--platform", "linux/arm/v7", "--json");
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { digest: string; sourceIndex: string };
    expect(report.sourceIndex).toBe(layout.indexes[0]!.descriptor.digest);
    const index = JSON.parse((await cli("manifest", "oci-archive:two.oci.tar")).stdout) as Index;
    expect(index.manifests.map((entry) => entry.digest)).toEqual([layout.manifests[1]!.descriptor.digest, layout.manifests[2]!.descriptor.digest]);
    expect((await cli("digest", "oci-archive:two.oci.tar")).stdout).toBe(`${report.digest}\n`);
  });

  it("refuses a platform the index lacks, and a single manifest, writing nothing", async () => {
    const missing = await cli("copy", source, "oci-archive:none.oci.tar", "--platform", "linux/amd64", "--platform", "linux/s390x");
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("linux/s390x");
    expect(existsSync(join(work, "none.oci.tar"))).toBe(false);
    expect(existsSync(join(work, "none.oci.tar.partial"))).toBe(false);

    const single = await cli("copy", `${registry.host}/os/single:arm`, "oci:single", "--platform", "linux/arm");
    expect(single.code).toBe(2);
    expect(single.stderr).toContain("not an index");
    expect((await cli("copy", source, "oci:bad", "--platform", "linux")).code).toBe(2);
  });
});
