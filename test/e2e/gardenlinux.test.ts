import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishWithSkopeo, writeOciLayout, type LayerSpec, type ManifestSpec } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot } from "./ociboot-binary.ts";

const TITLE = "org.opencontainers.image.title";

/** A Garden Linux build as gl-oci publishes it: one raw layer per build file, titled (docs/formats.md#garden-linux-gl-oci). */
function gardenLinuxBuild(cname: string, architecture: string): ManifestSpec {
  const layer = (mediaType: string, title: string, bytes: string): LayerSpec => ({
    mediaType,
    bytes,
    annotations: { [TITLE]: title, "io.gardenlinux.image.layer.architecture": architecture },
  });
  return {
    config: { mediaType: "application/vnd.unknown.config.v1+json", bytes: "{}" },
    layers: [
      layer("application/io.gardenlinux.kernel", `${cname}.vmlinuz`, `kernel of ${cname}`),
      layer("application/io.gardenlinux.initrd", `${cname}.initrd`, `initrd of ${cname}`),
      layer("application/io.gardenlinux.cmdline", `${cname}.cmdline`, `console=ttyS0 gl.flavor=${cname}\n`),
      layer("application/io.gardenlinux.release", `${cname}.release`, `GARDENLINUX_CNAME=${cname}\n`),
      layer("application/io.gardenlinux.image.archive.format.raw", `${cname}.raw`, `disk image of ${cname}`),
    ],
    annotations: { cname, architecture, version: "1592.1", feature_set: "_boot,server,metal" },
  };
}

describe("Garden Linux: an index of flavors beside a container image", () => {
  let work: string;
  let registry: RunningRegistry;
  let reference: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-gl-"));
    registry = await startRegistry();
    const layout = join(work, "layout");
    const containerImage: ManifestSpec = {
      config: { mediaType: "application/vnd.oci.image.config.v1+json", bytes: JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }) },
      layers: [],
    };
    const flavors: Array<[string, string]> = [
      ["metal-amd64-1592.1", "amd64"],
      ["kvm-amd64-1592.1", "amd64"],
      ["metal-arm64-1592.1", "arm64"],
      ["metal-riscv64-1592.1", "riscv64"],
    ];
    await writeOciLayout(layout, {
      manifests: [containerImage, ...flavors.map(([cname, arch]) => gardenLinuxBuild(cname, arch))],
      indexes: [
        {
          tag: "1592.1",
          manifests: [
            { manifest: 0, platform: { os: "linux", architecture: "amd64" } },
            ...flavors.map(([cname, architecture], position) => ({
              manifest: position + 1,
              platform: { os: "gardenlinux", architecture, "os.version": "1592.1" },
              annotations: { cname, architecture, feature_set: "_boot,server,metal" },
            })),
          ],
        },
      ],
    });
    reference = (await publishWithSkopeo(layout, "1592.1", registry, "gardenlinux/gardenlinux")).reference;
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("picks the flavor by --flavor and --platform, writing role files and titled extras", async () => {
    const out = join(work, "metal-amd64");
    const result = await ociboot(["fetch", reference, "--platform", "linux/amd64", "--flavor", "metal", "-o", out, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.dialect).toBe("gardenlinux");
    expect(report.indexDigest).toMatch(/^sha256:/);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe("kernel of metal-amd64-1592.1");
    expect(await readFile(join(out, "cmdline"), "utf8")).toBe("console=ttyS0 gl.flavor=metal-amd64-1592.1\n");
    expect((await readdir(out)).sort()).toEqual(
      ["SHA256SUMS", "boot.sh", "cmdline", "initrd", "manifest.json", "metal-amd64-1592.1.raw", "metal-amd64-1592.1.release", "ociboot-fetch.json", "vmlinuz"].sort(),
    );
  });

  it("selects another architecture", async () => {
    const out = join(work, "metal-arm64");
    const result = await ociboot(["fetch", reference, "--platform", "linux/arm64", "--flavor", "metal", "-o", out, "--role", "kernel"]);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe("kernel of metal-arm64-1592.1");
  });

  it("a cname that names one entry selects it on any machine, and the boot hints follow its architecture", async () => {
    expect(process.arch).toBe("x64");
    const out = join(work, "cname-arm64");
    const result = await ociboot(["fetch", reference, "--flavor", "metal-arm64-1592.1", "-o", out]);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe("kernel of metal-arm64-1592.1");
    expect(result.stdout).toContain(`qemu-system-aarch64 -M virt -cpu max -m 1024 -nographic -kernel ${join(out, "vmlinuz")}`);
    expect(result.stdout).not.toContain("qemu-system-x86_64");
    const script = await readFile(join(out, "boot.sh"), "utf8");
    expect(script).toContain("#   qemu-system-aarch64 -M virt -cpu max -m 1024 -nographic -kernel vmlinuz -initrd initrd");
    expect(script).not.toContain("x86_64");
  });

  it("a flavor without its architecture takes this machine's entry, with the amd64 boot hint", async () => {
    const out = join(work, "flavor-host");
    const result = await ociboot(["fetch", reference, "--flavor", "metal", "-o", out]);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe("kernel of metal-amd64-1592.1");
    expect(result.stdout).toContain("qemu-system-x86_64 -m 1024 -nographic -kernel");
    expect(await readFile(join(out, "boot.sh"), "utf8")).toContain("#   qemu-system-x86_64 -m 1024 -nographic -kernel vmlinuz");
  });

  it("prints no QEMU hint for an architecture it has none for", async () => {
    const out = join(work, "cname-riscv64");
    const result = await ociboot(["fetch", reference, "--flavor", "metal-riscv64-1592.1", "-o", out]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain("qemu-system");
    expect(result.stdout).toContain("boot.sh");
    const script = await readFile(join(out, "boot.sh"), "utf8");
    expect(script).not.toContain("qemu-system");
    expect(script).toContain("kexec -l");
  });

  it("url takes --flavor (and --platform) to choose the entry", async () => {
    const kernelDigest = `sha256:${createHash("sha256").update("kernel of metal-arm64-1592.1").digest("hex")}`;
    const byCname = await ociboot(["url", reference, "--flavor", "metal-arm64-1592.1", "--layer", "kernel"]);
    expect(byCname.code, byCname.stderr).toBe(0);
    expect(JSON.parse(byCname.stdout).url).toBe(`http://${reference.split("/")[0]}/v2/gardenlinux/gardenlinux/blobs/${kernelDigest}`);
    const byBoth = await ociboot(["url", reference, "--platform", "linux/arm64", "--flavor", "metal", "--layer", "kernel"]);
    expect(byBoth.code, byBoth.stderr).toBe(0);
    expect(JSON.parse(byBoth.stdout).url).toContain(kernelDigest);
  });

  it("refuses an ambiguous choice and lists the flavors", async () => {
    const result = await ociboot(["fetch", reference, "--platform", "linux/amd64", "-o", join(work, "ambiguous")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("metal-amd64-1592.1");
    expect(result.stderr).toContain("kvm-amd64-1592.1");
    expect(result.stderr).toMatch(/--flavor/);
  });
});
