import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, publishWithSkopeo, writeOciLayout, type WrittenLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { startRecordingProxy, type RecordingProxy } from "../harness/recording-proxy.ts";
import { ociboot, ocibootUnderDeno } from "./ociboot-binary.ts";

const COMMAND_LINE = "console=ttyS0 root=/dev/vda ro";
const KERNEL = "K".repeat(300_000);
const INITRD = "I".repeat(500_000);
const ROOTFS = "R".repeat(2_500_000);

async function publishBootImage(work: string, registry: RunningRegistry, repository: string): Promise<{ layout: WrittenLayout; reference: string }> {
  const directory = join(work, `layout-${repository.replace(/\W/g, "-")}`);
  const layout = await writeOciLayout(directory, {
    manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: KERNEL }, initrd: { bytes: INITRD }, rootfs: { bytes: ROOTFS }, commandLine: COMMAND_LINE })],
  });
  const { reference } = await publishWithSkopeo(directory, "v1", registry, repository);
  return { layout, reference };
}

describe("ociboot fetch from a real registry", () => {
  let work: string;
  let registry: RunningRegistry;
  let reference: string;
  let layout: WrittenLayout;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-fetch-"));
    registry = await startRegistry();
    ({ layout, reference } = await publishBootImage(work, registry, "os/metal"));
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("fetches by tag into boot-ready files that sha256sum -c accepts", async () => {
    const out = join(work, "by-tag");
    const result = await ociboot(["fetch", reference, "-o", out]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Fetched ${reference} ${layout.manifests[0]!.descriptor.digest}`);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe(KERNEL);
    expect(await readFile(join(out, "initrd"), "utf8")).toBe(INITRD);
    expect(await readFile(join(out, "rootfs"), "utf8")).toBe(ROOTFS);
    expect(await readFile(join(out, "cmdline"), "utf8")).toBe(`${COMMAND_LINE}\n`);
    expect(Buffer.compare(await readFile(join(out, "manifest.json")), layout.manifests[0]!.bytes)).toBe(0);
    expect(execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: out, encoding: "utf8" }).match(/: OK/g)).toHaveLength(5);
  });

  it("verifies fetched files against the image, and names the file that differs", async () => {
    const out = join(work, "verify");
    expect((await ociboot(["fetch", reference, "-o", out, "--quiet"])).code).toBe(0);
    const good = await ociboot(["verify", reference, "--dir", out]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain("All 4 items verified.");
    await writeFile(join(out, "initrd"), INITRD.replace(/^I/, "J"));
    const bad = await ociboot(["verify", reference, "--dir", out]);
    expect(bad.code).toBe(5);
    expect(bad.stdout).toMatch(/^FAILED  initrd initrd: /m);
    expect(bad.stderr).toMatch(/1 of 4 items do not match/);
  });

  it("verifies a whole layout store, every image and blob, and finds a corrupted blob", async () => {
    const good = await ociboot(["verify", `oci:${layout.directory}`, "--json"]);
    expect(good.code, good.stderr).toBe(0);
    expect(JSON.parse(good.stdout).ok).toBe(true);
    const kernel = layout.manifests[0]!.layers.find((layer) => layer.mediaType.includes("vmlinuz"))!;
    const copy = join(work, "layout-copy");
    await cp(layout.directory, copy, { recursive: true });
    await writeFile(join(copy, "blobs", "sha256", kernel.digest.slice(7)), KERNEL.toLowerCase());
    const bad = await ociboot(["verify", `oci:${copy}`]);
    expect(bad.code).toBe(5);
    expect(bad.stdout).toContain(`FAILED  ${kernel.digest}`);
  });

  it("fetches by digest with a JSON report", async () => {
    const manifest = layout.manifests[0]!.descriptor;
    const out = join(work, "by-digest");
    const result = await ociboot(["fetch", `${registry.host}/os/metal@${manifest.digest}`, "-o", out, "--json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ digest: manifest.digest, dialect: "onmetal", commandLine: COMMAND_LINE });
    expect(report.files.map((file: { role: string; size: number }) => [file.role, file.size]).sort()).toEqual([
      ["cmdline", COMMAND_LINE.length + 1],
      ["initrd", INITRD.length],
      ["kernel", KERNEL.length],
      ["rootfs", ROOTFS.length],
    ]);
  });

  it("streams one role to stdout", async () => {
    const result = await ociboot(["fetch", reference, "--role", "kernel", "-o", "-"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(KERNEL);
  });

  it("fails with exit code 3 for a missing tag", async () => {
    const result = await ociboot(["fetch", `${registry.host}/os/metal:nope`, "-o", join(work, "missing")]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^ociboot: .*nope/);
  });

  it("runs from the sources under Deno against the same registry", async () => {
    const out = join(work, "deno");
    const result = await ocibootUnderDeno(["fetch", reference, "-o", out, "--json"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).digest).toBe(layout.manifests[0]!.descriptor.digest);
    expect(await readFile(join(out, "rootfs"), "utf8")).toBe(ROOTFS);
  });

  it("fails with the integrity exit code when a blob was altered in the registry, leaving no final file", async () => {
    const altered = await publishBootImage(work, registry, "os/altered");
    const kernel = altered.layout.manifests[0]!.layers.find((layer) => layer.mediaType.includes("vmlinuz"))!;
    await writeFile(registry.blobDataPath(kernel.digest), "X".repeat(KERNEL.length));
    const out = join(work, "altered");
    const result = await ociboot(["fetch", altered.reference, "-o", out]);
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/Cannot accept sha256:[0-9a-f]{64}: content hashes to/);
    expect(existsSync(join(out, "vmlinuz"))).toBe(false);
    expect((await readdir(out)).filter((name) => name.endsWith(".partial"))).toEqual([]);
  });
});

describe("ociboot fetch through faults", () => {
  let work: string;
  let registry: RunningRegistry;
  let relay: RecordingProxy;
  let repository: string;
  let rootfsHex: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-faults-"));
    registry = await startRegistry();
    const { layout } = await publishBootImage(work, registry, "os/faults");
    rootfsHex = layout.manifests[0]!.layers.find((layer) => layer.mediaType.includes("rootfs"))!.digest.slice("sha256:".length);
    relay = await startRecordingProxy({ url: registry.url });
    repository = `${relay.host}/os/faults:v1`;
  });
  afterAll(async () => {
    await relay?.stop();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("resumes a cut download with a Range request and completes", async () => {
    relay.inject({ method: "GET", path: new RegExp(`/blobs/sha256(:|%3A)${rootfsHex}`), fault: { kind: "cut", afterBytes: 1_000_000 }, times: 1 });
    const out = join(work, "resume");
    const result = await ociboot(["fetch", repository, "-o", out, "--concurrency", "1"]);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, "rootfs"), "utf8")).toBe(ROOTFS);
    const blobGets = relay.requests.filter((request) => request.method === "GET" && request.path.includes("/blobs/"));
    const cut = blobGets.find((request) => request.fault === "cut");
    expect(cut).toBeDefined();
    const resumed = blobGets.find((request) => request.path === cut?.path && request.headers.range !== undefined);
    expect(resumed?.headers.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/bytes=(\d+)-/.exec(resumed!.headers.range!)![1])).toBeGreaterThan(0);
  });
});

describe("ociboot fetch and verify from an archive (the air-gapped path)", () => {
  let work: string;
  let archive: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-archive-"));
    await writeOciLayout(join(work, "onmetal"), {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "today", kernel: { bytes: KERNEL }, initrd: { bytes: INITRD }, rootfs: { bytes: ROOTFS }, commandLine: COMMAND_LINE })],
    });
    archive = join(work, "gardenlinux.oci.tar.xz");
    execFileSync("tar", ["-C", work, "-cJf", archive, "onmetal"]);
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("fetches the only image of a .oci.tar.xz into boot-ready files and leaves no temporary store", async () => {
    const out = join(work, "out");
    const temporary = join(work, "tmp");
    await mkdir(temporary);
    const result = await ociboot(["fetch", `oci-archive:${archive}`, "-o", out, "--quiet"], { env: { TMPDIR: temporary } });
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe(KERNEL);
    expect(await readFile(join(out, "cmdline"), "utf8")).toBe(`${COMMAND_LINE}\n`);
    expect(await readdir(temporary)).toEqual([]);
  });

  it("verifies every blob of the archive, and fails on a corrupted one", async () => {
    const good = await ociboot(["verify", `oci-archive:${archive}`]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/All 5 items verified/);

    const corrupted = join(work, "corrupted.tar");
    const copy = join(work, "copy");
    await cp(join(work, "onmetal"), join(copy, "onmetal"), { recursive: true });
    const blobs = join(copy, "onmetal", "blobs", "sha256");
    const sizes = await Promise.all((await readdir(blobs)).map(async (name) => [name, (await readFile(join(blobs, name))).length] as const));
    const rootfsName = sizes.find(([, size]) => size === ROOTFS.length)![0];
    await writeFile(join(blobs, rootfsName), ROOTFS.replace(/R$/, "S"));
    execFileSync("tar", ["-C", copy, "-cf", corrupted, "onmetal"]);
    const bad = await ociboot(["verify", `oci-archive:${corrupted}`]);
    expect(bad.code).toBe(5);
    expect(bad.stderr).toContain(`sha256:${rootfsName}`);
  });
});
